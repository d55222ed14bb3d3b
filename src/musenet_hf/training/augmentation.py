"""Data augmentation on note events: transposition, volume scaling, timing stretch.

MuseNet augmented its training data by transposing pieces (reducing the range later in
training so parts stay where their instruments can play), scaling volumes and stretching time
(docs/musenet.md §1). Here each is a vectorized transform of a piece's
:class:`~musenet_hf.midi.midi_notes.NoteArrays` (the notes as numpy columns, the form both MIDI
readers give and the data pipeline stores), applied before the notes are encoded to tokens, so the tokenizer's rules (quantization, note-offs, doubled notes) stay the only
encoding rules. Mixup on token embeddings lives in :mod:`musenet_hf.training.training_losses` (it acts on the
model, not on notes).

Every transform draws from a ``numpy.random.Generator`` it is given, so a window is a pure
function of (seed, epoch, index): resuming a run reproduces its data exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..midi.midi_notes import NoteArrays
from ..tokenizer.vocabulary import MuseNetVocabulary

# Playable MIDI pitch ranges of the vocabulary's instrument classes (written range, rounded
# outward a little; orchestration handbooks differ by a few semitones at the top). A class not
# listed may use every pitch. Transposition never pushes a note outside these (see below).
INSTRUMENT_RANGES: dict[str, tuple[int, int]] = {
    "piano": (21, 108),     # A0 - C8
    "violin": (55, 103),    # G3 - G7
    "cello": (36, 81),      # C2 - A5
    "bass": (28, 67),       # E1 - G4
    "guitar": (40, 88),     # E2 - E6
    "flute": (60, 98),      # C4 - D7
    "clarinet": (50, 94),   # D3 - A#6
    "trumpet": (54, 86),    # F#3 - D6
    "harp": (23, 103),      # B0 - G7
}


@dataclass
class AugmentationConfig:
    """What to augment and by how much (all off with ``enabled=False``).

    Attributes:
        transpose: the largest transposition in semitones (either way) at the start of training.
        transpose_final: the largest transposition at the end of training; the limit narrows
            linearly from ``transpose`` to it (MuseNet narrowed its range late in training).
            ``None`` keeps ``transpose`` throughout.
        volume: velocities are scaled by a factor drawn uniformly from ``[1 - volume, 1 + volume]``.
        stretch: times are scaled by a factor drawn uniformly from ``[1 - stretch, 1 + stretch]``
            (the seconds clock; with the beats clock the tempo changes instead).
        revoice: the share of windows whose parts are re-voiced onto other melodic instruments
            (:func:`revoice`), so the model learns to play and close notes on instruments the
            corpus rarely has; the instrumentation token follows the new instruments.
        revoice_one_instrument: of the re-voiced windows, the share whose voices all move onto one
            instrument (a four-voice Mass on clarinets, a chorale on violins), so that a request
            for one instrument can still be answered in several voices; without it a lone
            instrument mostly carries a one-line tune.
        late_entries: the share of opening windows (those that start at the piece's opening) whose
            other voices are held back (:func:`hold_back_entries`): for the first seconds, drawn
            uniformly up to ``late_entries_seconds``, only the piece's top line sounds, and the
            other voices come in after it. Under a polyphonic label the model so learns that a
            lone opening line is followed by entries, as in an imitative motet: without it, a line
            it began alone is, to the notes so far, a one-line folk tune, and stays one.
        late_entries_seconds: the longest held-back opening, in seconds.
        trim_solo_openings: the share of opening windows whose lone opening line is cut off
            (:func:`trim_solo_opening`): the piece starts where its second voice comes in, so a
            polyphonic label opens in several voices. A model that opens a polyphonic label with
            one line seldom brings a second one in (its line reads, to the notes so far, like a
            one-line tune), and the first moment is where it decides.
        drop_instrumentation: the share of windows whose prefix loses its instrumentation token,
            so a prompt without instruments (``pipeline(composer="bach")``) is one the model saw.
        drop_composer: the share of windows whose prefix loses its composer/style token (label
            dropout), so the model also learns the music of no label in particular: the
            unconditional side of classifier-free guidance
            (:class:`~musenet_hf.generation.guidance.ComposerGuidanceLogitsProcessor`).
        enabled: master switch.
    """

    transpose: int = 5
    transpose_final: int | None = 2
    volume: float = 0.1
    stretch: float = 0.05
    revoice: float = 0.0
    revoice_one_instrument: float = 0.0
    late_entries: float = 0.0
    late_entries_seconds: float = 8.0
    trim_solo_openings: float = 0.0
    drop_instrumentation: float = 0.0
    drop_composer: float = 0.0
    enabled: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "AugmentationConfig":
        """From a YAML/JSON mapping; ``None`` or ``{}`` means the defaults, ``False`` means off."""
        if d is None:
            return cls()
        if d is False:
            return cls(enabled=False)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def max_transpose(self, progress: float) -> int:
        """The transposition limit in semitones at ``progress`` (0 = start, 1 = end of training)."""
        final = self.transpose if self.transpose_final is None else self.transpose_final
        p = min(max(progress, 0.0), 1.0)
        return int(round(self.transpose + (final - self.transpose) * p))


def allowed_transpositions(notes: NoteArrays, vocabulary: MuseNetVocabulary, limit: int) -> np.ndarray:
    """Every shift in ``[-limit, limit]`` that keeps each pitched note playable. Shape ``(K,)``.

    A note must stay inside its instrument's range (:data:`INSTRUMENT_RANGES`, or 0-127), widened
    to include the piece's own notes of that instrument: a part already written beyond the
    textbook range may not go further out, but does not forbid every shift. Drums never move
    and do not constrain. The result always contains 0.
    """
    pitched = ~notes.is_drum
    lo, hi = -limit, limit
    if pitched.any():
        programs = notes.program[pitched]
        pitches = notes.pitch[pitched]
        inst = vocabulary.program_to_instrument[programs]
        for i in np.unique(inst):
            p = pitches[inst == i]
            r_lo, r_hi = INSTRUMENT_RANGES.get(vocabulary.instruments[i].name, (0, 127))
            lo = max(lo, min(r_lo, p.min()) - p.min())
            hi = min(hi, max(r_hi, p.max()) - p.max())
    return np.arange(lo, hi + 1)


def transpose(notes: NoteArrays, semitones: int) -> NoteArrays:
    """A copy of ``notes`` with every pitched note moved by ``semitones`` (drums untouched)."""
    pitch = np.where(notes.is_drum, notes.pitch, notes.pitch + semitones)
    moved = pitch[~notes.is_drum]
    if moved.size and (moved.min() < 0 or moved.max() > 127):
        raise ValueError(f"transposing by {semitones} leaves the MIDI pitch range")
    return replace(notes, pitch=pitch)


# The melodic instruments re-voicing may choose, and the GM program written for each.
REVOICE_PROGRAMS: dict[str, int] = {
    "piano": 0, "violin": 40, "cello": 42, "bass": 32, "guitar": 24, "flute": 73, "clarinet": 71, "trumpet": 56,
    "harp": 46,
}


def _fitting(lo: int, hi: int) -> list[tuple[str, int]]:
    """``(instrument, octave shift)`` for every re-voicing instrument whose range holds
    ``lo..hi`` as written or moved by an octave (unmoved preferred)."""
    out = []
    for name in REVOICE_PROGRAMS:
        r_lo, r_hi = INSTRUMENT_RANGES[name]
        shift = next((k for k in (0, -12, 12) if r_lo <= lo + k and hi + k <= r_hi), None)
        if shift is not None:
            out.append((name, shift))
    return out


def revoice(notes: NoteArrays, rng: np.random.Generator, vocabulary: MuseNetVocabulary,
            one_instrument: float = 0.0) -> NoteArrays:
    """A copy of ``notes`` with each part moved onto another melodic instrument whose range fits.

    A part is the notes of one instrument class (drums stay). Each part either moves whole to an
    instrument that holds its range (moved by an octave when that makes it fit), or is split at
    its median pitch into an upper and a lower voice, each moved to an instrument that holds it
    (violin over cello, flute over bass, ...): a chorale read as one piano part can so become a
    string or wind ensemble. With probability ``one_instrument`` a part's voices all move onto
    one instrument that holds each of them (each voice moved by its own octave, if need be): the
    chorale on four violins. A part that no instrument holds keeps its instrument. Every draw
    comes from ``rng`` (the ``one_instrument`` draw only when it is above 0, so runs without it
    keep their exact windows).
    """
    program, pitch = notes.program.copy(), notes.pitch.copy()
    pitched = ~notes.is_drum
    inst = np.full(len(pitch), -1)
    inst[pitched] = vocabulary.program_to_instrument[program[pitched]]
    for i in np.unique(inst[pitched]):
        part = np.flatnonzero(inst == i)
        pitches = pitch[part]
        voices = [part]
        if rng.random() < 0.5 and len(np.unique(pitches)) > 1:
            cut = np.median(pitches)
            upper = pitches > cut if (pitches > cut).any() else pitches >= cut
            voices = [part[upper], part[~upper]]
        voices = [voice for voice in voices if len(voice)]
        fits = [dict(_fitting(int(pitch[voice].min()), int(pitch[voice].max()))) for voice in voices]
        shared = [name for name in REVOICE_PROGRAMS if all(name in f for f in fits)]
        if one_instrument > 0 and rng.random() < one_instrument and shared:
            name = shared[rng.integers(len(shared))]
            fits = [{name: f[name]} for f in fits]
        for voice, fit in zip(voices, fits):
            if not fit:
                continue
            options = list(fit.items())
            name, shift = options[rng.integers(len(options))]
            program[voice] = REVOICE_PROGRAMS[name]
            pitch[voice] += shift
    return replace(notes, program=program, pitch=pitch)


def hold_back_entries(notes: NoteArrays, seconds: float) -> NoteArrays:
    """A copy of ``notes`` in which only the top line sounds before ``seconds``.

    A pitched note that starts before ``seconds`` stays when no higher pitched note sounds at its
    onset (one starting with it counts); the others are left out, so the lower voices enter at
    their first note from ``seconds`` on. Drums and every note from ``seconds`` on stay as they
    are. A one-line piece comes back unchanged.
    """
    start, end, pitch = notes.start, notes.end, notes.pitch
    early = np.flatnonzero((start < seconds) & ~notes.is_drum)
    s, e, p = start[early], end[early], pitch[early]
    # covered[i, j]: note j is higher than note i and sounds at i's onset
    covered = (p[None, :] > p[:, None]) & (s[None, :] <= s[:, None]) & (e[None, :] > s[:, None])
    keep = np.ones(len(pitch), dtype=bool)
    keep[early[covered.any(axis=1)]] = False
    return notes.take(keep)


def trim_solo_opening(notes: NoteArrays, within: float = 10.0) -> NoteArrays:
    """A copy of ``notes`` that starts where two pitched notes first sound together.

    The moment is the first onset, within ``within`` seconds, at which two or more pitched notes
    sound. Notes that end before it are left out; one still sounding there starts there (its
    start beat moved in proportion); every time, beat and tempo change moves back by it. A piece
    that opens with two or more notes, and one with no such moment by ``within``, come back
    unchanged.
    """
    pitched = ~notes.is_drum
    s, e = notes.start[pitched], notes.end[pitched]
    onsets = np.unique(s[s < within])
    sounding = ((s[None, :] <= onsets[:, None]) & (e[None, :] > onsets[:, None])).sum(axis=1)
    together = np.flatnonzero(sounding >= 2)
    if not len(together) or together[0] == 0:
        return notes
    t = float(onsets[together[0]])
    beat = float(notes.start_beat[pitched][s == t][0])
    out = notes.take(notes.end > t)
    early = out.start < t
    frac = np.where(early, (t - out.start) / np.maximum(out.end - out.start, 1e-9), 0.0)
    start_beat = np.where(early, out.start_beat + frac * (out.end_beat - out.start_beat), out.start_beat)
    tempos = [(max(at - t, 0.0), bpm) for k, (at, bpm) in enumerate(notes.tempos)
              if at > t or k + 1 == len(notes.tempos) or notes.tempos[k + 1][0] > t]
    return replace(out, start=np.maximum(out.start, t) - t, end=out.end - t, start_beat=start_beat - beat,
                   end_beat=out.end_beat - beat, tempos=tempos, duration=max(notes.duration - t, 0.0))


def augment(
    notes: NoteArrays,
    rng: np.random.Generator,
    config: AugmentationConfig,
    vocabulary: MuseNetVocabulary,
    progress: float = 0.0,
    opening: bool = False,
) -> tuple[NoteArrays, dict[str, float]]:
    """Randomly transpose, re-voice (a ``config.revoice`` share), rescale volumes and stretch time;
    hold back the entries of a ``config.late_entries`` share of opening windows and cut the lone
    opening line off a ``config.trim_solo_openings`` share.

    Args:
        notes: the piece's notes and tempo changes (``notes.tempos``, stretched along with the
            notes); not modified.
        rng: the source of randomness (seed it per window for reproducible data).
        config: the augmentation settings.
        vocabulary: maps programs to instrument classes for the range check.
        progress: fraction of training done, for the transposition schedule.
        opening: the window starts at the piece's opening (only those hold back entries or are trimmed).

    Returns:
        The new notes and what was drawn (``{"transpose": semitones, "volume": factor, "stretch":
        factor, "revoice": bool, "late_entries": seconds of top line alone, 0 for none, "trimmed":
        whether the lone opening line was cut off}``).
    """
    # Draw all three numbers unconditionally so switching one transform off does not change
    # what the others draw.
    choices = allowed_transpositions(notes, vocabulary, config.max_transpose(progress))
    k = int(choices[rng.integers(len(choices))])
    vol = float(rng.uniform(1.0 - config.volume, 1.0 + config.volume))
    st = float(rng.uniform(1.0 - config.stretch, 1.0 + config.stretch))
    revoiced = bool(rng.random() < config.revoice)
    # (drawn only for openings and when asked: runs without it keep their exact windows)
    solo = 0.0
    if opening and config.late_entries > 0 and rng.random() < config.late_entries:
        solo = float(rng.uniform(1.0, max(config.late_entries_seconds, 1.0)))
    trim = opening and config.trim_solo_openings > 0 and bool(rng.random() < config.trim_solo_openings)
    if not config.enabled:
        return notes, {"transpose": 0, "volume": 1.0, "stretch": 1.0, "revoice": False, "late_entries": 0.0,
                       "trimmed": False}
    out = trim_solo_opening(notes) if trim else notes
    out = hold_back_entries(out, solo) if solo else out
    out = transpose(out, k)
    if revoiced:  # after the transposition: the new instruments' ranges hold the moved notes
        out = revoice(out, rng, vocabulary, config.revoice_one_instrument)
    # Seconds stretch; beat positions stay, so the tempo slows by the same factor.
    out = replace(out, velocity=np.clip(np.rint(out.velocity * vol), 1, 127).astype(np.int64),
                  start=out.start * st, end=out.end * st, duration=out.duration * st,
                  tempos=[(t * st, bpm / st) for t, bpm in out.tempos])
    return out, {"transpose": k, "volume": vol, "stretch": st, "revoice": revoiced, "late_entries": solo,
                 "trimmed": trim}


__all__ = [
    "AugmentationConfig", "INSTRUMENT_RANGES", "REVOICE_PROGRAMS", "allowed_transpositions", "augment",
    "hold_back_entries", "revoice", "trim_solo_opening",
    "transpose",
]
