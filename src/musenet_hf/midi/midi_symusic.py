"""The symusic fast path of :mod:`~musenet_hf.midi.midi_io`: one function, :func:`raw_from_symusic`.

symusic reads notes in C++ with the same pairing rules (first in first out per track, channel
and pitch; zero-length notes kept; the program at the note-on), but it keeps programs per
track, drops notes still sounding at the end of a track, splits notes into one symusic track
per (track, channel, program) without saying which channel, and drops the CC64s of a channel
while it has no notes. So every track chunk k gets synthetic events that make symusic's answer
say what we need, for each channel n it may use (a byte 0x8n, 0x9n, 0xBn or 0xCn followed by
data bytes; delta times give false alarms, which cost little). Marker notes have pitch n and
velocity k+1:
  tick 0  a program change to a "probe" program, one per channel, that no program change of
          the track uses: a symusic track with the probe program is channel n, and its notes
          had no program change before them;
and after the end-of-track (which becomes a marker meta event "musenet-hf k" at the same tick E):
  E+1     a note-off for every pitch (channels that may have notes): closes what is still
          sounding; those notes come back ending at E+1 and are ended with the file;
  E+2     the same again: a note ending here means two were left open (symusic would lose
          the rest): give up;
  E+3     (the lowest channel, and channels with controllers or program changes) the
          "sentinel", n+1 ticks long: its program is the track's last one on n; it makes sure
          the channel has a symusic track, which collects the CC64s waiting for one; and the
          lowest channel's track is the chunk's first symusic track (probes are the lowest
          free programs), so it tells where the chunk's tracks start;
  E+20    (channels with program changes) a program change to 0 and the "anchor", 17+n ticks
          long. symusic sorts the tracks it makes by (channel, program): the anchor's track
          comes first in its channel, and a track that has no marker and no probe program
          belongs to the anchor before it;
  E+60    (channels with controllers and program changes) a program change to a "fresh"
          program and a note 33+n ticks long: its new track collects the CC64s stranded under
          programs without notes.
The answer is used only if every marker is where it should be; otherwise, and when a channel's
program changes are in another track than its notes (symusic cannot place them in time),
the file goes to the built-in parser.

Every way of giving up returns None (its reason is the comment on that line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .midi_notes import DRUM_CHANNEL, RawNotes

try:  # the optional fast reader (pip install symusic)
    import symusic.core as _symusic
except ImportError:  # pragma: no cover - depends on the environment
    _symusic = None

AVAILABLE = _symusic is not None  # whether this fast path can run here

_SENTINEL, _ANCHOR, _FRESH = (3, 1), (20, 17), (60, 33)  # (ticks after E, duration - n)
_MARKER_AFTER = {d: t for t, d in (_SENTINEL, _ANCHOR, _FRESH)}  # duration - n -> ticks after E


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


# --------------------------------------------------------------------------------------------
# The one entry point and its steps; each step returns None where the file goes to the
# built-in parser.


def raw_from_symusic(data: bytes, spans: list[tuple[int, int]]) -> RawNotes | None:
    """The notes of one sequence of track chunks (``spans``: ``(start, end)`` byte offsets in
    ``data``), read by symusic; None where the answer could differ from the reference reading
    (the caller then uses the built-in parser)."""
    read = _read_marked(data, spans)
    if read is None:
        return None
    score, marks = read
    walked = _walk_tracks(score, marks)
    if walked is None:
        return None
    info, pedals, ends = walked
    notes = _note_columns(info, ends)
    if notes is None:
        return None
    pedal = _pedal_columns(pedals)
    if pedal is None:
        return None
    ends_found = [(m.time, m.text) for m in score.markers if m.text.startswith("musenet-hf ")]
    if sorted(ends_found) != sorted((e, f"musenet-hf {k}") for k, e in enumerate(ends)):
        return None  # out of step: symusic did not read some end-of-track where we did
    tempo = score.tempos.numpy()
    tt, mspq = _tempo_in_file_order(data, spans, tempo["time"].astype(np.int64), tempo["mspq"].astype(np.int64))
    if tt is None:
        return None  # tempo order
    tt, mspq = tt[mspq > 0], mspq[mspq > 0]
    keep = np.append(tt[1:] != tt[:-1], True)[:len(tt)]  # the last tempo at each tick
    channel, pitch, vel, program, time, end = notes
    return RawNotes(channel, pitch, vel, program, time, end, *pedal, tt[keep], mspq[keep], max(ends))


def _read_marked(data: bytes, spans: list[tuple[int, int]]) -> tuple[Any, list[dict[int, _Mark]]] | None:
    """symusic's reading of the chunks with their markers, and each chunk's markers per channel."""
    if not spans or len(spans) > 126:
        return None  # too many tracks
    if any(b - a < 4 or data[b - 3:b] != b"\xff\x2f\x00" for a, b in spans):
        return None  # no end-of-track
    if not all(_clean_start(data, a, b) for a, b in spans):
        return None  # damaged track start
    if any(_escapes(data, a, b) for a, b in spans):
        return None  # F7 events
    found = _channels(np.frombuffer(data, dtype=np.uint8), spans)
    if found is None:
        return None  # no free program
    chunks = [_marked_track(data[a:b], k, *f) for k, ((a, b), f) in enumerate(zip(spans, found))]
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") \
        + len(chunks).to_bytes(2, "big") + (480).to_bytes(2, "big")  # ticks stay ticks
    try:
        score = _symusic.ScoreTick.from_midi(header + b"".join(chunks))
    except Exception:  # symusic rejects damaged events: the built-in parser repairs them
        return None
    return score, [f[1] for f in found]


def _walk_tracks(score: Any, marks: list[dict[int, _Mark]]) -> tuple[list, list, list[int]] | None:
    """Walk symusic's tracks: which (chunk, channel) each is (from a marker note at its end, its
    probe program, or the anchor before it), its markers, and its real notes.

    Returns ``info`` (per symusic track with real notes: ``(track, count, channel, program, E)``),
    ``pedals`` (per symusic track with CC64s: ``(channel, chunk, ticks, values)``) and each
    chunk's end-of-track tick E."""
    probe_of = [{mk.probe: n for n, mk in m.items()} for m in marks]
    seen: set[tuple[int, int, int]] = set()  # (chunk, channel, marker kind: ticks after E)
    changed: dict[int, set[int]] = {}  # channel -> chunks whose own program changes it
    with_notes: set[tuple[int, int]] = set()  # (channel, chunk) with real notes
    ends: list[int] = []
    info, pedals = [], []
    k = n = -1
    for t in score.tracks:
        notes = t.notes
        count = len(notes)
        if not count:  # made by a note-off with nothing to end: harmless unless it took CC64s
            if len(t.controls) and (t.controls.numpy()["number"] == 64).any():
                return None  # pedal in an empty track
            continue
        channel = None
        while count:  # markers are the last notes (they come after every real note)
            x = notes[count - 1]
            c, vk = x.pitch, x.velocity - 1
            after = _MARKER_AFTER.get(x.duration - c) if c < 16 else None
            if after is None:
                break
            if vk == len(ends) and vk < len(marks) and c == min(marks[vk]):
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
                return None  # fresh program in use (by a running-status program change)
        if k < 0:
            return None  # markers
        if channel is None:  # no marker: a probe program, else the channel of the last anchor
            channel = probe_of[k].get(t.program, n)
            if channel < 0:
                return None  # markers
        if t.is_drum != (channel == DRUM_CHANNEL):
            return None  # markers
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
    if seen != want or len(ends) != len(marks):
        return None  # markers
    for c, k in with_notes:
        if c != DRUM_CHANNEL and not changed.get(c, set()) <= {k}:
            return None  # program changes in another track
    return info, pedals, ends


def _note_columns(info: list, ends: list[int]) -> tuple[np.ndarray, ...] | None:
    """The real notes as int64 columns ``(N,)``: channel, pitch, velocity, program, start, end
    (notes left sounding at their chunk's end end with the file)."""
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
        return None  # notes left open: two or more left sounding (symusic loses some), or overflow
    end = np.where(end == e + 1, max(ends), end)  # left sounding: they end with the file
    return channel, pitch, vel, program, time, end


def _pedal_columns(pedals: list) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """CC64s of every (chunk, channel) as ``(channel, tick, down)`` ``(P,)``, merged by tick; None
    when two symusic tracks of one channel have CC64s at one tick (their order is lost)."""
    if not pedals:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    fill = lambda i: np.concatenate([np.full(len(p[2]), p[i] if i < 2 else s) for s, p in enumerate(pedals)])  # noqa: E731
    pch, ptrk, psym = fill(0), fill(1), fill(2)
    ptick = np.concatenate([p[2] for p in pedals]).astype(np.int64)
    pdown = np.concatenate([p[3] for p in pedals]) >= 64
    if len({p[:2] for p in pedals}) < len(pedals):
        o = np.lexsort((psym, ptick, ptrk * 16 + pch))
        same = (ptrk[o][1:] == ptrk[o][:-1]) & (pch[o][1:] == pch[o][:-1]) & (ptick[o][1:] == ptick[o][:-1])
        if (same & (psym[o][1:] != psym[o][:-1])).any():
            return None  # pedal order
    porder = np.lexsort((ptrk, ptick))  # stable: file order within a symusic track
    return pch[porder], ptick[porder], pdown[porder]


__all__ = ["AVAILABLE", "raw_from_symusic"]
