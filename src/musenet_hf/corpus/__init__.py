"""Building a training corpus (``musenet prepare-corpus``): music21's own scores (:mod:`.music21_corpus`,
:mod:`.corpus_works`, :mod:`.corpus_convert`), a broad corpus from fetched collections and your folders
(:mod:`.corpus_build`, :mod:`.corpus_sources`), and its data card's tables (:mod:`.corpus_card`)."""
