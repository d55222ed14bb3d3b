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
needs by markers appended to every track (see ``_raw_from_symusic``), and hands the files where
its answer could differ to the built-in parser. ``"auto"`` is ``"symusic"`` when symusic is
installed, else ``"python"``. For bulk work, ``read_midi_arrays`` skips building ``Note``
objects (about a microsecond each).

Damaged files: repairs (see :mod:`._midi_repair`) are reported as one ``MidiReadWarning`` per
file; a file with nothing to read raises ``MidiReadError``. Nothing else is ever raised.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
from dataclasses import dataclass, fields, make_dataclass
from typing import Iterable

import mido
import numpy as np

from ._midi_repair import NOTE_OFF, NOTE_ON, PEDAL, PROGRAM, TEMPO, Track, parse_track, read_layout, seconds_per_tick
from .errors import MidiReadError, MidiReadWarning

try:  # the optional fast reader (pip install symusic)
    import symusic.core as _symusic
except ImportError:  # pragma: no cover - depends on the environment
    _symusic = None

__all__ = ["Note", "Score", "NoteArrays", "read_midi", "read_midi_arrays", "read_midi_notes", "write_midi"]

DEFAULT_MSPQ = 500_000  # microseconds per quarter note = 120 bpm
MAX_FILE_BYTES = 256 << 20  # the largest MIDI files (piano-roll "black MIDI") stay below this
DRUM_CHANNEL = 9


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

    def to_score(self) -> Score:
        return Score(self.to_notes(), self.tempos, self.ticks_per_beat, self.duration, self.source)


# --------------------------------------------------------------------------------------------
# Notes in ticks: the common middle of every backend.


@dataclass
class _RawNotes:
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


def _cumsum_from(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` ``(M,)`` that restarts wherever ``start`` ``(M,)`` is True."""
    total = np.cumsum(x)
    return total - np.repeat(total[start] - x[start], np.diff(np.append(np.flatnonzero(start), len(x))))


def _raw_from_tracks(tracks: list[Track]) -> _RawNotes:
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
    return _RawNotes(ch[ons], a[ons], b[ons], program, tick[ons], end, ch[ped], tick[ped], a[ped] >= 64,
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


def _sustain(raw: _RawNotes) -> np.ndarray:
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


def _finish(raw: _RawNotes, clock: _Clock, sustain: bool, tick0: int = 0, sec0: float = 0.0):
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
# The symusic fast path.
#
# symusic reads notes in C++ with the same pairing rules (first in first out per track, channel
# and pitch; zero-length notes kept; the program at the note-on), but it keeps programs per
# track, drops notes still sounding at the end of a track, splits notes into one symusic track
# per (track, channel, program) without saying which channel, and drops the CC64s of a channel
# while it has no notes. So every track chunk k gets synthetic events that make symusic's answer
# say what we need, for each channel n it may use (a byte 0x8n, 0x9n, 0xBn or 0xCn followed by
# data bytes; delta times give false alarms, which cost little). Marker notes have pitch n and
# velocity k+1:
#   tick 0  a program change to a "probe" program, one per channel, that no program change of
#           the track uses: a symusic track with the probe program is channel n, and its notes
#           had no program change before them;
# and after the end-of-track (which becomes a marker meta event "musenet-hf k" at the same tick E):
#   E+1     a note-off for every pitch (channels that may have notes): closes what is still
#           sounding; those notes come back ending at E+1 and are ended with the file;
#   E+2     the same again: a note ending here means two were left open (symusic would lose
#           the rest): give up;
#   E+3     (the lowest channel, and channels with controllers or program changes) the
#           "sentinel", n+1 ticks long: its program is the track's last one on n; it makes sure
#           the channel has a symusic track, which collects the CC64s waiting for one; and the
#           lowest channel's track is the chunk's first symusic track (probes are the lowest
#           free programs), so it tells where the chunk's tracks start;
#   E+20    (channels with program changes) a program change to 0 and the "anchor", 17+n ticks
#           long. symusic sorts the tracks it makes by (channel, program): the anchor's track
#           comes first in its channel, and a track that has no marker and no probe program
#           belongs to the anchor before it;
#   E+60    (channels with controllers and program changes) a program change to a "fresh"
#           program and a note 33+n ticks long: its new track collects the CC64s stranded under
#           programs without notes.
# The answer is used only if every marker is where it should be; otherwise, and when a channel's
# program changes are in another track than its notes (symusic cannot place them in time),
# the file goes to the built-in parser.

_SENTINEL, _ANCHOR, _FRESH = (3, 1), (20, 17), (60, 33)  # (ticks after E, duration - n)
_MARKER_AFTER = {d: t for t, d in (_SENTINEL, _ANCHOR, _FRESH)}  # duration - n -> ticks after E
_last_reject = ""  # why the fast path last gave up (for tests and debugging)


def _reject(reason: str) -> None:
    global _last_reject
    _last_reject = reason
    return None


def _offs(n: int) -> bytes:
    """Note-offs of all 128 pitches on channel n, the first without its delta, the rest in
    running status at delta 0."""
    return bytes((0x80 | n, 0, 0)) + b"".join(bytes((0, p, 0)) for p in range(1, 128))


_ALL_OFFS = [_offs(n) for n in range(16)]


@dataclass
class _Mark:
    """The markers of one channel of one track chunk (programs; None when not used)."""

    probe: int
    sentinel: bool
    anchor: bool
    fresh: int | None
    controls: bool  # may have controllers (CC64s to collect)


def _channels(buf: np.ndarray, spans: list[tuple[int, int]]) -> list[tuple[list[int], dict[int, _Mark]]] | None:
    """For each track chunk: the channels that may have notes, and the markers of every channel
    it may use; None if there are not enough unused programs for the probes."""
    # Candidates: a byte 0x8n, 0x9n or 0xBn followed by two data bytes, 0xCn followed by one.
    lo = spans[0][0]
    buf = buf[lo:spans[-1][1]]
    data = buf < 0x80
    two = np.flatnonzero((buf[:-2] >= 0x80) & (buf[:-2] < 0xC0) & data[1:-1] & data[2:])
    one = np.flatnonzero((buf[:-1] >= 0xC0) & (buf[:-1] < 0xD0) & data[1:])
    starts = np.array([a - lo for a, _ in spans])
    ends = np.array([b - lo for _, b in spans])
    k2 = np.searchsorted(starts, two, side="right") - 1
    k1 = np.searchsorted(starts, one, side="right") - 1
    two, k2 = two[two < ends[k2]], k2[two < ends[k2]]  # (chunks are in file order, gaps possible)
    one, k1 = one[one < ends[k1]], k1[one < ends[k1]]
    # (K, 64): which of the bytes 0x80-0xBF occur as candidates in each chunk
    seen = np.bincount(k2 * 64 + (buf[two] - 0x80), minlength=len(spans) * 64).reshape(len(spans), 4, 16) > 0
    used = np.zeros((len(spans), 3, 16), dtype=bool)  # notes, controllers, program changes
    used[:, 0] = seen[:, 0] | seen[:, 1]
    used[:, 1] = seen[:, 3]
    used[k1, 2, buf[one] & 0x0F] = True
    programs = np.zeros((len(spans), 128), dtype=bool)  # a program change in chunk k may use p
    programs[k1, buf[one + 1]] = True
    out = []
    for t, ((notes, ctrl, prog), taken) in enumerate(zip(used.tolist(), programs.tolist())):
        chans = [n for n in range(16) if notes[n] or ctrl[n] or prog[n]] or [0]
        free = [p for p in range(1, 128) if not taken[p]]  # programs no change uses (0: anchors)
        need = len(chans) + sum(prog[n] and ctrl[n] for n in chans)
        if len(free) < need:
            return None
        marks = {}
        for n in chans:
            fresh = free.pop() if prog[n] and ctrl[n] else None
            marks[n] = _Mark(free.pop(0), prog[n] or ctrl[n] or n == chans[0], prog[n], fresh, ctrl[n])
        out.append(([n for n in range(16) if notes[n]], marks))
    return out


def _marked_track(body: bytes, k: int, note_ch: list[int], marks: dict[int, _Mark]) -> bytes:
    """Track chunk ``k`` (payload ``body``, ending with its end-of-track) with its markers."""
    vel = k + 1
    groups: list[tuple[int, bytes]] = []  # (ticks after E, events with the first delta missing)
    for n in note_ch:
        groups += [(1, _ALL_OFFS[n]), (2, _ALL_OFFS[n])]
    for n, mk in marks.items():
        on, off = bytes((0x90 | n, n, vel)), bytes((0x80 | n, n, 0))
        if mk.sentinel:
            groups += [(_SENTINEL[0], on), (_SENTINEL[0] + _SENTINEL[1] + n, off)]
        if mk.anchor:
            groups += [(_ANCHOR[0], bytes((0xC0 | n, 0, 0)) + on), (_ANCHOR[0] + _ANCHOR[1] + n, off)]
        if mk.fresh is not None:
            groups += [(_FRESH[0], bytes((0xC0 | n, mk.fresh, 0)) + on), (_FRESH[0] + _FRESH[1] + n, off)]
    groups.append((120, b"\xff\x2f\x00"))  # after the last marker note-off (E+108)
    groups.sort(key=lambda g: g[0])  # stable: the order above within a tick
    probes = b"".join(bytes((0, 0xC0 | n, mk.probe)) for n, mk in marks.items())
    tail, t = [], 0
    for tick, events in groups:
        tail += (bytes((tick - t,)), events)
        t = tick
    # The end-of-track becomes a marker meta event at the same tick: finding it in symusic's
    # answer proves symusic read the track in step up to its end.
    out = b"".join([probes, body[:-3], _end_marker(k), *tail])
    return b"MTrk" + len(out).to_bytes(4, "big") + out


def _tempo_in_file_order(data: bytes, spans: list[tuple[int, int]], tick: np.ndarray,
                         mspq: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """symusic's tempo changes ``(T,)`` sorted by tick, ties in file order (None if unknown).

    symusic sorts tempi with an unstable sort, so the order of two different tempi at one tick
    is lost. When all tempo events are in one track, their order is that of the ``FF 51 03``
    byte patterns there (checked against symusic's values tick by tick).
    """
    order = np.argsort(tick, kind="stable")
    tick, mspq = tick[order], mspq[order]
    same = tick[1:] == tick[:-1]
    if not (same & (mspq[1:] != mspq[:-1])).any():
        return tick, mspq
    found = []
    for a, b in spans:
        seg = np.frombuffer(data, dtype=np.uint8, count=b - a, offset=a).astype(np.int64)
        at = np.flatnonzero((seg[:-5] == 0xFF) & (seg[1:-4] == 0x51) & (seg[2:-3] == 0x03))
        if len(at):
            found.append((seg[at + 3] << 16) | (seg[at + 4] << 8) | seg[at + 5])
    if len(found) != 1 or len(found[0]) != len(mspq):
        return None, None
    in_file = found[0]  # tempo values in file order; their ticks are the sorted ticks
    groups = np.r_[0, np.flatnonzero(~same) + 1, len(tick)]
    for a, b in zip(groups[:-1], groups[1:]):
        if sorted(in_file[a:b].tolist()) != sorted(mspq[a:b].tolist()):
            return None, None
    return tick, in_file


def _end_marker(k: int) -> bytes:
    text = f"musenet-hf {k}".encode()
    return bytes((0xFF, 0x06, len(text))) + text


def _escapes(data: bytes, start: int, end: int) -> bool:
    """Whether track chunk ``data[start:end]`` may hold an F7 ("escape") event, which symusic
    misreads as a one-byte event: a 0xF7 byte that does not end the payload of an F0 sysex."""
    f7 = data.find(b"\xf7", start, end)
    if f7 < 0:
        return False
    payload_ends = set()
    i = data.find(b"\xf0", start, end)
    while i >= 0:
        j, length = i + 1, 0
        for j in range(i + 1, min(i + 5, end)):
            length = (length << 7) | (data[j] & 0x7F)
            if data[j] < 0x80:
                break
        payload_ends.add(j + length)
        i = data.find(b"\xf0", i + 1, end)
    while f7 >= 0:
        # An event's status byte follows the last byte of its delta time (< 0x80); 0xF7 is
        # often a byte of a delta time or of a tempo, which are not.
        in_tempo = any(data[f7 - k:f7 - k + 2] == b"\xff\x51" for k in (3, 4, 5))
        if f7 not in payload_ends and data[f7 - 1] < 0x80 and not in_tempo:
            return True
        f7 = data.find(b"\xf7", f7 + 1, end)
    return False


def _clean_start(data: bytes, start: int, end: int) -> bool:
    """Whether the events of track chunk ``data[start:end]`` before its first channel event are
    well formed: metas and sysex within the chunk, no data byte without a status (symusic and
    the built-in parser resync differently after those)."""
    pos = start
    while pos < end:
        for _ in range(4):  # the delta time
            pos += 1
            if data[pos - 1] < 0x80:
                break
        else:
            return False
        if pos >= end:
            return True
        status = data[pos]
        if 0x80 <= status < 0xF0:
            return True
        if status not in (0xFF, 0xF0, 0xF7):
            return False
        pos += 2 if status == 0xFF else 1
        length = 0
        for _ in range(4):
            if pos >= end:
                return False
            length = (length << 7) | (data[pos] & 0x7F)
            pos += 1
            if data[pos - 1] < 0x80:
                break
        else:
            return False
        pos += length
        if pos > end:
            return False
    return True


def _raw_from_symusic(data: bytes, spans: list[tuple[int, int]]) -> _RawNotes | None:
    """The notes of one sequence of track chunks, read by symusic; None where the answer could
    differ from the reference reading (the caller then uses the built-in parser)."""
    if not spans or len(spans) > 126:
        return _reject("too many tracks")
    if any(b - a < 4 or data[b - 3:b] != b"\xff\x2f\x00" for a, b in spans):
        return _reject("no end-of-track")
    if not all(_clean_start(data, a, b) for a, b in spans):
        return _reject("damaged track start")
    if any(_escapes(data, a, b) for a, b in spans):
        return _reject("F7 events")
    found = _channels(np.frombuffer(data, dtype=np.uint8), spans)
    if found is None:
        return _reject("no free program")
    chunks = [_marked_track(data[a:b], k, *f) for k, ((a, b), f) in enumerate(zip(spans, found))]
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") \
        + len(chunks).to_bytes(2, "big") + (480).to_bytes(2, "big")  # ticks stay ticks
    try:
        score = _symusic.ScoreTick.from_midi(header + b"".join(chunks))
    except Exception:  # symusic rejects damaged events: the built-in parser repairs them
        return _reject("symusic error")

    # Walk symusic's tracks: which (chunk, channel) each is (from a marker note at its end,
    # its probe program, or the anchor before it), its markers, and its real notes.
    marks = [f[1] for f in found]
    probe_of = [{mk.probe: n for n, mk in m.items()} for m in marks]
    seen: set[tuple[int, int, int]] = set()  # (chunk, channel, marker kind: ticks after E)
    changed: dict[int, set[int]] = {}  # channel -> chunks whose own program changes it
    with_notes: set[tuple[int, int]] = set()  # (channel, chunk) with real notes
    ends: list[int] = []  # E of each chunk
    info = []  # per symusic track with real notes: (track, count, channel, program, E)
    pedals = []  # per symusic track with CC64s: (channel, chunk, ticks, values)
    k = n = -1
    for t in score.tracks:
        notes = t.notes
        count = len(notes)
        if not count:  # made by a note-off with nothing to end: harmless unless it took CC64s
            if len(t.controls) and (t.controls.numpy()["number"] == 64).any():
                return _reject("pedal in an empty track")
            continue
        channel = None
        while count:  # markers are the last notes (they come after every real note)
            x = notes[count - 1]
            c, vk = x.pitch, x.velocity - 1
            after = _MARKER_AFTER.get(x.duration - c) if c < 16 else None
            if after is None:
                break
            if vk == len(ends) and vk < len(spans) and c == min(marks[vk]):
                k, n = vk, -1  # the lowest channel's last marker opens the chunk's tracks
                ends.append(x.time - after)
            if vk != k or x.time - after != ends[k] or c not in marks[k] or (k, c, after) in seen:
                break
            seen.add((k, c, after))
            channel = c
            count -= 1
            if after == _ANCHOR[0]:
                n = c
            elif after == _SENTINEL[0] and t.program != marks[k][c].probe:
                changed.setdefault(c, set()).add(k)
            elif after == _FRESH[0] and count:
                return _reject("fresh program in use")  # (by a running-status program change)
        if k < 0:
            return _reject("markers")
        if channel is None:  # no marker: a probe program, else the channel of the last anchor
            channel = probe_of[k].get(t.program, n)
            if channel < 0:
                return _reject("markers")
        if t.is_drum != (channel == DRUM_CHANNEL):
            return _reject("markers")
        mk = marks[k][channel]
        if count:
            program = 0 if t.program == mk.probe else t.program  # the probe: no change before
            info.append((t, count, channel, program, ends[k]))
            with_notes.add((channel, k))
        if mk.controls and len(t.controls):
            ctrl = t.controls.numpy()
            sel = ctrl["number"] == 64
            if sel.any():
                pedals.append((channel, k, ctrl["time"][sel], ctrl["value"][sel]))
    want = {(k, c, after) for k, m in enumerate(marks) for c, mk in m.items()
            for after, wanted in ((_SENTINEL[0], mk.sentinel), (_ANCHOR[0], mk.anchor),
                                  (_FRESH[0], mk.fresh is not None)) if wanted}
    if seen != want or len(ends) != len(spans):
        return _reject("markers")
    for c, k in with_notes:
        if c != DRUM_CHANNEL and not changed.get(c, set()) <= {k}:
            return _reject("program changes in another track")

    # The real notes, as columns (N,).
    cols = []
    for t, count, c, program, e in info:
        notes = t.notes
        if count <= 8:  # numpy() costs tens of microseconds a call: read short tracks directly
            rows = [(x.time, x.duration, x.pitch, x.velocity) for x in notes[:count]] if count < len(notes) \
                else [(x.time, x.duration, x.pitch, x.velocity) for x in notes]
            cols.append((np.array(rows, dtype=np.int64).T, c, program, e))
        else:
            a = notes.numpy()
            cols.append((np.stack([a["time"][:count], a["duration"][:count], a["pitch"][:count],
                                   a["velocity"][:count]]).astype(np.int64), c, program, e))
    sizes = [len(x[0][0]) for x in cols]
    time, dur, pitch, vel = np.concatenate([x[0] for x in cols], axis=1) if cols else np.zeros((4, 0), dtype=np.int64)
    channel, program, e = (np.repeat(np.array([x[i] for x in cols], dtype=np.int64), sizes) for i in (1, 2, 3))
    end = time + dur
    if len(time) and (time.min() < 0 or (end > e + 1).any()):
        return _reject("notes left open")  # two or more left sounding (symusic loses some), or overflow
    end = np.where(end == e + 1, max(ends), end)  # left sounding: they end with the file

    # CC64s of a (chunk, channel), merged by tick; two symusic tracks of one channel with CC64s
    # at one tick lose their order.
    if pedals:
        fill = lambda i: np.concatenate([np.full(len(p[2]), p[i] if i < 2 else s) for s, p in enumerate(pedals)])  # noqa: E731
        pch, ptrk, psym = fill(0), fill(1), fill(2)
        ptick = np.concatenate([p[2] for p in pedals]).astype(np.int64)
        pdown = np.concatenate([p[3] for p in pedals]) >= 64
        if len({p[:2] for p in pedals}) < len(pedals):
            o = np.lexsort((psym, ptick, ptrk * 16 + pch))
            same = (ptrk[o][1:] == ptrk[o][:-1]) & (pch[o][1:] == pch[o][:-1]) & (ptick[o][1:] == ptick[o][:-1])
            if (same & (psym[o][1:] != psym[o][:-1])).any():
                return _reject("pedal order")
        porder = np.lexsort((ptrk, ptick))  # stable: file order within a symusic track
        pch, ptick, pdown = pch[porder], ptick[porder], pdown[porder]
    else:
        pch = ptick = np.zeros(0, dtype=np.int64)
        pdown = np.zeros(0, dtype=bool)

    ends_found = [(m.time, m.text) for m in score.markers if m.text.startswith("musenet-hf ")]
    if sorted(ends_found) != sorted((e, f"musenet-hf {k}") for k, e in enumerate(ends)):
        return _reject("out of step")  # symusic did not read some end-of-track where we did

    tempo = score.tempos.numpy()
    tt, mspq = _tempo_in_file_order(data, spans, tempo["time"].astype(np.int64), tempo["mspq"].astype(np.int64))
    if tt is None:
        return _reject("tempo order")
    tt, mspq = tt[mspq > 0], mspq[mspq > 0]
    keep = np.append(tt[1:] != tt[:-1], True)[:len(tt)]  # the last tempo at each tick
    return _RawNotes(channel, pitch, vel, program, time, end, pch, ptick, pdown,
                     tt[keep], mspq[keep], max(ends))


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
    if backend == "symusic" and _symusic is None:
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
    raws: list[_RawNotes] | None = None
    if isinstance(obj, mido.MidiFile):
        division, fmt = obj.ticks_per_beat & 0xFFFF, obj.type
        if division == 0:
            raise MidiReadError(source, "time division is 0 ticks per beat")
        tracks = _tracks_from_mido(obj, repairs)
    else:
        layout = read_layout(obj, source)
        repairs += layout.repairs
        division, fmt, tracks = layout.division, layout.format, None
        sequences = [[s] for s in layout.spans] if fmt == 2 else [layout.spans]
        if backend in ("auto", "symusic") and _symusic is not None:
            raws = [_raw_from_symusic(layout.data, seq) for seq in sequences if seq]
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
        MidiReadError: nothing can be read (no header, empty, truncated header, division 0,
            a missing file); the message names the file and the reason.

    Warns:
        MidiReadWarning: the file broke the standard and was repaired (the message says how).
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
