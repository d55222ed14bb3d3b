"""Texture rules for sampling: a floor on the voices sounding, a ceiling on how long a note lasts.

Both are plain :class:`transformers.LogitsProcessor` s that read the musical state from a
:class:`~musenet_hf.generation.logits_processors.NoteStateTracker` (share the grammar's, as
:func:`~musenet_hf.generation.generate.default_logits_processors` does) and only ever remove tokens, so
the grammar still decides what is valid.

* :class:`MinVoicesLogitsProcessor`: time moves on only while ``min_voices`` notes sound.
  A model continuing polyphony on a re-voiced request (Palestrina on the clarinet) can let its
  voices drop out one by one and stay a single line for the rest of the piece; the floor keeps
  the texture of the label's real pieces. Which note comes in stays the model's choice.
* :class:`MaxNoteLengthLogitsProcessor`: a note that has sounded ``max_seconds`` ends before time
  moves on. Re-voiced, the same model holds pedal notes of 5-9 s where the label's real notes
  last at most 4 s (a breve); a singer or a wind player would have breathed long before.

Neither touches ``end`` or the clock rules of the grammar and the target length, and both leave
rows before ``start`` and after ``end`` alone.
"""

from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from ..tokenizer.vocabulary import MuseNetVocabulary
from .logits_processors import NoteStateTracker, _tables


class MinVoicesLogitsProcessor(LogitsProcessor):
    """No wait while fewer than ``min_voices`` pitched notes sound (drums do not count).

    Note-ons, note-offs and ``end`` are never touched: a note may end at any time (the model then
    strikes another before time passes) and the piece may close. Where the processors before this
    one leave no pitched note to strike (hard steering onto the drums), time moves on as usual:
    the floor cannot be reached there.

    Args:
        vocabulary: the model's vocabulary.
        min_voices: the fewest notes that sound while time passes (a whole number >= 1).
        tracker: a :class:`NoteStateTracker` to share with other processors.
    """

    def __init__(self, vocabulary: MuseNetVocabulary, min_voices: int, tracker: NoteStateTracker | None = None):
        if isinstance(min_voices, bool) or int(min_voices) != min_voices or min_voices < 1:
            raise ValueError(f"min_voices must be a whole number >= 1, got {min_voices!r}")
        self.vocabulary = vocabulary
        self.min_voices = int(min_voices)
        self.tracker = tracker or NoteStateTracker(vocabulary)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tab = _tables(self.vocabulary, scores.device)
        st = self.tracker.state(input_ids)
        thin = st.started & ~st.ended & (st.num_sounding < self.min_voices)  # (B,)
        if not bool(thin.any()):
            return scores
        pitched = scores[:, : tab.num_notes].masked_fill(~tab.pitched_on, -math.inf)
        thin &= (pitched > -math.inf).any(dim=1)  # a pitched note can still be struck
        out = scores.clone()
        out[:, tab.first_wait: tab.first_wait + tab.max_wait].masked_fill_(thin[:, None], -math.inf)
        return out


class MaxNoteLengthLogitsProcessor(LogitsProcessor):
    """No note sounds longer than ``max_seconds``.

    A wait may not carry a sounding note past ``max_seconds`` from its note-on; once a note has
    sounded that long, the only tokens left are the note-offs of such notes, so it ends before
    anything else happens. Under a sliding window a note sounding at the window's start counts
    from there (the window strikes it again).

    Args:
        vocabulary: the model's vocabulary.
        max_seconds: the longest a note may sound (> 0; rounded down to the clock's unit).
        tracker: a :class:`NoteStateTracker` to share with other processors.
    """

    def __init__(self, vocabulary: MuseNetVocabulary, max_seconds: float, tracker: NoteStateTracker | None = None):
        unit = vocabulary.wait_unit_seconds
        if not (math.isfinite(max_seconds) and max_seconds >= unit):
            raise ValueError(f"max_seconds must be a finite number of seconds >= {unit} (the clock's unit), "
                             f"got {max_seconds!r}")
        self.vocabulary = vocabulary
        self.max_seconds = float(max_seconds)
        self.max_units = int(math.floor(max_seconds / unit + 1e-9))
        self.tracker = tracker or NoteStateTracker(vocabulary)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tab = _tables(self.vocabulary, scores.device)
        st = self.tracker.state(input_ids)
        live = st.started & ~st.ended & (st.num_sounding > 0)  # (B,)
        if not bool(live.any()):
            return scores
        held = torch.where(st.sounding, st.units[:, None] - st.onset, torch.zeros_like(st.onset))  # (B, K + 1)
        room = self.max_units - held.max(dim=1).values  # (B,) units the oldest note may still sound
        out = scores.clone()
        waits = out[:, tab.first_wait: tab.first_wait + tab.max_wait]
        waits.masked_fill_(live[:, None] & (tab.wait_lengths[None, :] > room[:, None]), -math.inf)
        due = live & (room <= 0)
        if bool(due.any()):  # only the note-offs of the notes that are due
            over = st.sounding & (held >= self.max_units)
            keep = torch.zeros_like(out, dtype=torch.bool)
            keep[:, : tab.num_notes] = tab.note_off & tab.keys.at_notes(over)
            out.masked_fill_(due[:, None] & ~keep, -math.inf)
        return out
