"""MuseNetTokenizer: MIDI <-> MuseNet token ids, as a Transformers tokenizer.

The text side is a word-level tokenizer over the event words (``"bach piano_strings start
piano:v72:G4 wait:12 ..."``); the music side is :meth:`MuseNetTokenizer.encode_midi` and
:meth:`MuseNetTokenizer.decode_to_midi`, which go through note events
(:mod:`musenet_hf.midi.midi_io`) and vectorized numpy code, never through token strings.

Encoding rules (what a round trip keeps and what it cannot):

* times are quantized to the vocabulary's clock (10 ms for ``musenet``); a pitched note lasts
  at least one clock unit, so its note-off never precedes its note-on;
* General MIDI programs fold into the vocabulary's instrument classes (viola -> violin, organ ->
  piano, ...) and velocities into the nearest volume level (``musenet``: only piano has levels);
* one instrument class sounds one pitch once: a doubled note (same class, pitch and onset) is
  kept once with the longer length, and a note re-struck while sounding is cut at the re-strike;
* drums are note-on only and decode with a fixed length (``drum_note_units``);
* pitches the instrument cannot play do not exist here: every class has all 128 pitches.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import mido
import numpy as np
from transformers import PreTrainedTokenizer

from ..errors import MidiReadError, MidiReadWarning
from ..midi.midi_io import read_midi_arrays, write_midi
from ..midi.midi_notes import Note, NoteArrays, Score
from ..worker_pool import map_with_timeout
from .sounding import note_key
from .vocabulary import GROUPS, NUM_PITCHES, MuseNetVocabulary, VocabularyConfig, preset_config

VOCAB_FILE = "vocabulary.json"
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
# Notes later than this on the clock (46 hours at 10 ms) come from damaged time values; the
# bound also keeps the packed sort keys of encode_notes inside int64.
MAX_CLOCK_UNITS = 1 << 24

def list_midi_files(folder: str | os.PathLike) -> list[Path]:
    """Every MIDI file under ``folder`` (recursively), sorted by path; hidden folders (a corpus's
    ``.work`` caches) are not searched."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))


MidiSource = str | os.PathLike | bytes | mido.MidiFile | Score | NoteArrays


@dataclass
class FolderEncoding:
    """The result of :meth:`MuseNetTokenizer.encode_folder`.

    Attributes:
        ids: token ids per file path (str), for every file that was read.
        failed: the reason per file path for every file that could not be read.
    """

    ids: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def report(self) -> str:
        """A short text report: counts, then one line per failed file."""
        lines = [f"{len(self.ids)} files encoded, {sum(map(len, self.ids.values()))} tokens; "
                 f"{len(self.failed)} files skipped"]
        lines += [f"  skipped {path}: {reason}" for path, reason in sorted(self.failed.items())]
        return "\n".join(lines)


@dataclass
class EncodedPiece:
    """One MIDI file read and encoded, as :meth:`MuseNetTokenizer.encode_files` yields it.

    Attributes:
        prefix: the conditioning ids (``[composer] [instrumentation] start [tempo]``).
        body: the note and wait ids (no prefix, no ``end``).
        instruments: the instrumentation groups that sound in the piece.
        notes: the notes read (for augmentation and statistics).
        sha1: hex digest of the file's bytes (the data split is decided by it).
    """

    prefix: list[int]
    body: list[int]
    instruments: list[str]
    notes: NoteArrays
    sha1: str


class MuseNetTokenizer(PreTrainedTokenizer):
    """A MuseNet tokenizer: a :class:`~musenet_hf.tokenizer.vocabulary.MuseNetVocabulary` plus MIDI I/O.

    Build one with ``MuseNetTokenizer.from_preset("musenet" | "extended", **overrides)`` or load
    one with ``from_pretrained(path)`` (a ``vocabulary.json`` and the usual tokenizer JSON files).

    Example::

        >>> tok = MuseNetTokenizer.from_preset("musenet")
        >>> ids = tok.encode_midi("song.mid", composer="bach")
        >>> tok.decode(ids[:4])
        'bach piano_strings start piano:v72:G4'
        >>> tok.decode_to_midi(ids).save("again.mid")
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        preset: str = "extended",
        vocabulary: MuseNetVocabulary | None = None,
        **kwargs: Any,
    ):
        if vocabulary is None:
            if vocab_file is not None:
                with open(vocab_file, encoding="utf-8") as f:
                    vocabulary = MuseNetVocabulary(VocabularyConfig.from_dict(json.load(f)))
            else:
                vocabulary = MuseNetVocabulary(preset_config(preset))
        self.vocabulary = vocabulary
        for name, token in (("bos_token", "start"), ("eos_token", "end"), ("pad_token", "pad")):
            kwargs.setdefault(name, token)
        kwargs.setdefault("special_tokens_pattern", "none")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(preset=vocabulary.config.preset, **kwargs)

    @classmethod
    def from_preset(cls, name: str = "extended", **overrides: Any) -> "MuseNetTokenizer":
        """A tokenizer for the ``musenet`` or ``extended`` preset, built without files.

        Keyword overrides change the vocabulary (see :class:`VocabularyConfig`), e.g.
        ``from_preset("extended", clock="beats", beat_resolution=12)``.
        """
        return cls(vocabulary=MuseNetVocabulary(preset_config(name, **overrides)))

    # ------------------------------------------------------------------ text side
    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def __len__(self) -> int:
        # the vocabulary is the one source of truth (it grows with add_composers)
        return len(self.vocabulary)

    def get_vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocabulary.tokens)}

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        try:
            return self.vocabulary.token_to_id(token)
        except KeyError as err:
            raise ValueError(err.args[0]) from None

    def _convert_id_to_token(self, index: int) -> str:
        return self.vocabulary.id_to_token(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        path = Path(save_directory) / ((filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        path.write_text(json.dumps(self.vocabulary.to_dict(), indent=1), encoding="utf-8")
        return (str(path),)

    # ------------------------------------------------------------------ conditioning
    def prefix_ids(self, composer: str | None = None, instruments: Iterable[str] | str | None = None,
                   tempo: float | None = None) -> list[int]:
        """The conditioning prefix: ``[composer] [instrumentation] start [tempoNN]``.

        ``instruments`` takes instrument or group names (``["piano", "violin"]``) or an
        instrumentation token (``"piano_strings"``). Built by the vocabulary's
        :meth:`~musenet_hf.tokenizer.vocabulary.MuseNetVocabulary.prefix_ids`.
        """
        return self.vocabulary.prefix_ids(composer, instruments, tempo)

    def instruments_of(self, notes: Score | NoteArrays | Sequence[Note]) -> list[str]:
        """The instrumentation groups that sound in ``notes`` (in MuseNet's group order)."""
        v = self.vocabulary
        program, is_drum = _note_columns(notes, ("program", "is_drum"))
        used = {v.instruments[i].group for i in np.unique(v.program_to_instrument[program[~is_drum]])}
        if is_drum.any() and v.drum_index is not None:
            used.add("drums")
        return [g for g in GROUPS if g in used]

    # ------------------------------------------------------------------ MIDI -> ids
    def encode_midi(
        self,
        src: MidiSource,
        composer: str | None = None,
        instruments: Iterable[str] | str | None = None,
        *,
        sustain: bool = True,
        add_end: bool = True,
    ) -> list[int]:
        """Token ids of a MIDI file: the conditioning prefix, the notes, then ``end``.

        Args:
            src: a path, the file's bytes, a ``mido.MidiFile``, or notes already read
                (``Score`` or ``NoteArrays``).
            composer: a composer/style token name (``"bach"``); omitted when None.
            instruments: the instrumentation token's members; derived from the file when None.
            sustain: extend notes held by the sustain pedal (CC64).
            add_end: finish with the ``end`` token.

        Raises:
            MidiReadError: the file cannot be read (the message names the file and the reason).
        """
        notes = src if isinstance(src, (Score, NoteArrays)) else read_midi_arrays(src, sustain=sustain)
        body, tempo = self.encode_notes(notes)
        if instruments is None:
            instruments = self.instruments_of(notes) or None
        prefix = self.prefix_ids(composer, instruments, tempo)
        return prefix + body + ([self.vocabulary.end_id] if add_end else [])

    def encode_notes(self, score: Score | NoteArrays | Sequence[Note]) -> tuple[list[int], float | None]:
        """The note and wait ids of a score (no prefix, no ``end``), and its first tempo.

        Vectorized: notes become on/off events on the clock's integer grid, events are sorted
        (at one moment: tempo, then note-offs, then note-ons), and wait tokens fill the gaps.
        """
        v, cfg = self.vocabulary, self.vocabulary.config
        beats = cfg.clock == "beats"
        tempos = list(getattr(score, "tempos", None) or [(0.0, 120.0)])
        program, drum, pitch, velocity, start, end = _note_columns(
            score, ("program", "is_drum", "pitch", "velocity", "start_beat" if beats else "start",
                    "end_beat" if beats else "end"))
        if len(pitch) == 0:
            return [], (tempos[0][1] if beats else None)
        scale = cfg.beat_resolution if beats else 1.0 / cfg.wait_unit
        on_t, off_t = quantize(start, scale), quantize(end, scale)
        keep = on_t < MAX_CLOCK_UNITS
        if v.drum_index is None:  # a vocabulary without drums drops them
            keep &= ~drum
        if not keep.all():
            if (on_t >= MAX_CLOCK_UNITS).any():
                warnings.warn(f"{getattr(score, 'source', '<notes>')}: notes after {MAX_CLOCK_UNITS} clock units "
                              "(a damaged time value?) were dropped", MidiReadWarning, stacklevel=3)
            program, pitch, velocity, on_t, off_t, drum = (a[keep] for a in (program, pitch, velocity, on_t, off_t, drum))
        inst = np.where(drum, v.drum_index if v.drum_index is not None else 0, v.program_to_instrument[program])
        off_t = np.where(drum, on_t, np.clip(off_t, on_t + 1, MAX_CLOCK_UNITS))
        velocity = np.clip(velocity, 1, 127)

        # One sounding note per (instrument, pitch): drop doubled onsets (the longest, then the
        # loudest stays), cut re-struck notes. Sorted through two packed int64 keys.
        voice = note_key(inst, pitch)
        order = np.lexsort((((MAX_CLOCK_UNITS - 1 - off_t) << 7) | (127 - velocity), (voice << 24) | on_t))
        voice, velocity, on_t, off_t, drum = (a[order] for a in (voice, velocity, on_t, off_t, drum))
        same = voice[1:] == voice[:-1]
        keep = np.ones(len(voice), dtype=bool)
        keep[1:] = ~(same & (on_t[1:] == on_t[:-1]))
        if not keep.all():
            voice, velocity, on_t, off_t, drum = (a[keep] for a in (voice, velocity, on_t, off_t, drum))
            same = voice[1:] == voice[:-1]
        off_t[:-1] = np.where(same, np.minimum(off_t[:-1], on_t[1:]), off_t[:-1])

        inst, pitch = np.divmod(voice, NUM_PITCHES)
        on_ids = v.slot_table[inst, velocity] * 128 + pitch
        pitched = ~drum
        off_ids = v.slot_table[inst[pitched], 0] * 128 + pitch[pitched]
        # Events at one moment: tempo (kind 0), then note-offs (1), then note-ons (2), by id.
        b = max(14, len(v).bit_length())  # id bits; 2 kind bits above them, time above those
        keys = [(on_t << (b + 2)) | (2 << b) | on_ids, (off_t[pitched] << (b + 2)) | (1 << b) | off_ids]
        first_tempo = None
        if beats:
            change_t, bpms = _tempo_changes_in_beats(tempos, cfg.beat_resolution)
            tempo_ids = np.array([v.tempo_id(b) for b in bpms], dtype=np.int64)
            first_tempo = bpms[0]  # the first tempo goes in the prefix; later changes are events
            later = (change_t > 0) & (change_t < MAX_CLOCK_UNITS)
            keys.append((change_t[later] << (b + 2)) | tempo_ids[later])
        keys = np.sort(np.concatenate(keys))
        return self._interleave_waits(keys >> (b + 2), keys & ((1 << b) - 1)), first_tempo

    def _interleave_waits(self, times: np.ndarray, ids: np.ndarray) -> list[int]:
        """Insert wait tokens before each event so the clock reaches its time. Shapes: (E,)."""
        v = self.vocabulary
        m = v.config.max_wait
        delta = np.diff(times, prepend=0)
        n_waits = (delta + m - 1) // m
        cum = np.cumsum(n_waits)
        pos = np.arange(len(ids)) + cum
        out = np.empty(len(ids) + int(cum[-1]), dtype=np.int64)
        wait_len = np.full(len(out), m, dtype=np.int64)
        has = n_waits > 0
        wait_len[pos[has] - 1] = delta[has] - (n_waits[has] - 1) * m
        out[:] = v.first_wait_id + wait_len - 1
        out[pos] = ids
        return out.tolist()

    def encode_files(
        self,
        paths: Sequence[str | os.PathLike],
        composers: Sequence[str | None] | None = None,
        *,
        num_proc: int = 1,
        sustain: bool = True,
        progress: bool = True,
        quiet: bool = False,
        timeout_s: float | None = None,
    ) -> Iterator[tuple[str, EncodedPiece | None, str | None]]:
        """Read and encode many files: the package's one folder-encoding path (``encode_folder``
        and :func:`~musenet_hf.training.data.load_midi_folder` both use it).

        Yields ``(path, piece, None)`` for a file that was read and ``(path, None, reason)`` for
        one that was not; nothing else is lost. ``num_proc`` > 1 encodes in worker processes
        (:func:`~musenet_hf.worker_pool.map_with_timeout`; results then come in completion order,
        and a file that hangs past ``timeout_s`` or kills its worker is that file's failure).
        ``composers``: one composer name per path (``None``: no composer). ``quiet``: do not
        warn about recoverable damage. A progress bar counts files.
        """
        from tqdm.auto import tqdm

        paths = [str(p) for p in paths]
        composers = list(composers) if composers is not None else [None] * len(paths)
        if len(composers) != len(paths):
            raise ValueError(f"{len(composers)} composers for {len(paths)} paths")
        jobs = list(zip(paths, composers))
        with tqdm(total=len(jobs), desc="encoding MIDI", unit="file", disable=not progress) as bar:
            if num_proc > 1 and len(jobs) > 1:
                task = _EncodeTask(self.vocabulary.to_dict(), sustain, quiet)
                for job, status, value in map_with_timeout(task, jobs, num_proc, timeout_s):
                    # "ok": _encode_piece's own (path, piece, reason); else the worker died on the file
                    yield value if status == "ok" else (job[0], None, f"{status}: {value}")
                    bar.update()
            else:
                for path, composer in jobs:
                    yield _encode_piece(self, path, composer, sustain, quiet)
                    bar.update()

    def encode_folder(
        self,
        folder: str | os.PathLike,
        composer: str | None = None,
        *,
        num_proc: int = 1,
        progress: bool = True,
        sustain: bool = True,
    ) -> FolderEncoding:
        """Encode every MIDI file under ``folder`` (recursively), skipping unreadable ones.

        Each file's ids are those of :meth:`encode_midi` (prefix, notes, ``end``). A file that
        cannot be read is listed in ``result.failed`` with the reason and nothing else is lost.
        ``num_proc`` > 1 encodes in worker processes; a progress bar shows files.
        """
        result = FolderEncoding()
        paths = list_midi_files(folder)
        for path, piece, reason in self.encode_files(paths, [composer] * len(paths), num_proc=num_proc,
                                                     sustain=sustain, progress=progress):
            if piece is None:
                result.failed[path] = reason or "unknown error"
            else:
                result.ids[path] = piece.prefix + piece.body + [self.vocabulary.end_id]
        result.ids = dict(sorted(result.ids.items()))
        return result

    # ------------------------------------------------------------------ ids -> MIDI
    def decode_to_notes(self, ids: Sequence[int] | Any) -> list[Note]:
        """Note events of any id sequence (a model's output may be cut anywhere).

        Unknown ids, prefix tokens and note-offs of silent notes are ignored; a note-on of a
        sounding note ends it first; ``end`` stops decoding; notes open at the end are closed
        there. Times follow the vocabulary's clock (beats: through the tempo tokens, 120 bpm
        until the first).
        """
        v, cfg = self.vocabulary, self.vocabulary.config
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        beats = cfg.clock == "beats"
        unit = 1.0 / cfg.beat_resolution if beats else cfg.wait_unit
        bpm = 120.0
        units = 0  # clock units since the start
        seconds = 0.0
        beat = 0.0
        sounding: dict[tuple[int, int], tuple[float, float, int]] = {}
        notes: list[Note] = []
        drums: dict[int, int] = {}  # drum pitch -> index in notes of its last hit
        drum_len = cfg.drum_note_units

        def close(key: tuple[int, int], end_s: float, end_b: float) -> None:
            start_s, start_b, vel = sounding.pop(key)
            inst = v.instruments[key[0]]
            notes.append(Note(inst.program, inst.is_drum, key[1], vel, start_s, end_s, start_b, end_b))

        n = len(v)
        for tid in ids:
            if not 0 <= tid < n:
                continue
            if tid == v.end_id:
                break
            w = int(v.wait_units[tid])
            if w:
                units += w
                if beats:
                    seconds += w * unit * 60.0 / bpm
                    beat = units * unit
                else:
                    seconds = units * unit  # from the integer clock: no drift over long pieces
                    beat = seconds * 2.0
                continue
            if v.is_tempo[tid]:
                bpm = float(v.tempo_bpm[tid])
                continue
            if not v.is_note[tid]:
                continue
            key = (int(v.note_instrument[tid]), int(v.note_pitch[tid]))
            if v.is_note_off[tid]:
                if key in sounding:
                    close(key, seconds, beat)
                continue
            if key in sounding:
                close(key, seconds, beat)
            if key[0] == v.drum_index:  # a fixed-length hit, cut short by the next hit of the same drum
                d = drum_len * unit
                d_s = d * (60.0 / bpm) if beats else d
                prev = drums.get(key[1])
                if prev is not None and notes[prev].end > seconds:
                    notes[prev] = replace(notes[prev], end=seconds, end_beat=beat)
                drums[key[1]] = len(notes)
                notes.append(Note(0, True, key[1], int(v.note_volume[tid]), seconds, seconds + d_s,
                                  beat, beat + (d if beats else d_s * 2.0)))
            else:
                sounding[key] = (seconds, beat, int(v.note_volume[tid]))
        for key in list(sounding):
            close(key, seconds, beat)
        notes.sort(key=lambda x: (x.start, x.pitch, x.program, x.is_drum))
        return notes

    def decode_to_midi(self, ids: Sequence[int] | Any, *, ticks_per_beat: int = 480) -> mido.MidiFile:
        """A playable multitrack ``mido.MidiFile`` from any id sequence (see :meth:`decode_to_notes`).

        Times are written at 120 bpm (beats clock: seconds follow the tempo tokens).
        """
        return write_midi(self.decode_to_notes(ids), tempo_bpm=120.0, ticks_per_beat=ticks_per_beat)


def quantize(times: np.ndarray, scale: float) -> np.ndarray:
    """Times to integer clock units, halves rounded up.

    The tiny epsilon makes exact halves (a 16th note at 120 bpm is 12.5 units of 10 ms) round
    the same way whichever float error the reader's tick-to-seconds arithmetic left on them.
    """
    return np.floor(np.asarray(times, dtype=np.float64) * scale + (0.5 + 1e-6)).astype(np.int64)


def _note_columns(notes: Score | NoteArrays | Sequence[Note], names: Sequence[str]) -> list[np.ndarray]:
    """Columns of note fields as numpy arrays, from arrays directly or from Note objects."""
    if isinstance(notes, NoteArrays):
        return [np.asarray(getattr(notes, n)) for n in names]
    items = notes.notes if isinstance(notes, Score) else list(notes)
    kinds = {"is_drum": bool, "start": np.float64, "end": np.float64, "start_beat": np.float64, "end_beat": np.float64}
    return [np.array([getattr(x, n) for x in items], dtype=kinds.get(n, np.int64)) for n in names]


def _tempo_changes_in_beats(tempos: list[tuple[float, float]], resolution: int) -> tuple[np.ndarray, list[float]]:
    """Tempo changes as (clock units in beats, bpm), from (seconds, bpm) pairs."""
    times, bpms, beat = [], [], 0.0
    prev_t, prev_bpm = 0.0, tempos[0][1]
    for t, bpm in tempos:
        beat += (t - prev_t) * prev_bpm / 60.0
        times.append(round(beat * resolution))
        bpms.append(bpm)
        prev_t, prev_bpm = t, bpm
    return np.array(times, dtype=np.int64), bpms


def _encode_piece(tok: MuseNetTokenizer, path: str, composer: str | None, sustain: bool,
                  quiet: bool) -> tuple[str, EncodedPiece | None, str | None]:
    """Read and encode one file: ``(path, piece or None, failure reason or None)``."""
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", MidiReadWarning)  # recoverable damage: the notes are kept
            notes = read_midi_arrays(path, sustain=sustain)
        body, tempo = tok.encode_notes(notes)
        groups = tok.instruments_of(notes)
        piece = EncodedPiece(tok.prefix_ids(composer or None, groups or None, tempo), body, groups, notes,
                             hashlib.sha1(Path(path).read_bytes()).hexdigest())
        return path, piece, None
    except MidiReadError as err:
        return path, None, err.reason
    except Exception as err:  # a bug must not lose the rest of the batch: report it per file
        return path, None, f"unexpected {type(err).__name__}: {err}"


@dataclass
class _EncodeTask:
    """``(path, composer) -> (path, piece, reason)`` in a worker of
    :func:`~musenet_hf.worker_pool.map_with_timeout`: picklable (the vocabulary as a dict), its
    tokenizer built once per worker process on the first file."""

    vocab: dict
    sustain: bool
    quiet: bool
    tokenizer: MuseNetTokenizer | None = None

    def __call__(self, job: tuple[str, str | None]) -> tuple[str, EncodedPiece | None, str | None]:
        if self.tokenizer is None:
            self.tokenizer = MuseNetTokenizer(vocabulary=MuseNetVocabulary.from_dict(self.vocab))
        return _encode_piece(self.tokenizer, job[0], job[1], self.sustain, self.quiet)
