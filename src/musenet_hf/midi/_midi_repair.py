"""Tolerant low-level MIDI parsing: file bytes -> header, track chunks and track events.

This is the byte-level half of :mod:`musenet_hf.midi.midi_io`. It reads standard files exactly like
a strict reader would, and reads damaged files as far as the damage allows, writing down every
repair it makes (the caller turns them into one :class:`~musenet_hf.errors.MidiReadWarning`):

- :func:`read_layout` finds the header and the ``MTrk`` chunks. It unwraps RIFF/RMID files
  (``.rmi``: the MIDI file is the ``data`` chunk; ``LIST``/``INFO`` and other chunks around it are
  skipped), skips junk before the header, unknown chunks and trailing garbage, reads unknown
  formats as type 1, reads a time division of 0 ticks per beat (invalid, but found in real files)
  as :data:`ASSUMED_TICKS_PER_BEAT` = 96, and, when a chunk's declared size is wrong (too short,
  too long, or a 4 GB lie), finds the chunk's real end by resyncing on the next ``MTrk``. It
  never allocates from a declared size.
- :func:`parse_track` reads the events of one chunk into a compact list. Data bytes above 127
  are clamped, undefined status bytes (0xF1-0xFE) are skipped with their data, running status
  with no status before it skips to the next status byte, truncated events end the track, and a
  missing end-of-track ends the track at its last event. Variable-length numbers have 4 bytes
  at most (as the standard says, and as symusic reads them), so no delta time is absurd.

Nothing here raises anything but :class:`~musenet_hf.errors.MidiReadError`, and only when there
is no header to read (no ``MThd``, a truncated header, an RMID file with no ``data`` chunk, an
SMPTE division of 0 ticks per frame).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import MidiReadError

# Event kinds of a parsed track (the fourth field of an event tuple).
NOTE_OFF, NOTE_ON, PROGRAM, PEDAL, TEMPO = 0, 1, 2, 3, 4

# An event is (tick, track index, index in track, kind, channel, value1, value2); tuples sort
# into the merged order of all tracks (by tick, then track, then position). Values:
#   NOTE_ON (velocity > 0) / NOTE_OFF (note-off or note-on with velocity 0): (pitch, velocity)
#   PROGRAM: (program, 0); PEDAL (CC64): (value, 0); TEMPO: (microseconds per beat, 0), channel -1.
Event = tuple[int, int, int, int, int, int, int]

_SMPTE_RATES = {24: 24.0, 25: 25.0, 29: 30000 / 1001, 30: 30.0}  # -29 means 30 drop-frame = 29.97

# A header's time division of 0 ticks per beat is invalid (no clock) but occurs in real files;
# they are read at 96 ticks per beat, the default time division of DryWetMIDI (a new MidiFile's)
# and a common resolution of the sequencers of the time, as a repair.
ASSUMED_TICKS_PER_BEAT = 96
DIVISION_0_REPAIR = (f"time division is 0 ticks per beat: read as {ASSUMED_TICKS_PER_BEAT} ticks per beat "
                     "(assumed)")


def seconds_per_tick(division: int) -> float | None:
    """Fixed seconds per tick of an SMPTE time division (bit 15 set: -frames per second in the
    high byte, ticks per frame in the low byte); None for a ticks-per-beat division."""
    if not division & 0x8000:
        return None
    fps = 256 - (division >> 8)
    return 1.0 / (_SMPTE_RATES.get(fps, float(fps)) * (division & 0xFF))


@dataclass
class Layout:
    """Where the tracks of a MIDI file are, and how to read its clock.

    Attributes:
        data: the bytes that ``spans`` index (the RIFF payload for an RMID file).
        format: 0, 1 or 2 (an unknown format is read as 1).
        division: the header's raw time division (ticks per beat, or SMPTE when bit 15 is set);
            ``ASSUMED_TICKS_PER_BEAT`` where the header says 0.
        spans: ``(start, end)`` byte ranges of each ``MTrk`` chunk's payload, in file order.
        repairs: what was repaired, in words; empty for a standard file.
    """

    data: bytes
    format: int
    division: int
    spans: list[tuple[int, int]]
    repairs: list[str] = field(default_factory=list)


@dataclass
class Track:
    """The events of one track chunk that matter for notes.

    Attributes:
        events: ``Event`` tuples in file order.
        end_tick: tick of the end-of-track event (of the last event when it is missing).
        index: the track's position in the file.
    """

    events: list[Event]
    end_tick: int
    index: int = 0


def _is_chunk_id(b: bytes) -> bool:
    """Four printable ASCII characters, as every registered and private chunk id is."""
    return len(b) == 4 and all(0x20 <= c < 0x7F for c in b)


def _unwrap_riff(data: bytes, source: str, repairs: list[str]) -> bytes:
    """The MIDI file inside a RIFF ``RMID`` file (``.rmi``); any other bytes unchanged.

    An RMID file is ``RIFF``, a size, ``RMID``, then chunks (id, little-endian size, payload
    padded to an even size): the ``data`` chunk holds a standard MIDI file; others (``LIST``
    with ``INFO`` tags, a ``DLS `` sound bank) may come before or after it and are skipped. The
    RIFF size is not used. When the chunks do not line up (an odd size written without its pad
    byte) but an ``MThd`` is in the file, the whole file is returned for :func:`read_layout` to
    find the header in.

    Raises:
        MidiReadError: an RMID file with no ``data`` chunk and no ``MThd`` in it, or one cut
            off before the end of its MIDI header.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    pos, seen = 12, []
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"data":
            return _riff_data(data, pos + 8, size, source, repairs)
        seen.append(cid.decode("latin-1"))
        pos += 8 + size + (size & 1)  # RIFF chunks are padded to even sizes
    if b"MThd" in data:
        repairs.append("unwrapped a RIFF/RMID container whose chunks do not line up")
        return data
    chunks = ", ".join(seen) or "none"
    if pos > len(data):
        chunks += f"; its {seen[-1]} chunk runs past the end of the file"
    elif pos < len(data):
        chunks += "; the file ends inside a chunk header"
    raise MidiReadError(source, f"RIFF/RMID file with no data chunk (chunks: {chunks})")


def _riff_data(data: bytes, body: int, size: int, source: str, repairs: list[str]) -> bytes:
    """The payload of an RMID file's ``data`` chunk, which starts at ``body`` and declares
    ``size`` bytes. A size past the end of the file (a truncated file), or too small for even
    the 14-byte MIDI header (0, as some writers leave it), is read to the end of the file."""
    repairs.append("unwrapped a RIFF/RMID container")
    have = len(data) - body
    if size > have:
        if have < 14:
            raise MidiReadError(source, f"truncated RIFF/RMID file: its data chunk has {have} of "
                                        f"{size} bytes, not a whole MThd header")
        repairs.append(f"RIFF data chunk declares {size} bytes but only {have} remain")
        size = have
    elif size < 14:
        repairs.append(f"RIFF data chunk declares {size} bytes, too few for a MIDI file: "
                       "read to the end of the file")
        size = have
    return data[body:body + size]


def _not_midi(data: bytes) -> str:
    """What a file without an ``MThd`` header starts with, for the error message."""
    if data[:4] == b"RIFF" and len(data) >= 12:
        return f"a RIFF '{data[8:12].decode('latin-1')}' file, not RMID"
    return f"starts with {bytes(data[:8])!r}"


def _clock_division(division: int, source: str, repairs: list[str]) -> int:
    """The header's time division as it is read: 0 ticks per beat becomes
    ``ASSUMED_TICKS_PER_BEAT`` (a repair), a nonstandard SMPTE rate is noted.

    Raises:
        MidiReadError: an SMPTE division of 0 ticks per frame (no clock to assume).
    """
    if division == 0:
        repairs.append(DIVISION_0_REPAIR)
        return ASSUMED_TICKS_PER_BEAT
    if division & 0x8000 and division & 0xFF == 0:
        raise MidiReadError(source, "SMPTE time division with 0 ticks per frame")
    if division & 0x8000 and (256 - (division >> 8)) not in _SMPTE_RATES:
        repairs.append(f"nonstandard SMPTE rate of {256 - (division >> 8)} frames per second")
    return division


def read_layout(data: bytes, source: str) -> Layout:
    """Find the header and the track chunks of a MIDI file (or of the RMID file it wraps).

    A time division of 0 ticks per beat is read as :data:`ASSUMED_TICKS_PER_BEAT` (a repair).

    Args:
        data: the whole file.
        source: the file name, for error messages.

    Raises:
        MidiReadError: empty input, no ``MThd`` header, a truncated header, an RMID file with
            no MIDI data (see :func:`_unwrap_riff`), or an SMPTE division of 0 ticks per frame.
    """
    repairs: list[str] = []
    if not data:
        raise MidiReadError(source, "empty file (0 bytes)")
    data = _unwrap_riff(data, source, repairs)
    head = data.find(b"MThd")
    if head < 0:
        raise MidiReadError(source, f"no MThd header chunk ({_not_midi(data)})")
    if head > 0:
        repairs.append(f"skipped {head} bytes before the MThd header")
    if len(data) < head + 14:
        raise MidiReadError(source, f"truncated header ({len(data) - head} of 14 bytes)")
    hlen, fmt, ntracks, division = struct.unpack_from(">IHHH", data, head + 4)
    division = _clock_division(division, source, repairs)
    if fmt > 2:
        repairs.append(f"unknown format {fmt} read as type 1")
        fmt = 1

    # The header is normally 6 bytes; a longer one may carry extensions. Trust its length only
    # when a chunk id follows it.
    pos = head + 8 + hlen
    if hlen < 6 or not _is_chunk_id(data[pos:pos + 4]):
        if hlen != 6:
            repairs.append(f"header declares {hlen} bytes instead of 6")
        pos = head + 14

    spans: list[tuple[int, int]] = []
    n = len(data)
    while pos + 8 <= n:
        cid = data[pos:pos + 4]
        size = struct.unpack_from(">I", data, pos + 4)[0]
        body, end = pos + 8, pos + 8 + size
        if cid == b"MTrk":
            # A declared size is right when it lands on the end of the file, on the next chunk
            # id, on a few bytes of tail, or just after an end-of-track. Otherwise the real end
            # is the next MTrk (or the end of the file).
            if end <= n and (n - end < 8 or _is_chunk_id(data[end:end + 4])
                             or data[end - 3:end] == b"\xff\x2f\x00"):
                spans.append((body, end))
                pos = end
                continue
            nxt = data.find(b"MTrk", body)
            real_end = nxt if nxt >= 0 else n
            if end > n and nxt < 0:
                repairs.append(f"track {len(spans)} declares {size} bytes but only {n - body} remain")
            else:
                repairs.append(f"track {len(spans)} declares {size} bytes, has {real_end - body}")
            spans.append((body, real_end))
            pos = real_end
        elif _is_chunk_id(cid) and end <= n:
            pos = end  # an unknown chunk: readers must skip it (not a repair)
        else:
            # Garbage. Before the declared number of tracks, look for the next one; after it,
            # the rest is trailing garbage (often pieces of other files).
            nxt = data.find(b"MTrk", pos)
            if nxt < 0 or len(spans) >= ntracks:
                break
            repairs.append(f"skipped {nxt - pos} bytes of garbage before track {len(spans)}")
            pos = nxt
    tail = data[pos:]
    if tail.strip(b"\x00"):
        repairs.append(f"ignored {len(tail)} trailing bytes")
    if len(spans) != ntracks:
        repairs.append(f"header declares {ntracks} tracks, found {len(spans)}")
    if fmt == 0 and len(spans) > 1:
        repairs.append(f"type-0 file with {len(spans)} tracks read as type 1")
        fmt = 1
    return Layout(bytes(data), fmt, division, spans, repairs)


def parse_track(data: bytes, start: int, end: int, repairs: list[str], index: int = 0) -> Track:
    """Read the events of one track chunk, ``data[start:end]``, tolerating damage.

    Only note-ons, note-offs, program changes, sustain pedal (CC64) and tempo are kept; every
    other event is skipped by its length. Running status is kept across meta events (as mido
    and symusic do) and, leniently, across sysex events (which should cancel it). Repairs are
    appended to ``repairs``; ``index`` is the track's number.

    Returns the events in file order and the end tick.
    """
    events: list[Event] = []
    append = events.append
    tick, pos, running = 0, start, 0  # running: the last channel status byte; 0 = none yet
    clamped = skipped = 0
    problem = ""
    while pos < end:
        # Delta time: a variable-length number, 7 bits a byte, high bit = more bytes follow;
        # 4 bytes at most (a 4th byte ends it whatever its high bit, as symusic reads it).
        b = data[pos]
        pos += 1
        delta = b & 0x7F
        if b & 0x80:
            delta, pos = _varlen(data, pos - 1, end)
            if pos > end:
                problem = "ends inside a delta time"
                break
        if pos >= end:
            problem = "ends after a delta time"
            break
        tick += delta
        status = data[pos]
        if status < 0x80 and not running:
            # Data with no status to run on: skip it, and read the next status byte as this
            # event's (its delta is lost with the skipped bytes).
            nxt = pos
            while nxt < end and data[nxt] < 0x80:
                nxt += 1
            skipped += nxt - pos
            pos = nxt
            if pos >= end:
                break
            status = data[pos]
        if status < 0x80:  # running status: reuse the last status byte
            status = running
        else:
            pos += 1
            if status >= 0xF0:  # meta, sysex or a stray system byte: nothing a channel plays
                pos, kind, value = _system_event(data, pos, end, status)
                if kind == "problem":
                    problem = value
                    break
                if kind == "end":  # end of track: what follows is not part of the track
                    return _done(events, tick, index, repairs, clamped, skipped,
                                 f"has {value} bytes after its end-of-track" if value > 0 else "")
                if kind == "tempo":
                    append((tick, index, len(events), TEMPO, -1, value, 0))
                elif kind == "skipped":
                    skipped += value
                continue
            running = status
        kind = status & 0xF0
        nbytes = 1 if kind == 0xC0 or kind == 0xD0 else 2
        if pos + nbytes > end:
            problem = "ends inside an event"
            break
        a = data[pos]
        bb = data[pos + 1] if nbytes == 2 else 0
        pos += nbytes
        if a > 127 or bb > 127:  # out-of-range data bytes: clamp as mido's clip=True does
            clamped += 1
            a, bb = min(a, 127), min(bb, 127)
        if kind == 0x90:
            append((tick, index, len(events), NOTE_ON if bb else NOTE_OFF, status & 0x0F, a, bb))
        elif kind == 0x80:
            append((tick, index, len(events), NOTE_OFF, status & 0x0F, a, bb))
        elif kind == 0xC0:
            append((tick, index, len(events), PROGRAM, status & 0x0F, a, 0))
        elif kind == 0xB0 and a == 64:
            append((tick, index, len(events), PEDAL, status & 0x0F, bb, 0))
    return _done(events, tick, index, repairs, clamped, skipped, problem or "has no end-of-track event")


def _system_event(data: bytes, pos: int, end: int, status: int) -> tuple[int, str, Any]:
    """The meta, sysex or system event whose status byte ``status`` came just before ``data[pos]``.

    Returns ``(pos after it, kind, value)``: ``("problem", what)`` when the track ends inside it,
    ``("end", bytes after it)`` for end-of-track, ``("tempo", microseconds a beat)`` for a usable
    tempo, ``("skipped", bytes)`` for stray system bytes (they do not belong in files), else
    ``("", None)``: an event skipped by its length.
    """
    if status == 0xFF:  # meta event: type, length, payload
        if pos + 1 >= end:
            return pos, "problem", "ends inside a meta event"
        mtype = data[pos]
        length, pos = _varlen(data, pos + 1, end)
        if pos + length > end:
            return pos, "problem", "ends inside a meta event"
        if mtype == 0x2F:
            return pos + length, "end", end - pos - length
        if mtype == 0x51 and length >= 3:
            mspq = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            if mspq:  # a tempo of 0 would stop time: ignore it
                return pos + length, "tempo", mspq
        return pos + length, "", None
    if status == 0xF0 or status == 0xF7:  # sysex: length, payload
        length, pos = _varlen(data, pos, end)
        if pos + length > end:
            return pos, "problem", "ends inside a sysex event"
        return pos + length, "", None
    nxt = pos  # system common / real-time: skip it and its data bytes
    while nxt < end and data[nxt] < 0x80:
        nxt += 1
    return nxt, "skipped", nxt - pos + 1


def _varlen(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable-length number at ``data[pos]`` (at most 4 bytes) and the position after it;
    the position is past ``end`` when the number runs off the end."""
    value = 0
    for i in range(pos, min(pos + 4, end)):
        value = (value << 7) | (data[i] & 0x7F)
        if data[i] < 0x80:
            return value, i + 1
    return value, pos + 4 if pos + 4 <= end else end + 1


def _done(events: list[Event], tick: int, index: int, repairs: list[str], clamped: int,
          skipped: int, problem: str) -> Track:
    """Record what was repaired in one track and return it."""
    name = f"track {index}"
    if clamped:
        repairs.append(f"{name}: clamped {clamped} events with data bytes above 127")
    if skipped:
        repairs.append(f"{name}: skipped {skipped} bytes of undefined or statusless events")
    if problem:
        repairs.append(f"{name} {problem}")
    return Track(events, tick, index)
