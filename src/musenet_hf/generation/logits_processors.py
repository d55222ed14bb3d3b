"""Logits processors that keep generated MuseNet tokens musical and decodable.

Each is a plain :class:`transformers.LogitsProcessor`: pass them to any model's ``generate()``
in ``logits_processor=LogitsProcessorList([...])``. Transformers applies user processors before
temperature and top-p, so a masked token can never be sampled and the warpers never see a row
with nothing left.

* :class:`MusicGrammarLogitsProcessor`: no note-off of a silent note, no second note-on of a
  sounding note, no prefix or special tokens once ``start`` has been seen, ``end`` only when no
  note is sounding (and, optionally, after a minimum length), and a first note within
  ``max_silence_seconds`` of the start (no ``end`` before it), so a piece is never silent.
* :class:`InstrumentSteeringLogitsProcessor`: chooses the instrument of each note-on, keeping the
  model's probability of striking a note at all. ``soft`` makes the requested instruments
  ``e**strength`` times likelier among note-ons (MuseNet's "strong suggestion"; default
  :data:`DEFAULT_STEERING_STRENGTH`); ``hard`` gives every note-on to them. Note-offs are never
  touched, so notes already sounding can always end.
* :class:`TargetLengthLogitsProcessor`: no ``end`` before ``(1 - tolerance) * seconds``, no wait
  past ``(1 + tolerance) * seconds``, and from ``seconds`` on only note-offs then ``end``.

The musical state of every row (which notes sound, how much time has passed) lives in a
:class:`NoteStateTracker`. It updates incrementally, one token a step, while each call's
``input_ids`` extend the previous call's by one column; otherwise (a new ``generate()`` call,
beam search reordering rows) it recomputes the state from the whole sequence, vectorized, so it
is correct whatever ``generate()`` does. Processors may share one tracker (the state is computed
once per step). For sliding-window generation, :meth:`NoteStateTracker.set_initial_state` gives
the state of the piece at the window's first token, so rules follow the whole piece, not the
window.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from transformers import LogitsProcessor

from ..defaults import DEFAULT_STEERING_STRENGTH  # measured there, where the CLI reads it without torch
from ..tokenizer.sounding import NoteKeys
from ..tokenizer.vocabulary import GROUPS, MuseNetVocabulary

# The grammar's bound on the silence before a piece's first note (seconds).
MAX_SILENCE_SECONDS = 2.0


@dataclass
class NoteState:
    """The musical state at the end of each row of ``input_ids``.

    Attributes:
        sounding: (B, num_instruments * 128) bool, key ``instrument * 128 + pitch``; drums never sound.
        units: (B,) long, clock units elapsed since the piece's start.
        started: (B,) bool, ``start`` has been seen (the body has begun).
        ended: (B,) bool, ``end`` has been seen.
        num_sounding: (B,) long, how many notes sound.
        struck: (B,) bool, a note-on (drums included) has come in the piece (default: all True).
        onset: (B, num_instruments * 128 + 1) long, the clock (units) at each key's last note-on;
            meaningful where the key sounds (None: not tracked; drum keys never sound and keep the
            start's clock). Under a sliding window a note
            sounding at the window's start counts from there (the window strikes it again).
    """

    sounding: torch.Tensor
    units: torch.Tensor
    started: torch.Tensor
    ended: torch.Tensor
    num_sounding: torch.Tensor = None  # filled in from `sounding`
    struck: torch.Tensor = None  # None: every row counts as having struck a note
    onset: torch.Tensor | None = None

    def __post_init__(self):
        if self.num_sounding is None:
            self.num_sounding = self.sounding.sum(dim=1)
        if self.struck is None:
            self.struck = torch.ones_like(self.started, dtype=torch.bool)


class _Tables:
    """The vocabulary facts the processors need, as tensors on one device."""

    def __init__(self, vocabulary: MuseNetVocabulary, device: torch.device):
        t = vocabulary.torch_tables(device)
        v = vocabulary
        self.device = device
        self.keys = NoteKeys.of_vocabulary(v, device)  # which notes sound, and the grammar rule
        self.num_notes = v.num_note_tokens
        self.num_keys = self.keys.num_keys
        self.is_note, self.is_note_on, self.is_note_off = t["is_note"], t["is_note_on"], t["is_note_off"]
        self.is_wait, self.wait_units, self.is_prefix = t["is_wait"], t["wait_units"], t["is_prefix"]
        self.note_off = self.is_note_off[: self.num_notes]
        self.note_instrument = t["note_instrument"][: self.num_notes]
        self.start_id, self.end_id, self.pad_id = v.start_id, v.end_id, v.pad_id
        self.size = len(v)
        self.first_wait, self.max_wait = v.first_wait_id, v.config.max_wait
        self.wait_lengths = torch.arange(1, v.config.max_wait + 1, device=device)  # (W,)
        self.pitched_on = self.keys.strikes[: self.num_notes]  # (N,) note-ons but the drums'
        # Additive masks (V,) of 0 / -inf. In the body: notes (refined by state), waits and tempo
        # changes; `end` is decided per row. Before `start`: the conditioning prefix only.
        body_ok = t["is_note"] | t["is_wait"] | t["is_tempo"]
        self.body_bias = torch.zeros(self.size, device=device).masked_fill_(~body_ok, -math.inf)
        self.prefix_bias = torch.zeros(self.size, device=device).masked_fill_(~t["is_prefix"], -math.inf)


_TABLES: "weakref.WeakKeyDictionary[MuseNetVocabulary, dict[tuple[str, int], _Tables]]" = weakref.WeakKeyDictionary()


def _tables(vocabulary: MuseNetVocabulary, device: torch.device) -> _Tables:
    per_vocab = _TABLES.setdefault(vocabulary, {})
    key = (str(device), len(vocabulary))  # the size changes when composers are added
    if key not in per_vocab:
        per_vocab[key] = _Tables(vocabulary, device)
    return per_vocab[key]


class NoteStateTracker:
    """Per-row :class:`NoteState` of the sequences ``generate()`` is extending.

    ``state(input_ids)`` returns the state after the last column of ``input_ids`` (B, L). It is
    O(B) per step while calls extend the previous ``input_ids`` by one token, and an O(B * L)
    vectorized recomputation otherwise (first step, beam reordering, a new call).
    """

    def __init__(self, vocabulary: MuseNetVocabulary):
        self.vocabulary = vocabulary
        self._ids: torch.Tensor | None = None
        self._state: NoteState | None = None
        self._init_sounding: torch.Tensor | None = None  # (B0, K) bool
        self._init_units: torch.Tensor | None = None  # (B0,) long
        self._init_started = False
        self._init_struck = False

    def set_initial_state(self, sounding: torch.Tensor | None, units: torch.Tensor | None,
                          started: bool = True, struck: bool | None = None) -> None:
        """State of the piece before the first token of the coming ``input_ids`` (sliding windows).

        Args:
            sounding: (B0, num_instruments * 128) bool, notes sounding at the window's first token.
            units: (B0,) long, clock units elapsed at that point.
            started: whether ``start`` lies before the window (then the window is body).
            struck: whether a note-on lies before the window. Default: True when an initial state
                is given (the piece may have struck notes already, so the grammar's first-note
                rule does not apply), False when clearing it.
        ``B0`` may divide the batch (``num_return_sequences``, beams): rows repeat in order.
        Pass ``None`` for both to clear it.
        """
        self._init_sounding, self._init_units, self._init_started = sounding, units, started
        if struck is None:
            struck = sounding is not None or units is not None
        self._init_struck = bool(struck)
        self._ids, self._state = None, None

    def reset(self) -> None:
        """Forget the cached state and any initial state."""
        self.set_initial_state(None, None, False)

    # ------------------------------------------------------------------ state
    def state(self, input_ids: torch.Tensor) -> NoteState:
        if self._ids is not None and input_ids is self._ids:
            return self._state  # another processor already asked this step
        prev = self._ids
        if (prev is not None and prev.shape[0] == input_ids.shape[0]
                and input_ids.shape[1] == prev.shape[1] + 1
                and torch.equal(input_ids[:, :-1], prev)):
            state = self._advance(self._state, input_ids[:, -1])
        else:
            state = self.compute(input_ids)
        self._ids, self._state = input_ids, state
        return state

    def _initial(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        tab = _tables(self.vocabulary, device)
        if self._init_sounding is None:
            return (torch.zeros(batch, tab.num_keys + 1, dtype=torch.bool, device=device),
                    torch.zeros(batch, dtype=torch.long, device=device))
        b0 = self._init_sounding.shape[0]
        if batch % b0:
            raise ValueError(f"initial state has {b0} rows; cannot expand to a batch of {batch}")
        sounding = torch.zeros(b0, tab.num_keys + 1, dtype=torch.bool, device=device)
        # drums never sound, whatever the caller passed (they have no note-off to end them)
        sounding[:, : tab.num_keys] = self._init_sounding.to(device) & (tab.keys.off_id >= 0)
        units = self._init_units.to(device=device, dtype=torch.long)
        return sounding.repeat_interleave(batch // b0, 0), units.repeat_interleave(batch // b0, 0)

    def compute(self, input_ids: torch.Tensor) -> NoteState:
        """The state of every row from scratch: O(B * L), vectorized.

        Which notes sound is :meth:`NoteKeys.sounding_after
        <musenet_hf.tokenizer.sounding.NoteKeys.sounding_after>`; keys with no event in
        ``input_ids`` keep their initial state.
        """
        device = input_ids.device
        tab = _tables(self.vocabulary, device)
        sounding0, units0 = self._initial(input_ids.shape[0], device)
        ids = input_ids.clamp(0, tab.size - 1)
        sounding, last = tab.keys.sounding_after(ids, sounding0)
        has_event = last >= 0
        units = units0 + tab.wait_units[ids].sum(dim=1)
        started = (input_ids == tab.start_id).any(dim=1) | self._init_started
        ended = (input_ids == tab.end_id).any(dim=1)
        struck = tab.is_note_on[ids].any(dim=1) | self._init_struck
        clock = units0[:, None] + tab.wait_units[ids].cumsum(dim=1)  # (B, L) units after each token
        onset = torch.where(has_event, clock.gather(1, last.clamp(min=0)), units0[:, None])
        return NoteState(sounding, units, started, ended, struck=struck, onset=onset)

    def _advance(self, state: NoteState, token: torch.Tensor) -> NoteState:
        """The state after one more token per row. ``token``: (B,)."""
        tab = _tables(self.vocabulary, token.device)
        tok = token.clamp(0, tab.size - 1)
        sounding = state.sounding
        key, on = tab.keys.strike(sounding, tok)  # (B,) each: the token's key, whether it struck it
        units = state.units + tab.wait_units[tok]
        started = state.started | (token == tab.start_id)
        ended = state.ended | (token == tab.end_id)
        struck = state.struck | tab.is_note_on[tok]
        onset = state.onset
        onset.scatter_(1, key[:, None], torch.where(on, units, onset.gather(1, key[:, None])[:, 0])[:, None])
        return NoteState(sounding, units, started, ended, struck=struck, onset=onset)


class MusicGrammarLogitsProcessor(LogitsProcessor):
    """Keeps every generated sequence decodable as intended, for any model's ``generate()``.

    After ``start``: notes, waits and (beats clock) tempo changes only, where a note-off needs
    its note sounding and a note-on needs it silent (drums have no note-off and may always
    strike). ``end`` needs no note sounding and at least ``min_seconds`` elapsed. Before
    ``start``: only prefix tokens (composer, instrumentation, ``start``). Rows that have ended are
    left alone (``generate()`` pads them). With ``max_polyphony``, no new pitched note-on while
    that many notes sound.

    **No silent pieces.** Until the piece's first note-on (drums count): no ``end``, and no wait
    that would take the clock past ``max_silence_seconds``; once there, only note-ons, so the
    model must strike a note (steering decides which instrument). Under a sliding window the
    tracker's initial state says whether notes came before the window
    (:meth:`NoteStateTracker.set_initial_state`, ``struck``). With a
    :class:`TargetLengthLogitsProcessor`, keep ``max_silence_seconds`` below the target length
    (:func:`~musenet_hf.generation.generate.default_logits_processors` does).

    Args:
        vocabulary: the model's vocabulary.
        min_seconds: the earliest time ``end`` may come.
        max_polyphony: the most notes that may sound at once (None: no limit).
        tracker: a :class:`NoteStateTracker` to share with other processors.
        max_silence_seconds: the latest time of the first note (None: no bound, and ``end`` may
            come before any note).
    """

    def __init__(self, vocabulary: MuseNetVocabulary, min_seconds: float = 0.0,
                 max_polyphony: int | None = None, tracker: NoteStateTracker | None = None,
                 max_silence_seconds: float | None = MAX_SILENCE_SECONDS):
        self.vocabulary = vocabulary
        self.min_units = int(math.ceil(min_seconds / vocabulary.wait_unit_seconds - 1e-9))
        self.max_polyphony = max_polyphony
        if max_silence_seconds is not None and not max_silence_seconds >= 0:
            raise ValueError(f"max_silence_seconds must be >= 0 or None, got {max_silence_seconds}")
        self.max_silence_units = (None if max_silence_seconds is None
                                  else int(math.floor(max_silence_seconds / vocabulary.wait_unit_seconds + 1e-9)))
        self.tracker = tracker or NoteStateTracker(vocabulary)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tab = _tables(self.vocabulary, scores.device)
        st = self.tracker.state(input_ids)
        vocab = scores.shape[1]
        out = scores + tab.body_bias[:vocab]
        # no note-off of a silent note, no note-on of a sounding one (drums may always strike)
        bad = tab.keys.impossible_notes(st.sounding)  # (B, N)
        if self.max_polyphony is not None:
            full = st.num_sounding >= self.max_polyphony
            bad |= full[:, None] & tab.pitched_on
        out[:, : tab.num_notes].masked_fill_(bad, -math.inf)
        may_end = st.started & ~tab.keys.impossible_end(num_sounding=st.num_sounding) & (st.units >= self.min_units)
        if self.max_silence_units is not None:
            may_end &= st.struck  # no empty piece
        out[:, tab.end_id] = scores[:, tab.end_id].masked_fill(~may_end, -math.inf)
        if self.max_silence_units is not None:
            silent = st.started & ~st.struck & ~st.ended
            if bool(silent.any()):  # no note yet: no wait past the bound, and at it only note-ons
                room = self.max_silence_units - st.units  # (B,)
                waits = out[:, tab.first_wait: tab.first_wait + tab.max_wait]
                waits.masked_fill_(silent[:, None] & (tab.wait_lengths[None, :] > room[:, None]), -math.inf)
                must = silent & (room <= 0)
                if bool(must.any()):
                    out.masked_fill_(must[:, None] & ~tab.is_note_on[None, :vocab], -math.inf)
        if not bool(st.started.all()):  # before `start`: the prefix only
            out = torch.where(st.started[:, None], out, scores + tab.prefix_bias[:vocab])
        if bool(st.ended.any()):  # ended rows: untouched (generate() writes pad there anyway)
            out = torch.where(st.ended[:, None], scores, out)
        return out

    def allowed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, V) bool: the tokens the grammar allows after each row of ``input_ids``."""
        scores = torch.zeros(input_ids.shape[0], len(self.vocabulary), device=input_ids.device)
        return self(input_ids, scores) > -math.inf


def resolve_instruments(vocabulary: MuseNetVocabulary, names: Iterable[str | int] | str) -> list[int]:
    """Instrument indices for instrument names, group names (``strings`` -> violin, cello) or indices.

    A string is split on commas and underscores (``"piano,violin"``, ``"piano_strings"``); names
    are matched case-insensitively (``"Piano"``).
    """
    if isinstance(names, str):
        names = [n for part in names.split(",") for n in part.strip().split("_") if n]
    out: list[int] = []
    for name in names:
        key = name.strip().lower() if isinstance(name, str) else name
        if isinstance(name, int):
            found = [name]
        elif key in vocabulary.instrument_index:
            found = [vocabulary.instrument_index[key]]
        elif key in GROUPS:
            found = vocabulary.instruments_for_groups([key])
        else:
            known = [i.name for i in vocabulary.instruments] + list(GROUPS)
            raise ValueError(f"unknown instrument {name!r}; choose from {', '.join(dict.fromkeys(known))}")
        out += [i for i in found if i not in out]
    if not out:
        raise ValueError("no instruments given")
    return out


class InstrumentSteeringLogitsProcessor(LogitsProcessor):
    """Steers the choice of instrument for note-ons, and nothing else.

    Steering decides *which* instrument plays a note, never *whether* a note is struck: the total
    probability of a note-on (against waits, note-offs and ``end``) stays what the model gave it,
    so rhythm, density and the closing of notes stay the model's own. Within the note-ons,
    ``mode="soft"`` makes each requested instrument's note-on ``e**strength`` times likelier than
    it was against the other instruments' (the model can still pick another, as MuseNet's
    instrument tokens were "strong suggestions"); ``mode="hard"`` gives all the note-on
    probability to the requested instruments, in the model's proportions among them.
    Note-offs are never changed, so notes already sounding (e.g. from a primer) can end.

    Why mass-preserving: a plain bias on the requested note-ons also moves probability from waits
    and note-offs to note-ons. Measured with the bundled model (irish on violin, 20 s), that bias
    (strength 5) struck notes faster than the model ended them: 56% of notes lasted over 4 s and
    40 sounded at once, against 0% and 1.2 without steering.

    Args:
        vocabulary: the model's vocabulary.
        instruments: instrument or group names or indices (see :func:`resolve_instruments`).
        mode: ``"soft"`` or ``"hard"``.
        strength: the soft odds factor, in logits (``e**strength``; default
            :data:`DEFAULT_STEERING_STRENGTH`).
    """

    def __init__(self, vocabulary: MuseNetVocabulary, instruments: Iterable[str | int] | str,
                 mode: str = "soft", strength: float = DEFAULT_STEERING_STRENGTH):
        if mode not in ("soft", "hard"):
            raise ValueError(f"steering mode must be 'soft' or 'hard', got {mode!r}")
        if not math.isfinite(strength):
            raise ValueError(f"steering strength must be a finite number, got {strength}")
        self.vocabulary = vocabulary
        self.instruments = resolve_instruments(vocabulary, instruments)
        self.mode, self.strength = mode, float(strength)
        on = torch.as_tensor(vocabulary.is_note_on)
        requested = on & torch.isin(torch.as_tensor(vocabulary.note_instrument), torch.tensor(self.instruments))
        self._requested = requested.nonzero().squeeze(1)  # (R,) ids of the requested note-ons
        self._others = (on & ~requested).nonzero().squeeze(1)  # (O,) ids of every other note-on
        self._index_on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _indices(self, device: torch.device, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = f"{device}/{vocab}"
        if key not in self._index_on:
            req, oth = self._requested, self._others
            self._index_on[key] = (req[req < vocab].to(device), oth[oth < vocab].to(device))
        return self._index_on[key]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        req, oth = self._indices(scores.device, scores.shape[1])
        logits = scores.float()
        mass_req = torch.logsumexp(logits[:, req], dim=1)  # (B,) log P(note-on, requested)
        mass_oth = torch.logsumexp(logits[:, oth], dim=1)  # (B,) log P(note-on, other instrument)
        mass_on = torch.logaddexp(mass_req, mass_oth)  # (B,) log P(note-on), kept
        out = scores.clone()
        if self.mode == "soft":
            # requested odds x e**strength, then both parts scaled so they sum to P(note-on) again
            shift = mass_on - torch.logaddexp(mass_req + self.strength, mass_oth)  # (B,)
            shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
            out[:, req] += (shift + self.strength)[:, None].to(out.dtype)
            out[:, oth] += shift[:, None].to(out.dtype)
        else:
            # all of P(note-on) onto the requested instruments; none possible: no note-on at all
            shift = mass_on - mass_req
            shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
            out[:, req] += shift[:, None].to(out.dtype)
            out[:, oth] = -math.inf
        return out


class TargetLengthLogitsProcessor(LogitsProcessor):
    """Ends pieces within ``tolerance`` of ``seconds`` (counted from the piece's start).

    Before ``(1 - tolerance) * seconds``: no ``end``. Waits that would pass
    ``(1 + tolerance) * seconds`` are forbidden. From ``seconds`` on: only note-offs of sounding
    notes, then ``end`` once nothing sounds, so the piece closes without moving time on.

    Args:
        vocabulary: the model's vocabulary.
        seconds: the requested length.
        tolerance: the allowed relative deviation (0.1: within 10%).
        tracker: a :class:`NoteStateTracker` to share with other processors.
    """

    def __init__(self, vocabulary: MuseNetVocabulary, seconds: float, tolerance: float = 0.1,
                 tracker: NoteStateTracker | None = None):
        if seconds <= 0 or not 0 <= tolerance < 1:
            raise ValueError("seconds must be positive and tolerance in [0, 1)")
        unit = vocabulary.wait_unit_seconds
        self.vocabulary = vocabulary
        self.seconds, self.tolerance = seconds, tolerance
        self.target_units = int(round(seconds / unit))
        self.min_units = int(math.ceil((1 - tolerance) * seconds / unit - 1e-9))
        self.max_units = int(math.floor((1 + tolerance) * seconds / unit + 1e-9))
        self.tracker = tracker or NoteStateTracker(vocabulary)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tab = _tables(self.vocabulary, scores.device)
        st = self.tracker.state(input_ids)
        live = st.started & ~st.ended  # rows in the body
        out = scores.clone()
        early = live & (st.units < self.min_units)
        if bool(early.any()):  # no end too early
            out[:, tab.end_id] = out[:, tab.end_id].masked_fill(early, -math.inf)
        room = self.max_units - st.units  # (B,) units a wait may still take
        near = live & (room < tab.max_wait)
        if bool(near.any()):  # no wait past the maximum length
            waits = out[:, tab.first_wait: tab.first_wait + tab.max_wait]
            waits.masked_fill_(near[:, None] & (tab.wait_lengths[None, :] > room[:, None]), -math.inf)
        over = live & (st.units >= self.target_units)
        if bool(over.any()):  # past the target: close the sounding notes, then end
            closing = torch.zeros_like(out, dtype=torch.bool)  # the grammar's note-offs (of sounding notes), `end`
            closing[:, : tab.num_notes] = tab.note_off & ~tab.keys.impossible_notes(st.sounding, note_ons=False)
            closing[:, tab.end_id] = ~tab.keys.impossible_end(num_sounding=st.num_sounding)
            out.masked_fill_(over[:, None] & ~closing, -math.inf)
        return out


def grammar_violations(vocabulary: MuseNetVocabulary, ids: Sequence[int], start: int = 0) -> list[str]:
    """What in ``ids`` breaks the grammar the processors enforce (empty when nothing does).

    Checked from position ``start`` on (the state is built from all of ``ids``): a note-off of a
    silent note, a note-on of a sounding note, a prefix or special token after ``start``, a
    token other than ``pad`` after ``end``, ``end`` while notes sound, an id outside the
    vocabulary. A slow reference walk, for tests and reports.
    """
    v = vocabulary
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    problems: list[str] = []
    sounding: set[tuple[int, int]] = set()
    started = ended = False
    for i, tid in enumerate(ids):
        check = i >= start
        if not 0 <= tid < len(v):
            if check:
                problems.append(f"{i}: id {tid} outside the vocabulary")
            continue
        if ended:
            if check and tid != v.pad_id:
                problems.append(f"{i}: {v.tokens[tid]} after end")
            continue
        if tid == v.end_id:
            if check and sounding:
                problems.append(f"{i}: end while {len(sounding)} notes sound")
            ended = True
            continue
        if v.is_note[tid]:
            key = (int(v.note_instrument[tid]), int(v.note_pitch[tid]))
            if v.is_note_off[tid]:
                if key not in sounding and check:
                    problems.append(f"{i}: note-off of silent {v.tokens[tid]}")
                sounding.discard(key)
            elif key[0] != v.drum_index:
                if key in sounding and check:
                    problems.append(f"{i}: note-on of sounding {v.tokens[tid]}")
                sounding.add(key)
            continue
        if v.is_prefix[tid] or v.is_special[tid]:
            if started and check:
                problems.append(f"{i}: {v.tokens[tid]} inside the piece")
            started = started or tid == v.start_id
    return problems


__all__ = [
    "DEFAULT_STEERING_STRENGTH",
    "MAX_SILENCE_SECONDS",
    "NoteState",
    "NoteStateTracker",
    "MusicGrammarLogitsProcessor",
    "InstrumentSteeringLogitsProcessor",
    "TargetLengthLogitsProcessor",
    "resolve_instruments",
    "grammar_violations",
]
