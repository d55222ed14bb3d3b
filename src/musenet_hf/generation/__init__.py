"""Token ids out of a model: :mod:`.generate` (prompts, primers, long-form sliding-window generation),
the logits processors (:mod:`.logits_processors`, :mod:`.texture`, :mod:`.guidance`), the check every
piece gets (:mod:`.piece_check`), the styles a model trained on (:mod:`.styles`) and the
``musenet-generation`` pipeline that ties them together (:mod:`.pipeline_musenet`)."""
