"""Which notes sound, and what no piece may hold next: the one implementation of both.

A note's *key* is :func:`note_key` ``(instrument, pitch) = instrument * 128 + pitch``: every volume
of a note-on and its note-off share it. A key sounds when its latest event is a note-on, as the
tokenizer decodes: a note-on of a sounding key restarts it, a note-off of a silent key changes
nothing. Drums have no note-off and never sound. :class:`NoteKeys` holds the per-id tables of
one vocabulary (built from its note slots, so the model builds the same tables from its config)
and answers every question about the state:

* after every position, ``(B, T, K)``: :meth:`NoteKeys.sounding_after_each` (the model's sounding
  embedding and its masks);
* after the last position, ``(B, K + 1)``: :meth:`NoteKeys.sounding_after` (the logits
  processors' tracker from scratch, the long-form cut), and from it :func:`sounding_note_ons`,
  the note-on ids in the order they were struck (the data pipeline strikes them again);
* one token later: :meth:`NoteKeys.strike` (the tracker, incrementally);
* the grammar rule: :meth:`NoteKeys.impossible_notes` (a note-off of a silent key, a note-on of a
  sounding key) and :meth:`NoteKeys.impossible_end` (``end`` while a key sounds), used by both
  ``MusicGrammarLogitsProcessor`` and ``MuseNetForCausalLM.mask_impossible_tokens``.

Shapes: ``V`` ids in the vocabulary, ``N`` note ids (``slot * 128 + pitch``, the first ids),
``S`` note slots, ``K = instruments * 128`` keys; a state of width ``K + 1`` has a spare last
column that every id that cannot sound (non-notes, drums) is written to, and that never sounds.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch

from .vocabulary import NUM_PITCHES, MuseNetVocabulary


def note_key(instrument: Any, pitch: Any) -> Any:
    """The key of a note, ``instrument * 128 + pitch``: ints, numpy arrays or tensors alike."""
    return instrument * NUM_PITCHES + pitch


@dataclass(frozen=True)
class NoteKeys:
    """The sounding-notes tables of one vocabulary, as tensors on one device.

    Attributes:
        note_key: (V,) long, each id's key; ``K`` (the spare column) for ids that never sound
            (everything but pitched notes: drums have no note-off).
        strikes: (V,) bool, the id makes its key sound (a pitched note-on).
        off_id: (K,) long, each key's note-off id (-1: none, the drum kit's keys).
        slot_instrument: (S,) long, each note slot's instrument.
        is_off: (N,) bool, the note id is a note-off.
    """

    note_key: torch.Tensor
    strikes: torch.Tensor
    off_id: torch.Tensor
    slot_instrument: torch.Tensor
    is_off: torch.Tensor

    @classmethod
    def build(cls, slots: Sequence[Sequence[int]], drum_instrument: int | None, vocab_size: int,
              num_instruments: int | None = None) -> "NoteKeys":
        """The tables (on torch's default device) for note slots ``(instrument, volume)`` (volume 0:
        note-off) and ``vocab_size`` ids; ``num_instruments`` defaults to the highest instrument + 1."""
        # No data-dependent op (boolean indexing, .item()): a model built on the meta device builds
        # these too, and `_init_weights` fills in the values later.
        slots = [(int(instrument), int(volume)) for instrument, volume in slots]
        if num_instruments is None:
            num_instruments = max((instrument for instrument, _ in slots), default=-1) + 1
        num_keys, num_notes = num_instruments * NUM_PITCHES, len(slots) * NUM_PITCHES
        slot = torch.tensor(slots, dtype=torch.long).reshape(-1, 2)
        instrument = slot[:, 0].repeat_interleave(NUM_PITCHES)  # (N,)
        volume = slot[:, 1].repeat_interleave(NUM_PITCHES)
        pitch = torch.arange(NUM_PITCHES).repeat(len(slots))
        pitched = instrument != (-1 if drum_instrument is None else drum_instrument)
        key = torch.full((vocab_size,), num_keys, dtype=torch.long)
        key[:num_notes] = torch.where(pitched, note_key(instrument, pitch), num_keys)
        strikes = torch.zeros(vocab_size, dtype=torch.bool)
        strikes[:num_notes] = pitched & (volume > 0)
        off = pitched & (volume == 0)
        off_id = torch.full((num_keys + 1,), -1, dtype=torch.long)  # + a spare entry the other ids write to
        off_id.scatter_(0, torch.where(off, key[:num_notes], num_keys), torch.arange(num_notes))
        off_id = off_id[:num_keys].clone()
        return cls(key, strikes, off_id, slot[:, 0].clone(), volume == 0)

    @classmethod
    def of_vocabulary(cls, vocabulary: MuseNetVocabulary, device: Any = "cpu") -> "NoteKeys":
        """The tables of ``vocabulary`` on ``device``, built once (per size: added composers grow it)."""
        per_vocab = _CACHE.setdefault(vocabulary, {})
        cache_key = (str(device), len(vocabulary))
        if cache_key not in per_vocab:
            keys = cls.build(vocabulary.slots, vocabulary.drum_index, len(vocabulary), len(vocabulary.instruments))
            per_vocab[cache_key] = keys.to(device)
        return per_vocab[cache_key]

    def tables(self) -> dict[str, torch.Tensor]:
        """The tensors by attribute name (the model keeps them as buffers of the same names)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to(self, device: Any) -> "NoteKeys":
        return NoteKeys(**{name: t.to(device) for name, t in self.tables().items()})

    @property
    def num_keys(self) -> int:
        return self.off_id.shape[0]

    @property
    def num_notes(self) -> int:
        return self.is_off.shape[0]

    # ------------------------------------------------------------------ the state
    def sounding_after_each(self, ids: torch.LongTensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, K) bool: the keys sounding after each token."""
        batch, length = ids.shape
        key = self.note_key[ids]  # (B, T)
        # Each event writes 2 * position + (is a note-on) at its key, so the running max over
        # time is the latest event and its low bit says whether it struck: one cummax, not two.
        pos = torch.arange(1, length + 1, device=ids.device, dtype=torch.int32)
        code = (2 * pos).add(self.strikes[ids])  # (B, T) int32
        events = torch.zeros(batch, length, self.num_keys + 1, dtype=torch.int32, device=ids.device)
        events.scatter_(2, key.unsqueeze(-1), code.unsqueeze(-1))
        latest = events.cummax(1).values[..., : self.num_keys]
        return (latest & 1).bool()

    def sounding_after(self, ids: torch.LongTensor,
                       initial: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The state after the last token of each row, O(B * L).

        Args:
            ids: (B, L) token ids.
            initial: (B, K + 1) bool, the state before ``ids`` (default: nothing sounds); keys
                with no event in ``ids`` keep it.
        Returns:
            ``(sounding, last)``: (B, K + 1) bool, the keys sounding (the spare column False), and
            (B, K + 1) long, the position in ``ids`` of each key's latest event (-1: none).
        """
        batch, length = ids.shape
        key = self.note_key[ids]
        code = torch.arange(0, 2 * length, 2, device=ids.device).add(self.strikes[ids])  # (B, L), as above
        latest = torch.full((batch, self.num_keys + 1), -1, dtype=torch.long, device=ids.device)
        latest.scatter_reduce_(1, key, code, reduce="amax")
        heard = latest >= 0
        struck = (latest & 1).bool()
        sounding = heard & struck if initial is None else torch.where(heard, struck, initial)
        sounding[:, self.num_keys] = False
        return sounding, latest >> 1  # -1 stays -1

    def strike(self, sounding: torch.Tensor, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One token more per row: updates ``sounding`` (B, K + 1) in place for ``token`` (B,).
        Returns its ``(key, strikes)``, each (B,), for callers that keep more per key."""
        key = self.note_key[token]
        strikes = self.strikes[token]
        sounding.scatter_(1, key[:, None], strikes[:, None])  # ids that cannot sound: False, spare column
        return key, strikes

    def at_notes(self, keys: torch.Tensor) -> torch.Tensor:
        """(..., K or K + 1) a fact per key -> (..., N): that fact for each note id's key.

        Note ids are ``slot * 128 + pitch``, so selecting each slot's instrument row of the
        (..., instruments, 128) view is the same gather as ``keys[..., note_key]``, ~10x faster.
        """
        rows = keys[..., : self.num_keys].view(*keys.shape[:-1], -1, NUM_PITCHES)
        return rows.index_select(-2, self.slot_instrument).flatten(-2)

    # ------------------------------------------------------------------ the grammar rule
    def impossible_notes(self, sounding: torch.Tensor, note_offs: bool = True, note_ons: bool = True) -> torch.Tensor:
        """(..., K or K + 1) sounding keys -> (..., N) bool: the note ids no piece holds next,
        the note-off of a silent key (``note_offs``) and the note-on of a sounding key
        (``note_ons``). Drums never sound and have no note-off: they may always strike."""
        sounds = self.at_notes(sounding)
        if note_offs and note_ons:
            return sounds ^ self.is_off  # a note-off needs its key sounding, a note-on needs it silent
        if note_offs:
            return self.is_off & ~sounds
        return sounds & ~self.is_off if note_ons else torch.zeros_like(sounds)

    @staticmethod
    def impossible_end(sounding: torch.Tensor | None = None,
                       num_sounding: torch.Tensor | None = None) -> torch.Tensor:
        """(...) bool: ``end`` cannot come while a key sounds. From the sounding keys
        (..., K or K + 1), or from their count (...) where the caller keeps one (the processors'
        state does: a step then spends no reduction on it)."""
        if num_sounding is not None:
            return num_sounding > 0
        # any(), as the max of the bytes: 2x faster on a step's (B, K + 1), 20x on a window's (B, T, K)
        return sounding.view(torch.uint8).amax(-1).bool()


_CACHE: "weakref.WeakKeyDictionary[MuseNetVocabulary, dict[tuple[str, int], NoteKeys]]" = weakref.WeakKeyDictionary()


def sounding_note_ons(vocabulary: MuseNetVocabulary, ids: np.ndarray | Sequence[int]) -> np.ndarray:
    """The note-on ids of the notes still sounding after ``ids`` (struck and not yet released),
    in the order they were struck. Drums have no note-off and never sound. Shape ``(K',)`` int64."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    sounding, last = NoteKeys.of_vocabulary(vocabulary).sounding_after(torch.from_numpy(ids)[None])
    # a sounding key's latest event is its note-on: their positions, in order, are the strike order
    return ids[np.sort(last[sounding].numpy())]


__all__ = ["NoteKeys", "note_key", "sounding_note_ons"]
