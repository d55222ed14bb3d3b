"""The defaults the command line, the pipeline and the demo share (the bundled model's folder is
:func:`musenet_hf.loading.bundled_checkpoint`).

Nothing here imports torch or transformers: ``musenet generate`` builds its parser and checks its
arguments from this module alone, so a mistyped option is reported at once (issue 34). The
modules that use a value import it from here (``logits_processors``, ``guidance`` and
``pipeline_musenet`` re-export theirs under the old names).
"""

from __future__ import annotations

DEFAULT_THREADS = 1  # torch CPU threads unless --threads or $MUSENET_THREADS says otherwise (CLI and demo)

# The soft-steering strength (the requested instruments' odds among note-ons, in logits) used
# wherever none is given: the pipeline, `musenet generate`, default_logits_processors. Measured with
# the bundled model of commit 69841ca, 6 pieces of 15 s per row (`musenet evaluate --sections steering
# --steering-composer irish --steering-instruments flute --steering-strengths 1 2 3`), share of
# note-ons on the flute: none 20.4%, strength 1 41.7%, 2 79.2%, 3 98.1%, 5 99.8%, hard 100%; on the
# violin (which this model rarely chose for irish: 2.4% unsteered): 2 62.7%, 3 94.3%, 5 100%. No
# strength changed note length (0.0-0.4% of notes over 4 s) or made notes pile up (1.0-1.3 at once).
# 5 is the strength that does what the request says even for a pairing the model rarely chose.
DEFAULT_STEERING_STRENGTH = 5.0

# The pipeline's, the CLI's and the demo's scale when neither the call nor the model's config
# (`guidance`, `guidance_against`) gives one (1 = off). The bundled model's config says 1.3 against
# folk: 19 of 20 listening prompts and 62.9% recognised, against 16 and 52.4% at 1 (docs/experiments.md,
# "Sampling against folk"); against no label, 2 gave 56.2% but 15 of 20.
DEFAULT_GUIDANCE = 1.0

DEFAULT_PRIMER_SECONDS = 5.0  # how much of a primer opens the piece when neither length is given

# The check every generated piece gets (musenet_hf.generation.piece_check). A piece under MIN_NOTE_RATE new
# notes a second on the instruments asked for is too sparse (`musenet generate` exits 3). A note
# longer than HELD_SECONDS is held: the bundled model holds 0-2.3% of its notes that long on its own
# styles (docs/experiments.md, "Sampling against folk"), and 0-10% continuing seven pop songs it
# never trained on (10 s of each, then 20 s, seed 0), where the eighth, the failed continuation of
# issue 34, held 13 of its 14 new notes; over MAX_HELD_SHARE of the new notes held is a failed piece.
# Under MIN_ON_REQUEST_SHARE of the new notes on the instruments asked for (named, the style's usual
# ones, or the primer's) is one too: the model went its own way.
MIN_NOTE_RATE = 0.5
HELD_SECONDS = 4.0
MAX_HELD_SHARE = 0.25
MIN_ON_REQUEST_SHARE = 0.5


__all__ = ["DEFAULT_GUIDANCE", "DEFAULT_PRIMER_SECONDS", "DEFAULT_STEERING_STRENGTH", "DEFAULT_THREADS", "HELD_SECONDS",
           "MAX_HELD_SHARE", "MIN_NOTE_RATE", "MIN_ON_REQUEST_SHARE"]
