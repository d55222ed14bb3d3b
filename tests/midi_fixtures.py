"""MIDI files the tests make themselves, and the one place that knows where ``../shared/midi`` is.

A user's clone has no ``../shared``: the tests of core behaviour (reading, tokenizing, the round
trip, data loading, windows, training, primers, the critic, damaged files) run on the small files
made here with mido (``made_midi`` in conftest.py writes them once a session). Where the real
files of ``../shared/midi`` are present, tests parametrized over :data:`SOURCES` run on them too;
the sweeps over the whole shared set skip without it, saying why.

``MUSENET_SHARED`` (the shared folder) and ``MUSENET_SHARED_MIDI`` (its ``midi`` folder) point
elsewhere; an empty folder simulates a user's clone::

    MUSENET_SHARED=/tmp/empty python -m pytest -q -rs

Every file here is a deterministic function of its seed: the same bytes on every machine (the
data caches and the content-hash split depend on it).
"""

from __future__ import annotations

import io
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import mido
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSENET_SHARED") or REPO.parent / "shared")
SHARED_MIDI = Path(os.environ.get("MUSENET_SHARED_MIDI") or SHARED / "midi")
HAVE_SHARED_MIDI = (SHARED_MIDI / "valid").is_dir() and (SHARED_MIDI / "invalid").is_dir()
NO_SHARED_MIDI = (f"a sweep over the real files of ../shared/midi, absent here ({SHARED_MIDI}); "
                  "the files made in tests/midi_fixtures.py cover the same behaviour")
# the sources a test parametrized over real files runs on: the made files always, the shared ones
# where present (collected only then, so a user's clone does not count them as skips)
SOURCES = ["made", "shared"] if HAVE_SHARED_MIDI else ["made"]
needs_shared_midi = pytest.mark.skipif(not HAVE_SHARED_MIDI, reason=NO_SHARED_MIDI)


def shared_midi(rel: str = "") -> Path:
    """``SHARED_MIDI / rel``; skips the calling test, with the reason, where the folder is absent."""
    if not HAVE_SHARED_MIDI:
        pytest.skip(NO_SHARED_MIDI)
    return SHARED_MIDI / rel


def midi_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in (".mid", ".midi"))


# ------------------------------------------------------------------------------------------
# Composing: a chord progression, parts playing it in set roles

M, Meta = mido.Message, mido.MetaMessage
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
MAJOR_KEYS = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MINOR_KEYS = ["Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"]
PROGRESSIONS = [(0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 4, 5, 3), (1, 4, 0, 0)]  # scale degrees


@dataclass
class Part:
    """One instrument's line. ``role``: melody, chords (half-bar blocks), arpeggio (8ths),
    bass (roots), pad (whole-bar chords, held across bar lines) or drums (channel 9)."""

    role: str
    program: int = 0
    channel: int = 0
    low: int = 48
    high: int = 84
    velocity: int = 80
    name: str = ""
    spread: int = 0  # velocities vary by up to this much (0: the part plays at one velocity)
    program_changes: list[tuple[int, int]] = field(default_factory=list)  # (bar, program)
    pedal: bool = False  # sustain pedal down through each bar, lifted just before the next


def _scale_pitches(key: int, minor: bool, low: int, high: int) -> list[int]:
    steps = MINOR if minor else MAJOR
    return [p for p in range(low, high + 1) if (p - key) % 12 in steps]


def _chord(key: int, minor: bool, degree: int) -> list[int]:
    """Pitch classes of the triad on ``degree`` of the key."""
    steps = MINOR if minor else MAJOR
    return [(key + steps[(degree + k) % 7]) % 12 for k in (0, 2, 4)]


def _in_range(pcs: list[int], low: int, high: int) -> list[int]:
    return [p for p in range(low, high + 1) if p % 12 in pcs]


def _part_notes(part: Part, rng: random.Random, chords: list[list[int]], key: int, minor: bool,
                bar: int, beat: int) -> list[tuple[int, int, int, int]]:
    """(start_tick, end_tick, pitch, velocity) of one part over the bars of ``chords``.

    Music repeats: the progression every 4 bars, the melody every 8 (its bars 5-6 repeat bars
    1-2, bars 7-8 answer them)."""
    notes = []
    scale = _scale_pitches(key, minor, part.low, part.high)
    pitch = scale[len(scale) // 2]
    motifs: dict[int, list[tuple[int, int, int]]] = {}  # melody bar of the 8-bar period -> (onset, length, pitch)
    bass_step = beat if bar % (2 * beat) or rng.random() < 0.5 else 2 * beat

    def vel() -> int:
        return max(1, min(127, part.velocity + (rng.randrange(-part.spread, part.spread + 1) if part.spread else 0)))

    for b, pcs in enumerate(chords):
        t0 = b * bar
        tones = _in_range(pcs, part.low, part.high) or scale
        if part.role == "melody":
            period = b % 8 - 4 if b % 8 in (4, 5) else b % 8
            if period not in motifs:
                motif, t = [], 0
                while t < bar:
                    length = min(rng.choice((beat // 2, beat // 2, beat, beat, beat + beat // 2, 2 * beat)), bar - t)
                    if rng.random() > 0.12:  # else a rest
                        pool = tones if t % beat == 0 else scale
                        pitch = rng.choice([p for p in pool if abs(p - pitch) <= 4] or pool)
                        motif.append((t, max(1, length * 9 // 10), pitch))
                    t += length
                motifs[period] = motif
            notes += [(t0 + t, t0 + t + length, p, vel()) for t, length, p in motifs[period]]
        elif part.role == "chords":
            for k, half in enumerate((0, bar // 2)):
                for p in tones[k:k + 3]:  # root position, then the first inversion
                    notes.append((t0 + half, t0 + half + bar // 2, p, vel()))
        elif part.role == "arpeggio":
            cycle = tones[:4] if len(tones) >= 4 else tones
            for k in range(bar // (beat // 2)):
                t = t0 + k * (beat // 2)
                notes.append((t, t + beat // 2 - 10, cycle[k % len(cycle)], vel()))
        elif part.role == "bass":
            roots = _in_range(pcs[:1], part.low, part.high) or tones
            for k in range(0, bar, bass_step):
                notes.append((t0 + k, t0 + k + bass_step - 20, roots[(k // bass_step) % min(2, len(roots))], vel()))
        elif part.role == "pad":
            for p in tones[:2] + tones[-1:]:
                notes.append((t0, t0 + bar + beat // 2, p, vel()))  # overlaps the next bar's chord
        elif part.role == "drums":
            for k in range(bar // (beat // 2)):
                t = t0 + k * (beat // 2)
                notes.append((t, t + 60, 42, vel()))  # closed hi-hat on 8ths
                if k % 4 == 0:
                    notes.append((t, t + 60, 36, min(127, vel() + 10)))  # kick on 1 and 3
                if k % 4 == 2:
                    notes.append((t, t + 60, 38, vel()))  # snare on 2 and 4
            if b % 4 == 0:
                notes.append((t0, t0 + 60, 49, vel()))  # crash every four bars
        else:
            raise ValueError(part.role)
    if part.role != "drums" and notes:  # the part reaches both ends of its range once
        first, last = notes[0], notes[-1]
        notes[0] = (first[0], first[1], part.low, first[3])
        notes[-1] = (last[0], last[1], part.high, last[3])
    return notes


def compose(seed: int, parts: list[Part], *, bars: int, bpm: float = 120, key: int = 60, minor: bool = False,
            tempo_changes: tuple[tuple[int, float], ...] = (), midi_type: int = 1, ticks_per_beat: int = 480,
            beats_per_bar: int = 4, name: str = "") -> mido.MidiFile:
    """A piece of ``bars`` bars: a conductor track (tempo, meter, key; tempo changes at given
    bars) and one track per part with its program change, notes and pedal. ``midi_type`` 0
    merges everything into one track."""
    rng = random.Random(seed)
    beat, bar = ticks_per_beat, ticks_per_beat * beats_per_bar
    progression = PROGRESSIONS[seed % len(PROGRESSIONS)]
    chords = [_chord(key, minor, progression[b % 4]) for b in range(bars)]
    conductor = [(0, 0, Meta("track_name", name=name or f"piece {seed}")),
                 (0, 0, Meta("time_signature", numerator=beats_per_bar, denominator=4)),
                 (0, 0, Meta("key_signature", key=(MINOR_KEYS if minor else MAJOR_KEYS)[key % 12])),
                 (0, 1, Meta("set_tempo", tempo=mido.bpm2tempo(bpm)))]
    conductor += [(b * bar, 1, Meta("set_tempo", tempo=mido.bpm2tempo(t))) for b, t in tempo_changes]
    tracks = [conductor]
    for part in parts:
        ch = 9 if part.role == "drums" else part.channel
        events = [(0, 0, Meta("track_name", name=part.name or part.role))]
        if part.role != "drums":
            events.append((0, 1, M("program_change", channel=ch, program=part.program)))
            events += [(b * bar, 1, M("program_change", channel=ch, program=p)) for b, p in part.program_changes]
        for start, end, pitch, velocity in _part_notes(part, rng, chords, key, minor, bar, beat):
            events.append((start, 3, M("note_on", channel=ch, note=pitch, velocity=velocity)))
            events.append((end, 2, M("note_off", channel=ch, note=pitch, velocity=0)))  # offs before ons
        if part.pedal:
            for b in range(bars):
                events.append((b * bar + 10, 2, M("control_change", channel=ch, control=64, value=127)))
                events.append(((b + 1) * bar - 10, 2, M("control_change", channel=ch, control=64, value=0)))
        tracks.append(events)
    mf = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(Meta("end_of_track", time=0))
        mf.tracks.append(track)
    if midi_type == 0:
        merged = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
        merged.tracks.append(mido.merge_tracks(mf.tracks))
        return merged
    return mf


def midi_bytes(mf: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------
# The pieces

def band(seed: int = 1, bars: int = 36) -> mido.MidiFile:
    """80 s of a band (type 1; ``bars`` makes it longer): piano chords with the pedal and arpeggios, flute and clarinet, a bass that
    reaches E1 (28: no room to go down), piano up to B7 (107: one semitone of room up), drums on
    channel 10; a tempo change, a program change, notes held across bar lines."""
    parts = [Part("chords", program=0, channel=0, low=48, high=107, velocity=70, name="piano", pedal=True, spread=10),
             Part("melody", program=73, channel=1, low=67, high=93, velocity=90, name="flute", spread=10,
                  program_changes=[(24, 74)]),  # flute -> recorder: still the flute class
             Part("bass", program=33, channel=2, low=28, high=50, velocity=95, name="bass", spread=10),
             Part("arpeggio", program=1, channel=3, low=55, high=79, velocity=55, name="bright piano", spread=10),
             Part("melody", program=71, channel=4, low=58, high=82, velocity=70, name="clarinet", spread=10),
             Part("drums", name="drums", velocity=85, spread=10)]
    return compose(seed, parts, bars=bars, bpm=120, tempo_changes=((20, 96),), name="band")


def elise(seed: int = 2) -> mido.MidiFile:
    """40 s of solo piano in A minor, 3/4 (type 1, a track for each hand, both on channel 1):
    every transposition up to a tritone stays on the keyboard."""
    parts = [Part("melody", program=0, channel=0, low=64, high=88, velocity=75, name="right hand"),
             Part("arpeggio", program=0, channel=0, low=45, high=64, velocity=60, name="left hand")]
    return compose(seed, parts, bars=16, bpm=72, key=57, minor=True, beats_per_bar=3, name="elise")


def symphony(seed: int = 3) -> mido.MidiFile:
    """15 s of strings and a horn in G minor, 3/4, type 0 (one track, four channels)."""
    parts = [Part("melody", program=40, channel=0, low=67, high=91, name="violins"),
             Part("pad", program=41, channel=1, low=55, high=74, velocity=65, name="violas"),
             Part("bass", program=42, channel=2, low=36, high=55, name="cellos"),
             Part("pad", program=60, channel=3, low=53, high=72, velocity=60, name="horn")]
    return compose(seed, parts, bars=12, bpm=140, key=55, minor=True, beats_per_bar=3, midi_type=0,
                   name="symphony")


def pop(seed: int = 4) -> mido.MidiFile:
    """26 s of a pop chorus: piano, guitar, bass and drums (type 1, 96 ticks a beat)."""
    parts = [Part("melody", program=0, channel=0, low=60, high=84, name="piano"),
             Part("arpeggio", program=25, channel=1, low=52, high=76, velocity=70, name="guitar"),
             Part("bass", program=34, channel=2, low=33, high=52, name="bass"),
             Part("drums", name="drums")]
    return compose(seed, parts, bars=12, bpm=110, key=62, ticks_per_beat=96, name="pop")


def hall(seed: int = 5) -> mido.MidiFile:
    """About 20 s of clarinet and bassoon over pizzicato, speeding up bar by bar (type 1)."""
    parts = [Part("melody", program=71, channel=0, low=55, high=79, name="clarinet"),
             Part("bass", program=70, channel=1, low=34, high=55, name="bassoon"),
             Part("arpeggio", program=45, channel=2, low=48, high=67, velocity=60, name="pizzicato")]
    changes = tuple((b, 90 + 8 * b) for b in range(1, 10))
    return compose(seed, parts, bars=10, bpm=90, key=59, minor=True, tempo_changes=changes, name="hall")


LINEUPS = [  # half of them piano alone, as in most short real song files
    [Part("melody", 0, 0, 60, 84, 100), Part("arpeggio", 0, 0, 43, 62, 100)],  # two tracks of one channel
    [Part("melody", 0, 0, 62, 86), Part("chords", 0, 1, 48, 67, 65), Part("bass", 33, 2, 33, 50), Part("drums")],
    [Part("melody", 0, 0, 60, 84, 100), Part("chords", 0, 1, 45, 64, 100)],
    [Part("melody", 40, 0, 64, 88), Part("pad", 48, 1, 52, 72, 60), Part("bass", 42, 2, 36, 55)],
    [Part("melody", 0, 0, 64, 88, 100), Part("arpeggio", 0, 1, 48, 67, 100)],
    [Part("melody", 73, 0, 67, 91), Part("arpeggio", 24, 1, 50, 74, 70), Part("bass", 32, 2, 31, 50), Part("drums")],
]


def song(seed: int) -> mido.MidiFile:
    """A short song (9-20 s), its line-up, key, mode, tempo, meter and MIDI type varying with the seed."""
    rng = random.Random(1000 + seed)
    parts = LINEUPS[seed % len(LINEUPS)]
    return compose(seed, parts, bars=rng.choice((6, 7, 8)), bpm=rng.choice((100, 112, 120, 132)),
                   key=rng.choice((55, 57, 60, 62, 64, 65)), minor=seed % 3 == 2,
                   beats_per_bar=3 if seed % 4 == 3 else 4, midi_type=0 if seed % 5 == 4 else 1, name=f"song {seed}")


def empty() -> mido.MidiFile:
    """A valid file with a tempo and a track, and no note."""
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.append(mido.MidiTrack([Meta("set_tempo", tempo=500_000, time=0), Meta("end_of_track", time=960)]))
    return mf


# ------------------------------------------------------------------------------------------
# Damaged files, written as bytes

def _chunks(data: bytes) -> list[tuple[int, int]]:
    """(start of the chunk id, end of the payload) of each chunk after the header."""
    out, pos = [], 14
    while pos + 8 <= len(data):
        size = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        out.append((pos, pos + 8 + size))
        pos += 8 + size
    return out


def _with_track_size(data: bytes, track: int, size: int) -> bytes:
    pos = _chunks(data)[track][0]
    return data[:pos + 4] + struct.pack(">I", size) + data[pos + 8:]


def _raw(fmt: int, division: int, *tracks: bytes, ntracks: int | None = None) -> bytes:
    head = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntracks is None else ntracks, division)
    return head + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


# one-track payloads (delta time + event bytes), 96 ticks a beat
_NOTES = b"".join(b"\x00\x90" + bytes([p, 80]) + b"\x60\x80" + bytes([p, 0]) for p in (60, 64, 67, 72))
_EOT = b"\x00\xff\x2f\x00"


def damaged_files() -> dict[str, tuple[bytes, str | None]]:
    """``folder/name -> (bytes, what the reader says)``: the repair its one warning names, or,
    for files no reader can take, the reason of the ``MidiReadError`` prefixed with ``error: ``.
    Folders are named as in ../shared/midi/invalid."""
    piece = midi_bytes(song(6))  # type 1: a conductor track and two parts
    last = _chunks(piece)[-1]
    return {
        # unreadable: not MIDI at all
        "No_Header_Chunk/tracker_module.mid": (b"MTM\x10" + b"a tracker module, not MIDI\x00" + bytes(range(256)),
                                               "error: no MThd header chunk (starts with b'MTM\\x10a tr')"),
        "No_Header_Chunk/web_page.mid": (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n" * 8,
                                         "error: no MThd header chunk (starts with b'<!DOCTYP')"),
        "Empty/zero_bytes.mid": (b"", "error: empty file (0 bytes)"),
        "Not_Enough_Bytes/header_only.mid": (piece[:10], "error: truncated header (10 of 14 bytes)"),
        # recoverable: the notes are kept, one warning names the repair
        "Not_Enough_Bytes/cut_in_a_track.mid": (piece[:(last[0] + last[1]) // 2],
                                                 f"declares {last[1] - last[0] - 8} bytes but only"),
        "Invalid_Chunk_Size/too_small.mid": (_with_track_size(piece, 1, 20), "track 1 declares 20 bytes"),
        "Invalid_Chunk_Size/too_large.mid": (_with_track_size(piece, 2, 1 << 20), "track 2 declares 1048576 bytes"),
        "No_End_of_Track/no_eot.mid": (_raw(0, 96, _NOTES), "has no end-of-track event"),
        "Extra_Track_Chunk/zero_declared.mid": (_raw(1, 96, _NOTES + _EOT, ntracks=0),
                                                "header declares 0 tracks, found 1"),
        "Unknown_File_Format/format_7.mid": (_raw(7, 96, _NOTES + _EOT), "unknown format 7 read as type 1"),
        "Invalid_Channel_Event_Parameter_Value/velocity_200.mid": (
            _raw(0, 96, b"\x00\x90\x3c\xc8\x60\x80\x3c\x00" + _NOTES + _EOT), "data bytes above 127"),
        "Data_Byte_Out_Of_Range/controller_255.mid": (
            _raw(0, 96, b"\x00\xb0\x07\xff" + _NOTES + _EOT), "data bytes above 127"),
        "Unexpected_Running_Status/no_status_first.mid": (
            _raw(0, 96, b"\x00\x3c\x40" + _NOTES + _EOT), "bytes of undefined or statusless events"),
        "Unknown_Channel_Event/undefined_f4.mid": (_raw(0, 96, b"\x00\xf4" + _NOTES + _EOT),
                                                   "bytes of undefined or statusless events"),
        "Invalid_Key_Signature_Key/sharps_9.mid": (_raw(0, 96, b"\x00\xff\x59\x02\x09\x00" + _NOTES + _EOT), None),
        "Invalid_SMPTE_Frames/rate_20.mid": (_raw(0, 0x10000 - (20 << 8) + 40, _NOTES + _EOT),
                                              "nonstandard SMPTE rate of 20 frames per second"),
    }


# ------------------------------------------------------------------------------------------
# The folder a session writes

@dataclass
class MadeMidi:
    """Paths of the files :func:`write_made_midi` wrote."""

    root: Path
    valid: Path  # <label>/<piece>.mid: beethoven, mozart, thebeatles, grieg_and_friends, band
    band: Path
    elise: Path
    songs: Path  # 16 short songs, no labels
    empty: Path
    invalid: Path  # <damage>/<file>.mid, as damaged_files()
    expected: dict[str, str | None]  # invalid-relative path -> what the reader says (damaged_files)

    @property
    def valid_files(self) -> list[Path]:
        return midi_files(self.valid)

    @property
    def song_files(self) -> list[Path]:
        return midi_files(self.songs)

    def invalid_file(self, rel: str) -> Path:
        return self.invalid / rel


def primer_piece(source: str, made: MadeMidi) -> Path:
    """A multi-instrument piece to open generation with: the made band piece, or the first shared
    valid file over 20 KB (anticipation/examples_strawberry.mid)."""
    if source == "made":
        return made.band
    return next(p for p in sorted((SHARED_MIDI / "valid").rglob("*.mid")) if p.stat().st_size > 20000)


VALID = {"beethoven/elise.mid": elise, "mozart/symphony.mid": symphony, "thebeatles/pop.mid": pop,
         "grieg_and_friends/hall.mid": hall, "band/band.mid": band}


def write_made_midi(root: Path) -> MadeMidi:
    root = Path(root)
    for rel, make in VALID.items():
        (root / "valid" / rel).parent.mkdir(parents=True, exist_ok=True)
        make().save(root / "valid" / rel)
    (root / "songs").mkdir()
    for seed in range(16):
        song(seed).save(root / "songs" / f"song_{seed:02d}.mid")
    empty().save(root / "empty.mid")
    expected = {}
    for rel, (data, says) in damaged_files().items():
        (root / "invalid" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "invalid" / rel).write_bytes(data)
        expected[rel] = says
    valid = root / "valid"
    return MadeMidi(root, valid, valid / "band" / "band.mid", valid / "beethoven" / "elise.mid", root / "songs",
                    root / "empty.mid", root / "invalid", expected)
