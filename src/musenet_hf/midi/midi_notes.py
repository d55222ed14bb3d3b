"""What a MIDI file's notes are, as both readers (:mod:`~musenet_hf.midi.midi_io` and its symusic fast
path :mod:`~musenet_hf.midi.midi_symusic`) produce them: :class:`Note`, :class:`Score`,
:class:`NoteArrays` (the same notes as numpy columns) and :class:`RawNotes` (notes in ticks of one
sequence, before sustain, tempo and sorting: the common middle of every backend).

A low module of types only, so that the readers can both sit above it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, make_dataclass, replace
from typing import Sequence

import numpy as np

DRUM_CHANNEL = 9  # channel 10 of General MIDI, counted from 0
# The columns of a note matrix (NoteArrays.to_matrix), the form the data pipeline stores per piece.
NOTE_COLUMNS = ("program", "is_drum", "pitch", "velocity", "start", "end", "start_beat", "end_beat")


@dataclass(frozen=True, slots=True)
class Note:
    """One note.

    Attributes:
        program: General MIDI program 0-127 in force on the note's channel at its onset (0 for drums).
        is_drum: played on channel 10 (index 9).
        pitch: MIDI pitch 0-127.
        velocity: 1-127.
        start, end: seconds through the tempo map (``end >= start``; zero-length notes are kept).
        start_beat, end_beat: quarter-note beats, ``ticks / ticks_per_beat``.
    """

    program: int
    is_drum: bool
    pitch: int
    velocity: int
    start: float
    end: float
    start_beat: float
    end_beat: float


# Building a frozen dataclass goes through object.__setattr__ once per field, twice as slow as
# a plain slotted one. Notes are built by the hundred thousand, so they are built as this
# layout-identical mutable twin and then given their real class.
_NoteBuilder = make_dataclass("_NoteBuilder", [(f.name, f.type) for f in fields(Note)], slots=True)


@dataclass
class Score:
    """The notes of a MIDI file and its clock.

    Attributes:
        notes: sorted by (start, pitch, program, is_drum).
        tempos: ``(time in seconds, bpm)`` changes, the first at 0.0 (120 bpm when the file has none).
        ticks_per_beat: the file's resolution.
        duration: seconds; the end of the last note, or of the last event when there are no notes.
        source: the file name, ``"<bytes>"`` or ``"<MidiFile>"``.
    """

    notes: list[Note]
    tempos: list[tuple[float, float]]
    ticks_per_beat: int
    duration: float
    source: str


@dataclass
class NoteArrays:
    """The notes of a MIDI file as numpy columns, one row per note (the order of ``Score.notes``).

    ``program``, ``pitch``, ``velocity``: int64 ``(N,)``; ``is_drum``: bool ``(N,)``;
    ``start``, ``end``, ``start_beat``, ``end_beat``: float64 ``(N,)``. The other fields are
    those of :class:`Score`.
    """

    program: np.ndarray
    is_drum: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    start: np.ndarray
    end: np.ndarray
    start_beat: np.ndarray
    end_beat: np.ndarray
    tempos: list[tuple[float, float]]
    ticks_per_beat: int
    duration: float
    source: str

    def __len__(self) -> int:
        return len(self.pitch)

    def to_notes(self) -> list[Note]:
        """The rows as :class:`Note` objects (Python ints, floats and bools)."""
        cols = [getattr(self, f.name).tolist() for f in fields(Note)]
        notes = list(map(_NoteBuilder, *cols))
        for n in notes:
            n.__class__ = Note
        return notes

    def take(self, rows: np.ndarray) -> "NoteArrays":
        """A copy with only ``rows`` (a boolean mask ``(N,)`` or indices), in their order; the
        tempo changes and ``duration`` stay those of the piece."""
        cols = {c: getattr(self, c)[rows] for c in NOTE_COLUMNS}
        return replace(self, **cols)

    def to_score(self) -> Score:
        return Score(self.to_notes(), self.tempos, self.ticks_per_beat, self.duration, self.source)

    def to_matrix(self) -> np.ndarray:
        """The notes as one float64 ``(N, 8)`` matrix, columns :data:`NOTE_COLUMNS` (for storage)."""
        return np.stack([np.asarray(getattr(self, c), dtype=np.float64) for c in NOTE_COLUMNS], axis=1)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, tempos: Sequence[tuple[float, float]] = ((0.0, 120.0),),
                    source: str = "<stored notes>") -> "NoteArrays":
        """Inverse of :meth:`to_matrix`; ``duration`` is the last note's end, ``ticks_per_beat`` 480."""
        m = np.asarray(matrix, dtype=np.float64).reshape(-1, len(NOTE_COLUMNS))
        program, is_drum, pitch, velocity, start, end, start_beat, end_beat = m.T
        return cls(program=program.astype(np.int64), is_drum=is_drum > 0, pitch=pitch.astype(np.int64),
                   velocity=velocity.astype(np.int64), start=start.copy(), end=end.copy(),
                   start_beat=start_beat.copy(), end_beat=end_beat.copy(), tempos=list(tempos) or [(0.0, 120.0)],
                   ticks_per_beat=480, duration=float(end.max()) if len(end) else 0.0, source=source)


@dataclass
class RawNotes:
    """Notes in ticks of one sequence, before sustain, tempo and sorting.

    ``channel, pitch, velocity, program, start, end``: int64 ``(N,)``. ``pedal_*``: the CC64
    events ``(P,)`` in time order (ties in file order), ``tempo_*``: tempo changes ``(T,)``,
    sorted by tick, one per tick. ``end_tick``: the last event of the sequence.
    """

    channel: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    start: np.ndarray
    end: np.ndarray
    pedal_channel: np.ndarray
    pedal_tick: np.ndarray
    pedal_down: np.ndarray
    tempo_tick: np.ndarray
    tempo_mspq: np.ndarray
    end_tick: int


__all__ = ["DRUM_CHANNEL", "NOTE_COLUMNS", "Note", "NoteArrays", "RawNotes", "Score"]
