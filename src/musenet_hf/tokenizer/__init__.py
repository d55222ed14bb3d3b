"""Notes <-> token ids: :mod:`.vocabulary` (every id: instruments, volumes, pitches, waits, styles) and
:mod:`.tokenization_musenet` (``MuseNetTokenizer``, a Transformers tokenizer over MIDI files)."""
