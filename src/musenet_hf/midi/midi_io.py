"""MIDI files <-> note events.

``read_midi(src) -> Score`` reads a file (path, bytes or ``mido.MidiFile``) into notes with
times in seconds and in beats; ``read_midi_arrays`` returns the same notes as numpy columns
(what bulk tokenization wants); ``write_midi(notes) -> mido.MidiFile`` writes notes back.

What a note is (the same for every backend, checked file by file in the tests):

- Note-ons and note-offs pair up per track, channel and pitch, first in first out: when a pitch
  is struck again before it is released, the first note-off ends the first note. A note-on of
  velocity 0 is a note-off; a note-off with nothing to end is ignored; an off at the tick of its
  on gives a zero-length note (kept). Notes still sounding when their track ends sound on until
  the file's last event (as a player would hold them).
- A note's program is the last program change on its channel before its note-on, with all tracks
  merged in time order (ties: earlier track first, then file order). Drums (channel 10, index 9)
  get program 0.
- Sustain (``sustain=True``): a note released while its channel's pedal is down (CC64 >= 64,
  the state after the last CC64 of that tick) ends at the first pedal-up at or after its
  release (a pedal lifted and pressed again at one tick counts as lifted), or at the file's
  last event, but no later than the next onset of the same pitch on that channel. Drums ignore
  the pedal, as General MIDI drum kits do.
- Times: ticks -> seconds through the tempo map of all tracks (a tempo change in any track
  applies to all; 120 bpm until the first one; a tempo of 0 is ignored); beats = ticks / ticks
  per beat. SMPTE files (negative division) run at frames x ticks-per-frame ticks per second;
  they have no beat grid, so their beats assume 120 bpm and ``ticks_per_beat`` is the number
  of ticks in half a second.
- Type 2 files hold independent sequences: each track is read as a file of its own (own tempo
  map from 120 bpm, own programs) and the tracks play one after another.

Backends: ``"python"`` is the built-in tolerant parser (:mod:`._midi_repair`, a few MB/s),
``"mido"`` parses with mido (ten times slower; files mido rejects go to the built-in parser),
``"symusic"`` parses with symusic's C++ reader, made to tell everything the reference reading
needs by markers appended to every track (:mod:`~musenet_hf.midi.midi_symusic`), and hands the files where
its answer could differ to the built-in parser. ``"auto"`` is ``"symusic"`` when symusic is
installed, else ``"python"``. For bulk work, ``read_midi_arrays`` skips building ``Note``
objects (about a microsecond each).

Damaged files: repairs (see :mod:`._midi_repair`) are reported as one ``MidiReadWarning`` per
file; a file with nothing to read raises ``MidiReadError``. Nothing else is ever raised. RMID
files (a MIDI file in a RIFF container, ``.rmi``) give exactly the notes of the file inside.
A header whose time division is 0 ticks per beat (invalid, found in real files) is read at 96
ticks per beat (``_midi_repair.ASSUMED_TICKS_PER_BEAT``), with a warning that says so.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
from dataclasses import dataclass
from typing import Iterable

import mido
import numpy as np

from ..errors import MidiReadError, MidiReadWarning
from . import midi_symusic
from ._midi_repair import (
    ASSUMED_TICKS_PER_BEAT,
    DIVISION_0_REPAIR,
    NOTE_OFF,
    NOTE_ON,
    PEDAL,
    PROGRAM,
    TEMPO,
    Track,
    parse_track,
    read_layout,
    seconds_per_tick,
)
from .midi_notes import DRUM_CHANNEL, Note, NoteArrays, RawNotes, Score

__all__ = ["Note", "Score", "NoteArrays", "read_midi", "read_midi_arrays", "read_midi_notes", "write_midi"]

DEFAULT_MSPQ = 500_000  # microseconds per quarter note = 120 bpm
MAX_FILE_BYTES = 256 << 20  # the largest MIDI files (piano-roll "black MIDI") stay below this


# --------------------------------------------------------------------------------------------
# Notes in ticks: the common middle of every backend.


def _cumsum_from(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` ``(M,)`` that restarts wherever ``start`` ``(M,)`` is True."""
    total = np.cumsum(x)
    return total - np.repeat(total[start] - x[start], np.diff(np.append(np.flatnonzero(start), len(x))))


def _raw_from_tracks(tracks: list[Track]) -> RawNotes:
    """Pair the note-ons and note-offs of parsed tracks: the reference semantics, vectorized.

    All events are put in merged order (tick, track, position in track), the order of a file
    played back. Notes pair per (track, channel, pitch), first in first out; a note's program
    is the last program change on its channel before its note-on in merged order.
    """
    count = sum(len(t.events) for t in tracks)
    ev = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(t.events for t in tracks)),
                     dtype=np.int64, count=7 * count).reshape(count, 7)
    ev = ev[np.argsort(ev[:, 0], kind="stable")]  # merged order: tracks are concatenated in order
    tick, trk, _, kind, ch, a, b = ev.T
    last_tick = max((t.end_tick for t in tracks), default=0)

    # Queue of sounding notes per (track, channel, pitch): its length after each event is the
    # running sum of +1 (on) / -1 (off), floored at 0 (an off with nothing to end is ignored).
    sel = np.flatnonzero((kind == NOTE_ON) | (kind == NOTE_OFF))
    group = (trk[sel] * 16 + ch[sel]) * 128 + a[sel]
    order = np.argsort(group, kind="stable")  # by group, each in merged (= file) order
    sel, group = sel[order], group[order]
    on = kind[sel] == NOTE_ON
    new = np.append(True, group[1:] != group[:-1])[:len(sel)]  # (M,) first event of a group
    gid = np.cumsum(new) - 1
    run = _cumsum_from(np.where(on, 1, -1), new)
    # queue = run - min(0, lowest run so far in the group); the offsets keep earlier groups
    # (shifted up by more than any run's range) out of the running minimum
    spread = 2 * len(sel) + 1
    lowest = np.minimum.accumulate(run - gid * spread) + gid * spread
    queue = run - np.minimum(lowest, 0)
    before = np.append(0, queue[:-1])
    before[new] = 0
    ends_note = ~on & (before > 0)  # offs that end a note
    # The r-th off that ends a note in a group ends the group's r-th note-on (first in, first out).
    width = len(sel) + 1
    on_key = (gid * width + _cumsum_from(on, new))[on]
    off_key = (gid * width + _cumsum_from(ends_note, new))[ends_note]
    j = np.minimum(np.searchsorted(off_key, on_key), max(len(off_key) - 1, 0))
    ons, offs = sel[on], sel[ends_note]
    matched = off_key[j] == on_key if len(off_key) else np.zeros(len(ons), dtype=bool)
    end = np.where(matched, tick[offs[j]] if len(offs) else 0,
                   last_tick)  # still sounding when their track ends: they end with the file

    # Program at each note-on: the last program change on its channel before it.
    pcs = np.flatnonzero(kind == PROGRAM)
    pc_key = ch[pcs] * (len(ev) + 1) + pcs
    pc_order = np.argsort(pc_key)
    pc_key, pcs = pc_key[pc_order], pcs[pc_order]
    k = np.searchsorted(pc_key, ch[ons] * (len(ev) + 1) + ons) - 1
    has_pc = (k >= 0) & (ch[pcs[np.maximum(k, 0)]] == ch[ons]) if len(pcs) else np.zeros(len(ons), dtype=bool)
    program = np.where(has_pc, a[pcs[np.maximum(k, 0)]] if len(pcs) else 0, 0)

    ped = kind == PEDAL
    tmp = np.flatnonzero(kind == TEMPO)
    last_at_tick = np.append(tick[tmp][1:] != tick[tmp][:-1], True)[:len(tmp)]
    tmp = tmp[last_at_tick]
    return RawNotes(ch[ons], a[ons], b[ons], program, tick[ons], end, ch[ped], tick[ped], a[ped] >= 64,
                     tick[tmp], a[tmp], last_tick)


def _tracks_from_mido(mf: mido.MidiFile, repairs: list[str]) -> list[Track]:
    """Events of a ``mido.MidiFile``'s tracks, in the form ``parse_track`` gives."""
    out = []
    for k, trk in enumerate(mf.tracks):
        events, tick = [], 0
        for i, msg in enumerate(trk):
            tick += msg.time
            t = msg.type
            if t == "note_on":
                events.append((tick, k, len(events), NOTE_ON if msg.velocity else NOTE_OFF,
                               msg.channel, msg.note, msg.velocity))
            elif t == "note_off":
                events.append((tick, k, len(events), NOTE_OFF, msg.channel, msg.note, msg.velocity))
            elif t == "program_change":
                events.append((tick, k, len(events), PROGRAM, msg.channel, msg.program, 0))
            elif t == "control_change" and msg.control == 64:
                events.append((tick, k, len(events), PEDAL, msg.channel, msg.value, 0))
            elif t == "set_tempo" and msg.tempo > 0:
                events.append((tick, k, len(events), TEMPO, -1, msg.tempo, 0))
            elif t == "end_of_track":
                if i + 1 < len(trk):
                    repairs.append(f"track {k} has {len(trk) - i - 1} events after its end-of-track")
                break  # events after it are not part of the track
        out.append(Track(events, tick, k))
    return out


def _sustain(raw: RawNotes) -> np.ndarray:
    """Note ends ``(N,)`` extended by the sustain pedal (see the module docstring)."""
    end = raw.end.copy()
    for ch in np.unique(raw.pedal_channel):
        if ch == DRUM_CHANNEL:
            continue
        sel = raw.pedal_channel == ch
        t, down = raw.pedal_tick[sel], raw.pedal_down[sel]
        last = np.append(t[1:] != t[:-1], True)  # the state after the last CC64 at each tick
        idx = np.flatnonzero(raw.channel == ch)
        e = raw.end[idx]
        i = np.searchsorted(t[last], e, side="right") - 1
        held = (i >= 0) & down[last][np.maximum(i, 0)]
        if not held.any():
            continue
        # Released by the first pedal-up at or after the note's release tick, even one followed
        # by a new press at its tick (re-pedalling).
        up_ticks = t[~down]
        j = np.searchsorted(up_ticks, e, side="left")
        release = np.where(j < len(up_ticks), up_ticks[np.minimum(j, len(up_ticks) - 1)] if len(up_ticks) else 0,
                           raw.end_tick)
        # The next onset of the same pitch on this channel at or after the release (self excluded).
        pitch, start = raw.pitch[idx], raw.start[idx]
        ranks = np.unique(np.concatenate([start, e]))
        width = len(ranks) + 1
        key = pitch * width + np.searchsorted(ranks, start)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        pos = np.searchsorted(sorted_key, pitch * width + np.searchsorted(ranks, e), side="left")
        own = np.empty_like(order)
        own[order] = np.arange(len(order))
        pos = np.where(pos == own, pos + 1, pos)
        nxt = order[np.minimum(pos, len(order) - 1)]
        has_next = (pos < len(order)) & (pitch[nxt] == pitch)
        cap = np.where(has_next, start[nxt], np.iinfo(np.int64).max)
        end[idx] = np.where(held, np.maximum(e, np.minimum(release, cap)), e)
    return end


@dataclass
class _Clock:
    """How ticks become seconds: a tempo map (ticks per beat) or a fixed SMPTE rate."""

    ticks_per_beat: int
    seconds_per_tick: float | None = None

    @classmethod
    def from_division(cls, division: int) -> "_Clock":
        spt = seconds_per_tick(division)
        return cls(max(1, round(0.5 / spt)), spt) if spt else cls(division)


def _finish(raw: RawNotes, clock: _Clock, sustain: bool, tick0: int = 0, sec0: float = 0.0):
    """Sustain, seconds and beats of one sequence that starts at ``tick0`` / ``sec0``.

    Returns:
        the columns (``(N,)`` each, plus integer ``tick`` / ``end_tick`` sort keys), the tempo
        changes ``[(seconds, bpm)]``, and the tick and second of the sequence's last event.
    """
    end = _sustain(raw) if sustain and len(raw.pedal_tick) and len(raw.pitch) else raw.end
    is_drum = raw.channel == DRUM_CHANNEL
    if clock.seconds_per_tick:
        spt = clock.seconds_per_tick
        to_sec = lambda ticks: sec0 + ticks * spt  # noqa: E731
        tempos = [(sec0, 120.0)]
    else:
        tt, mspq = raw.tempo_tick, raw.tempo_mspq
        if not len(tt) or tt[0] != 0:
            tt, mspq = np.r_[0, tt], np.r_[DEFAULT_MSPQ, mspq]
        scale = mspq / (1e6 * clock.ticks_per_beat)  # seconds per tick in each tempo segment
        seg_sec = sec0 + np.r_[0.0, np.cumsum(np.diff(tt) * scale[:-1])]

        def to_sec(ticks: np.ndarray) -> np.ndarray:
            j = np.searchsorted(tt, ticks, side="right") - 1
            return seg_sec[j] + (ticks - tt[j]) * scale[j]

        tempos = list(zip(seg_sec.tolist(), (60e6 / mspq).tolist()))
    # Beats run linearly with ticks (SMPTE files: at a nominal 120 bpm, 2 beats a second).
    beats_per_tick = 2.0 * clock.seconds_per_tick if clock.seconds_per_tick else 1.0 / clock.ticks_per_beat
    cols = {
        "program": np.where(is_drum, 0, raw.program), "is_drum": is_drum,
        "pitch": raw.pitch, "velocity": raw.velocity,
        "start": to_sec(raw.start), "end": to_sec(end),
        "start_beat": (raw.start + tick0) * beats_per_tick, "end_beat": (end + tick0) * beats_per_tick,
        "tick": raw.start + tick0, "end_tick": end + tick0,
    }
    last_sec = float(to_sec(np.array([raw.end_tick], dtype=np.int64))[0])
    return cols, tempos, tick0 + raw.end_tick, last_sec


def _assemble(parts: list[dict], tempos: list, last_sec: float, clock: _Clock, source: str) -> NoteArrays:
    """Join the finished sequences (one, or one per track of a type-2 file) and sort the notes."""
    cols = parts[0] if len(parts) == 1 else {k: np.concatenate([c[k] for c in parts]) for k in parts[0]}
    order = np.lexsort((cols["velocity"], cols["end_tick"], cols["is_drum"], cols["program"],
                        cols["pitch"], cols["tick"]))
    out = {k: cols[k][order] for k in ("program", "is_drum", "pitch", "velocity",
                                        "start", "end", "start_beat", "end_beat")}
    duration = float(out["end"].max()) if len(order) else last_sec
    return NoteArrays(**out, tempos=tempos, ticks_per_beat=clock.ticks_per_beat,
                      duration=duration, source=source)


# --------------------------------------------------------------------------------------------
# Reading.

_BACKENDS = ("auto", "symusic", "mido", "python")


def _load(src: str | os.PathLike | bytes | bytearray | memoryview | mido.MidiFile) -> tuple[bytes | mido.MidiFile, str]:
    """The file's bytes (or the MidiFile itself) and the name used in messages."""
    if isinstance(src, mido.MidiFile):
        return src, "<MidiFile>"
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>"
    name = os.fspath(src)
    name = name.decode(errors="replace") if isinstance(name, bytes) else name
    try:
        with open(src, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # never read a huge file whole
    except OSError as e:
        raise MidiReadError(name, f"cannot open file ({e.strerror or e})") from e
    if len(data) > MAX_FILE_BYTES:
        raise MidiReadError(name, f"larger than {MAX_FILE_BYTES >> 20} MB: not read")
    return data, name


def _read(src, sustain: bool, backend: str) -> tuple[NoteArrays, list[str]]:
    """Read ``src`` into note arrays; also return the repairs made."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "symusic" and not midi_symusic.AVAILABLE:
        raise ImportError("backend='symusic' needs the symusic package (pip install symusic)")
    obj, source = _load(src)
    try:
        return _read_loaded(obj, source, sustain, backend)
    except MidiReadError:
        raise
    except Exception as e:  # the last guard: a file must never raise anything else
        raise MidiReadError(source, f"unreadable ({type(e).__name__}: {e})") from e


def _read_loaded(obj: bytes | mido.MidiFile, source: str, sustain: bool, backend: str) -> tuple[NoteArrays, list[str]]:
    repairs: list[str] = []
    raws: list[RawNotes] | None = None
    if isinstance(obj, mido.MidiFile):
        division, fmt = obj.ticks_per_beat & 0xFFFF, obj.type
        if division == 0:  # as read_layout reads it
            repairs.append(DIVISION_0_REPAIR)
            division = ASSUMED_TICKS_PER_BEAT
        tracks = _tracks_from_mido(obj, repairs)
    else:
        layout = read_layout(obj, source)
        repairs += layout.repairs
        division, fmt, tracks = layout.division, layout.format, None
        sequences = [[s] for s in layout.spans] if fmt == 2 else [layout.spans]
        if backend in ("auto", "symusic") and midi_symusic.AVAILABLE:
            raws = [midi_symusic.raw_from_symusic(layout.data, seq) for seq in sequences if seq]
            if any(r is None for r in raws):
                raws = None
        if raws is None and backend == "mido" and not layout.repairs:
            try:
                tracks = _tracks_from_mido(mido.MidiFile(file=io.BytesIO(layout.data)), repairs)
            except Exception:  # mido is strict: the built-in parser reads what it rejects
                tracks = None
        if raws is None and tracks is None:
            tracks = [parse_track(layout.data, a, b, repairs, k) for k, (a, b) in enumerate(layout.spans)]
    if raws is None:
        groups = [[t] for t in tracks] if fmt == 2 else [tracks]
        raws = [_raw_from_tracks(g) for g in groups if g]

    clock = _Clock.from_division(division)
    parts, tempos = [], []
    tick0, sec0 = 0, 0.0
    for raw in raws:
        cols, tmp, tick0, sec0 = _finish(raw, clock, sustain, tick0, sec0)
        parts.append(cols)
        tempos += tmp
    if not parts:  # no tracks at all
        parts.append(_finish(_raw_from_tracks([Track([], 0)]), clock, sustain)[0])
        tempos = [(0.0, 120.0)]
    tempos = list({t: bpm for t, bpm in tempos}.items())  # one tempo per instant, the last
    return _assemble(parts, tempos, sec0, clock, source), repairs


def _warn(source: str, repairs: list[str]) -> None:
    if repairs:
        warnings.warn(MidiReadWarning(f"{source}: repaired: " + "; ".join(repairs)), stacklevel=3)


def read_midi_arrays(src: str | os.PathLike | bytes | mido.MidiFile, *, sustain: bool = True,
                     backend: str = "auto") -> NoteArrays:
    """Read a MIDI file into note columns (see :class:`NoteArrays` and :func:`read_midi`)."""
    arrays, repairs = _read(src, sustain, backend)
    _warn(arrays.source, repairs)
    return arrays


def read_midi(src: str | os.PathLike | bytes | mido.MidiFile, *, sustain: bool = True,
              backend: str = "auto") -> Score:
    """Read a MIDI file into a :class:`Score` (semantics in the module docstring).

    Args:
        src: a path, the file's bytes, or a ``mido.MidiFile``.
        sustain: extend notes held by the sustain pedal (CC64).
        backend: ``"auto"`` (symusic when installed, else ``"python"``), ``"symusic"``,
            ``"mido"`` or ``"python"``; all give the same notes.

    Raises:
        MidiReadError: nothing can be read (no header, empty, truncated header, an RMID file
            with no MIDI data, a missing file); the message names the file and the reason.

    Warns:
        MidiReadWarning: the file broke the standard and was repaired (the message says how),
            e.g. a time division of 0 read as 96 ticks per beat; RMID files are reported too.
    """
    arrays, repairs = _read(src, sustain, backend)
    _warn(arrays.source, repairs)
    return arrays.to_score()


def read_midi_notes(src: str | os.PathLike | bytes | mido.MidiFile) -> list[Note]:
    """The notes of a MIDI file (``read_midi(src).notes``)."""
    arrays, repairs = _read(src, True, "auto")
    _warn(arrays.source, repairs)
    return arrays.to_notes()


# --------------------------------------------------------------------------------------------
# Writing.

_PITCHED_CHANNELS = [c for c in range(16) if c != DRUM_CHANNEL]


def write_midi(notes: Iterable[Note], *, tempo_bpm: float = 120.0, ticks_per_beat: int = 480,
               program_names: dict | None = None) -> mido.MidiFile:
    """Write notes as a playable type-1 MIDI file (save it with ``.save(path)``).

    Track 0 holds the tempo; then one track per (program, is_drum), pitched programs in
    ascending order and drums last, each with its name, its program change and its own channel
    (drums on channel 10). With more than 15 pitched programs, programs share the 15 pitched
    channels in turn, and every note-on on a shared channel is preceded by its program change,
    which keeps each note's program when the file is read back.

    Times in seconds become ticks at ``tempo_bpm``; at one tick, note-offs come before
    note-ons (a zero-length note's off comes after its own on). Reading the file back gives the
    same notes to the rounding of one tick, except that notes of one pitch and instrument that
    overlap come back paired first in first out.

    Args:
        notes: the notes (``start``/``end`` in seconds are used; beats are not).
        tempo_bpm: the file's tempo.
        ticks_per_beat: the file's resolution.
        program_names: optional track names by program number; the key ``"drums"`` names drum
            tracks. Default names: ``"program 40"``, ``"drums"``.
    """
    names = program_names or {}
    mspq = mido.bpm2tempo(tempo_bpm)
    ticks_per_second = ticks_per_beat * 1e6 / mspq  # the exact rate the reader will use
    groups: dict[tuple[bool, int], list[Note]] = {}
    for n in notes:
        groups.setdefault((bool(n.is_drum), int(n.program)), []).append(n)
    keys = sorted(groups)  # pitched (False) first, by program; then drums
    pitched = [k for k in keys if not k[0]]
    shared = len(pitched) > len(_PITCHED_CHANNELS)

    mf = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    mf.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mspq, time=0)]))
    for key in keys:
        is_drum, program = key
        channel = DRUM_CHANNEL if is_drum else _PITCHED_CHANNELS[pitched.index(key) % len(_PITCHED_CHANNELS)]
        name = names.get("drums", "drums") if is_drum else names.get(program, f"program {program}")
        events = []  # (tick, order, message): at one tick, offs (0) before ons (1) before zero-length offs (2)
        for n in groups[key]:
            on = max(0, round(n.start * ticks_per_second))
            off = max(on, round(n.end * ticks_per_second))
            vel = min(127, max(1, int(n.velocity)))
            if shared and not is_drum:
                events.append((on, 1, mido.Message("program_change", channel=channel, program=program)))
            events.append((on, 1, mido.Message("note_on", channel=channel, note=int(n.pitch), velocity=vel)))
            events.append((off, 2 if off == on else 0,
                           mido.Message("note_off", channel=channel, note=int(n.pitch), velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))  # stable: each program change stays before its note
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=str(name), time=0),
                                mido.Message("program_change", channel=channel, program=program, time=0)])
        tick = 0
        for t, _, msg in events:
            track.append(msg.copy(time=t - tick))
            tick = t
        mf.tracks.append(track)
    return mf
