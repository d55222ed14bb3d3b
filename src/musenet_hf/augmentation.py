"""Data augmentation on note events: transposition, volume scaling, timing stretch.

MuseNet augmented its training data by transposing pieces (reducing the range later in
training so parts stay where their instruments can play), scaling volumes and stretching time
(DESIGN.md §1). Here each is a vectorized transform of a *note array*, the compact form the
data pipeline stores per piece (see :data:`NOTE_COLUMNS`), applied before the notes are encoded
to tokens, so the tokenizer's rules (quantization, note-offs, doubled notes) stay the only
encoding rules. Mixup on token embeddings lives in :mod:`musenet_hf.training_losses` (it acts on the
model, not on notes).

Every transform draws from a ``numpy.random.Generator`` it is given, so a window is a pure
function of (seed, epoch, index): resuming a run reproduces its data exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .midi_notes import Note, NoteArrays, Score
from .vocabulary import MuseNetVocabulary

# One row per note; times in seconds (start, end) and quarter-note beats (start_beat, end_beat).
NOTE_COLUMNS = ("program", "is_drum", "pitch", "velocity", "start", "end", "start_beat", "end_beat")
PROGRAM, IS_DRUM, PITCH, VELOCITY, START, END, START_BEAT, END_BEAT = range(len(NOTE_COLUMNS))

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
        drop_instrumentation: the share of windows whose prefix loses its instrumentation token,
            so a prompt without instruments (``pipeline(composer="bach")``) is one the model saw.
        enabled: master switch.
    """

    transpose: int = 5
    transpose_final: int | None = 2
    volume: float = 0.1
    stretch: float = 0.05
    revoice: float = 0.0
    drop_instrumentation: float = 0.0
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


def notes_to_array(notes: NoteArrays | Score | Sequence[Note]) -> np.ndarray:
    """Notes -> a ``(N, 8)`` float64 array with the columns of :data:`NOTE_COLUMNS`."""
    if isinstance(notes, NoteArrays):
        return np.stack([np.asarray(getattr(notes, c), dtype=np.float64) for c in NOTE_COLUMNS], axis=1)
    items = notes.notes if isinstance(notes, Score) else list(notes)
    if not items:
        return np.zeros((0, len(NOTE_COLUMNS)), dtype=np.float64)
    return np.array([[getattr(n, c) for c in NOTE_COLUMNS] for n in items], dtype=np.float64)


def array_to_note_arrays(arr: np.ndarray, tempos: Sequence[tuple[float, float]] = ((0.0, 120.0),),
                         source: str = "<augmented>") -> NoteArrays:
    """A note array ``(N, 8)`` as :class:`~musenet_hf.midi_io.NoteArrays`, which
    ``tokenizer.encode_notes`` takes directly (no per-note Python objects)."""
    return NoteArrays(
        program=arr[:, PROGRAM].astype(np.int64), is_drum=arr[:, IS_DRUM] > 0, pitch=arr[:, PITCH].astype(np.int64),
        velocity=arr[:, VELOCITY].astype(np.int64), start=arr[:, START], end=arr[:, END],
        start_beat=arr[:, START_BEAT], end_beat=arr[:, END_BEAT], tempos=list(tempos) or [(0.0, 120.0)],
        ticks_per_beat=480, duration=float(arr[:, END].max()) if len(arr) else 0.0, source=source,
    )


def array_to_notes(arr: np.ndarray) -> list[Note]:
    """Inverse of :func:`notes_to_array`, as :class:`~musenet_hf.midi_io.Note` objects."""
    return array_to_note_arrays(arr).to_notes()


def allowed_transpositions(arr: np.ndarray, vocabulary: MuseNetVocabulary, limit: int) -> np.ndarray:
    """Every shift in ``[-limit, limit]`` that keeps each pitched note playable. Shape ``(K,)``.

    A note must stay inside its instrument's range (:data:`INSTRUMENT_RANGES`, or 0-127), widened
    to include the piece's own notes of that instrument: a part already written beyond the
    textbook range may not go further out, but does not forbid every shift. Drums never move
    and do not constrain. The result always contains 0.
    """
    pitched = arr[:, IS_DRUM] == 0
    lo, hi = -limit, limit
    if pitched.any():
        programs = arr[pitched, PROGRAM].astype(np.int64)
        pitches = arr[pitched, PITCH].astype(np.int64)
        inst = vocabulary.program_to_instrument[programs]
        for i in np.unique(inst):
            p = pitches[inst == i]
            r_lo, r_hi = INSTRUMENT_RANGES.get(vocabulary.instruments[i].name, (0, 127))
            lo = max(lo, min(r_lo, p.min()) - p.min())
            hi = min(hi, max(r_hi, p.max()) - p.max())
    return np.arange(lo, hi + 1)


def transpose(arr: np.ndarray, semitones: int) -> np.ndarray:
    """A copy of ``arr`` with every pitched note moved by ``semitones`` (drums untouched)."""
    out = arr.copy()
    pitched = out[:, IS_DRUM] == 0
    out[pitched, PITCH] += semitones
    if out[pitched, PITCH].size and (out[pitched, PITCH].min() < 0 or out[pitched, PITCH].max() > 127):
        raise ValueError(f"transposing by {semitones} leaves the MIDI pitch range")
    return out


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


def revoice(arr: np.ndarray, rng: np.random.Generator, vocabulary: MuseNetVocabulary) -> np.ndarray:
    """A copy of ``arr`` with each part moved onto another melodic instrument whose range fits.

    A part is the notes of one instrument class (drums stay). Each part either moves whole to an
    instrument that holds its range (moved by an octave when that makes it fit), or is split at
    its median pitch into an upper and a lower voice, each moved to an instrument that holds it
    (violin over cello, flute over bass, ...): a chorale read as one piano part can so become a
    string or wind ensemble. A part that no instrument holds keeps its instrument. Every draw
    comes from ``rng``.
    """
    out = arr.copy()
    pitched = out[:, IS_DRUM] == 0
    inst = np.full(len(out), -1)
    inst[pitched] = vocabulary.program_to_instrument[out[pitched, PROGRAM].astype(np.int64)]
    for i in np.unique(inst[pitched]):
        part = np.flatnonzero(inst == i)
        pitches = out[part, PITCH]
        voices = [part]
        if rng.random() < 0.5 and len(np.unique(pitches)) > 1:
            cut = np.median(pitches)
            upper = pitches > cut if (pitches > cut).any() else pitches >= cut
            voices = [part[upper], part[~upper]]
        for voice in voices:
            if not len(voice):
                continue
            options = _fitting(int(out[voice, PITCH].min()), int(out[voice, PITCH].max()))
            if not options:
                continue
            name, shift = options[rng.integers(len(options))]
            out[voice, PROGRAM] = REVOICE_PROGRAMS[name]
            out[voice, PITCH] += shift
    return out


def augment(
    arr: np.ndarray,
    tempos: list[tuple[float, float]],
    rng: np.random.Generator,
    config: AugmentationConfig,
    vocabulary: MuseNetVocabulary,
    progress: float = 0.0,
) -> tuple[np.ndarray, list[tuple[float, float]], dict[str, float]]:
    """Randomly transpose, re-voice (a ``config.revoice`` share), rescale volumes and stretch time.

    Args:
        arr: ``(N, 8)`` note array (:data:`NOTE_COLUMNS`); not modified.
        tempos: the piece's ``(seconds, bpm)`` tempo changes (stretched along with the notes).
        rng: the source of randomness (seed it per window for reproducible data).
        config: the augmentation settings.
        vocabulary: maps programs to instrument classes for the range check.
        progress: fraction of training done, for the transposition schedule.

    Returns:
        The new ``(N, 8)`` array, the new tempo list and what was drawn
        (``{"transpose": semitones, "volume": factor, "stretch": factor, "revoice": bool}``).
    """
    # Draw all three numbers unconditionally so switching one transform off does not change
    # what the others draw.
    choices = allowed_transpositions(arr, vocabulary, config.max_transpose(progress))
    k = int(choices[rng.integers(len(choices))])
    vol = float(rng.uniform(1.0 - config.volume, 1.0 + config.volume))
    st = float(rng.uniform(1.0 - config.stretch, 1.0 + config.stretch))
    revoiced = bool(rng.random() < config.revoice)
    if not config.enabled:
        return arr, tempos, {"transpose": 0, "volume": 1.0, "stretch": 1.0, "revoice": False}
    out = transpose(arr, k)
    if revoiced:  # after the transposition: the new instruments' ranges hold the moved notes
        out = revoice(out, rng, vocabulary)
    out[:, VELOCITY] = np.clip(np.rint(out[:, VELOCITY] * vol), 1, 127)
    # Seconds stretch; beat positions stay, so the tempo slows by the same factor.
    out[:, START] *= st
    out[:, END] *= st
    new_tempos = [(t * st, bpm / st) for t, bpm in tempos]
    return out, new_tempos, {"transpose": k, "volume": vol, "stretch": st, "revoice": revoiced}


__all__ = [
    "AugmentationConfig", "INSTRUMENT_RANGES", "NOTE_COLUMNS", "REVOICE_PROGRAMS", "allowed_transpositions",
    "array_to_note_arrays", "array_to_notes", "augment", "notes_to_array", "revoice", "transpose",
]
