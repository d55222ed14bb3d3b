"""Damaged MIDI files: notes are recovered where the damage allows, MidiReadError otherwise.

Nothing else may happen: no other exception, no hang (every read under 5 s), no large
allocation from a lying chunk header.
"""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf import MidiReadError, MidiReadWarning
from musenet_hf.midi.midi_io import NoteArrays, read_midi, read_midi_arrays

from midi_fixtures import HAVE_SHARED_MIDI, SHARED_MIDI, SOURCES, needs_shared_midi, shared_midi
# Measured: 272 of the 312 shared invalid files give notes (symusic alone: about 61%); the 40
# others are not MIDI at all (HTML pages, ZIP/RAR archives, MP3 and WAV files, FrontPage
# metadata) and raise MidiReadError.
RECOVERED_FLOOR = 270


def read(data, backend: str = "auto") -> tuple[NoteArrays | MidiReadError, list[str], float]:
    """Read, returning the result or the MidiReadError, the warnings, and the seconds taken.
    Any other exception propagates (and fails the test)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read_midi_arrays(data, backend=backend)
        except MidiReadError as err:
            result = err
    messages = [str(w.message) for w in caught if issubclass(w.category, MidiReadWarning)]
    return result, messages, time.perf_counter() - start


def invalid_files() -> list[Path]:
    root = shared_midi("invalid")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".mid", ".midi"))


@needs_shared_midi
def test_every_shared_invalid_file_gives_notes_or_a_clear_error():
    recovered, errors, by_folder = 0, [], {}
    for path in invalid_files():
        result, messages, seconds = read(path)
        assert seconds < 5, f"{path.name} took {seconds:.1f} s"
        folder = path.parent.name
        if isinstance(result, MidiReadError):
            assert result.source == str(path) and result.reason and str(result).startswith(str(path))
            errors.append(f"{folder}/{path.name}: {result.reason}")
        else:
            assert len(result) == 0 or (result.pitch.min() >= 0 and result.pitch.max() <= 127)
            assert (result.end >= result.start).all() and (result.start >= 0).all()
            assert all(str(path) in m for m in messages) and len(messages) <= 1
            recovered += len(result) > 0
        by_folder.setdefault(folder, [0, 0])[isinstance(result, MidiReadError)] += 1
    print(f"\nrecovered {recovered} of {len(invalid_files())} invalid files; per folder [read, error]: {by_folder}")
    assert recovered >= RECOVERED_FLOOR, errors
    # Damage that leaves notes is always read.
    for folder in ("Extra_Track_Chunk", "Invalid_Channel_Event_Parameter_Value", "Invalid_Chunk_Size",
                   "Invalid_Key_Signature_Key", "Invalid_Key_Signature_Scale", "No_End_of_Track",
                   "Unexpected_Running_Status", "Unknown_File_Format"):
        assert by_folder[folder][1] == 0, folder


def test_every_made_invalid_file_gives_notes_or_its_error(made_midi):
    """The damaged files made in midi_fixtures.py, one or more for each kind of damage of the
    shared invalid folder: each gives the error or the one repair warning it was made for."""
    for rel, says in made_midi.expected.items():
        path = made_midi.invalid_file(rel)
        result, messages, seconds = read(path)
        assert seconds < 5, f"{rel} took {seconds:.1f} s"
        if says and says.startswith("error: "):
            assert isinstance(result, MidiReadError), (rel, result)
            assert result.source == str(path) and result.reason == says[len("error: "):], (rel, result.reason)
            assert str(result).startswith(f"{path}: ") and not messages
            continue
        assert isinstance(result, NoteArrays) and len(result) > 0, (rel, result)
        assert result.pitch.min() >= 0 and result.pitch.max() <= 127
        assert (result.end >= result.start).all() and (result.start >= 0).all()
        if says is None:
            assert not messages, (rel, messages)
        else:
            assert len(messages) == 1 and messages[0].startswith(f"{path}: repaired: ") and says in messages[0], (
                rel, messages)


@pytest.mark.parametrize("source", SOURCES)
def test_unreadable_files_name_the_reason(source, made_midi):
    if source == "made":
        path, name = made_midi.invalid_file("No_Header_Chunk/tracker_module.mid"), r"tracker_module\.mid"
    else:
        path, name = SHARED_MIDI / "invalid" / "No_Header_Chunk" / "AN-IMGN4.MID", r"AN-IMGN4\.MID"
    with pytest.raises(MidiReadError, match=name + r": no MThd header chunk \(starts with b'MTM"):
        read_midi(path)


REPAIRS = [
    ("made", "Extra_Track_Chunk/zero_declared.mid", "header declares 0 tracks, found 1"),
    ("made", "No_End_of_Track/no_eot.mid", "has no end-of-track event"),
    ("made", "Invalid_Channel_Event_Parameter_Value/velocity_200.mid", "data bytes above 127"),
    ("made", "Unknown_File_Format/format_7.mid", "unknown format 7 read as type 1"),
    ("made", "Invalid_Chunk_Size/too_large.mid", "track 2 declares 1048576 bytes"),
    ("made", "Not_Enough_Bytes/cut_in_a_track.mid", "but only 257 remain"),
] + ([
    ("shared", "Extra_Track_Chunk/arkanoid_modified.mid", "header declares 0 tracks, found 1"),
    ("shared", "No_End_of_Track/" + "{first}", "has no end-of-track event"),
    ("shared", "Invalid_Channel_Event_Parameter_Value/" + "{first}", "data bytes above 127"),
    ("shared", "Unknown_File_Format/mywind3.mid", "unknown format 27905 read as type 1"),
] if HAVE_SHARED_MIDI else [])


@pytest.mark.parametrize("source, name, reason", REPAIRS)
def test_repairs_are_reported_in_one_warning(source, name, reason, made_midi):
    folder, file = name.split("/")
    root = made_midi.invalid if source == "made" else SHARED_MIDI / "invalid"
    path = sorted((root / folder).glob("*"))[0] if file == "{first}" else root / folder / file
    result, messages, _ = read(path)
    assert isinstance(result, NoteArrays) and len(result) > 0
    assert len(messages) == 1 and messages[0].startswith(f"{path}: repaired: ") and reason in messages[0], messages


# ------------------------------------------------------------------------------------------
# Generated damage, on a real file and on one built here


def base_file() -> bytes:
    """A two-track file with a tempo change, programs, drums and a pedal (built with mido)."""
    M, Meta = mido.Message, mido.MetaMessage
    rng = random.Random(0)
    tracks = [[Meta("set_tempo", tempo=600_000, time=0), Meta("set_tempo", tempo=400_000, time=1920)]]
    for channel, program in ((0, 0), (9, 0), (3, 40)):
        msgs = [M("program_change", channel=channel, program=program, time=0),
                M("control_change", channel=channel, control=64, value=127, time=0)]
        for _ in range(60):
            pitch = rng.randrange(36, 90)
            msgs += [M("note_on", channel=channel, note=pitch, velocity=rng.randrange(1, 128), time=rng.randrange(0, 200)),
                     M("note_off", channel=channel, note=pitch, time=rng.randrange(1, 200))]
        tracks.append(msgs)
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.extend(mido.MidiTrack(t) for t in tracks)
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def real_file(source: str, made_midi) -> bytes:
    if source == "made":
        return made_midi.band.read_bytes()  # 11 KB, 7 tracks, pedal, a tempo change
    # 18 KB, 4 tracks, pedal
    return (SHARED_MIDI / "valid" / "drywetmidi" / "MultiTrack_Middle_Hymn-Nr-05.mid").read_bytes()


def corruptions(data: bytes, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = [(f"truncated to {f:.0%}", data[:int(len(data) * f)]) for f in (0.0, 0.005, 0.03, 0.25, 0.5, 0.9, 0.999)]
    for i in range(6):
        flipped = bytearray(data)
        for _ in range((1, 3, 30)[i % 3]):
            k = rng.randrange(len(flipped))
            flipped[k] ^= 1 << rng.randrange(8)
        out.append((f"bit flips {i}", bytes(flipped)))
    spliced = bytearray(data)
    k = rng.randrange(14, len(data))
    spliced[k:k + 40] = bytes(rng.randrange(256) for _ in range(40))
    out.append(("random bytes spliced in", bytes(spliced)))
    return out


def check(name: str, data: bytes) -> NoteArrays | MidiReadError:
    results = []
    for backend in ("auto", "python", "mido"):
        result, messages, seconds = read(data, backend)
        assert seconds < 5, f"{name}: {backend} took {seconds:.1f} s"
        assert len(messages) <= 1, messages
        if isinstance(result, NoteArrays):
            assert (result.end >= result.start).all() and (result.start >= 0).all(), name
            assert np.isfinite(result.end).all() and result.duration >= 0, name
        results.append(result)
    # every backend agrees: all raise, or all read the same number of notes
    kinds = {type(r) for r in results}
    assert len(kinds) == 1, f"{name}: {results}"
    if kinds == {NoteArrays}:
        assert len({len(r) for r in results}) == 1, f"{name}: {[len(r) for r in results]}"
    return results[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_corruptions_of_a_built_file(seed):
    for name, data in corruptions(base_file(), seed):
        check(name, data)


@pytest.mark.parametrize("source", SOURCES)
def test_generated_corruptions_of_a_real_file(source, made_midi):
    data = real_file(source, made_midi)
    outcomes = [check(name, bad) for name, bad in corruptions(data, 7)]
    # truncated files keep what was there: half a file keeps notes
    assert isinstance(outcomes[4], NoteArrays) and len(outcomes[4]) > 0


@pytest.mark.parametrize("name, data, reason", [
    ("zero-length", b"", "empty file"),
    ("text", b"Not a MIDI file at all.\n" * 20, "no MThd header chunk"),
    ("random bytes", bytes(random.Random(3).randrange(256) for _ in range(4096)), "no MThd header chunk"),
    ("truncated header", b"MThd\x00\x00\x00\x06\x00\x01", "truncated header"),
    ("smpte 0 ticks a frame", b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\xe7\x00", "0 ticks per frame"),
])
def test_unreadable_inputs_raise_midireaderror(name, data, reason):
    with pytest.raises(MidiReadError, match=reason) as err:
        read_midi(data)
    assert err.value.source == "<bytes>"


def test_a_chunk_declaring_4_gb_allocates_nothing_of_the_sort():
    track = b"\x00\x90\x3c\x40\x83\x60\x80\x3c\x00\x00\xff\x2f\x00"
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\xff\xff\xff\xff" + track
    tracemalloc.start()
    try:
        result, messages, seconds = read(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20 and seconds < 5
    assert isinstance(result, NoteArrays) and list(result.pitch) == [60] and result.end[0] == 0.5
    assert "track 0 declares 4294967295 bytes but only 13 remain" in messages[0]


def with_chunk_size(data: bytes, track: int, size: int) -> bytes:
    """The file with the declared size of its ``track``-th MTrk chunk replaced."""
    pos = 0
    for _ in range(track + 1):
        pos = data.index(b"MTrk", pos + 1)
    return data[:pos + 4] + struct.pack(">I", size) + data[pos + 8:]


def test_recoverable_damage_keeps_every_note():
    data = base_file()
    clean = read_midi_arrays(data)
    first_track = data.index(b"MTrk", 14)
    second = data.index(b"MTrk", first_track + 1)
    riff = b"RIFF" + struct.pack("<I", len(data) + 12) + b"RMIDdata" + struct.pack("<I", len(data)) + data
    cases = {
        "RIFF/RMID wrapper": (riff, "unwrapped a RIFF/RMID container"),
        "junk before the header": (b"\x00" * 128 + data, "skipped 128 bytes before the MThd header"),
        "trailing garbage": (data + b"garbage!" * 10, "ignored 80 trailing bytes"),
        "unknown chunk": (data[:second] + b"XYZW\x00\x00\x00\x03abc" + data[second:], None),
        "chunk size too small": (with_chunk_size(data, 1, 10), "track 1 declares 10 bytes"),
        "chunk size too large": (with_chunk_size(data, 1, 100_000), "track 1 declares 100000 bytes"),
        "wrong track count": (data[:10] + b"\x00\x09" + data[12:], "header declares 9 tracks, found 4"),
        "no end-of-track": (data[:-4], "has no end-of-track event"),
    }
    for name, (bad, reason) in cases.items():
        result = check(name, bad)
        assert isinstance(result, NoteArrays), name
        assert len(result) == len(clean) and np.allclose(result.end, clean.end) and np.array_equal(result.pitch, clean.pitch), name
        _, messages, _ = read(bad)
        if reason:
            assert len(messages) == 1 and reason in messages[0], (name, messages)
        else:
            assert not messages, (name, messages)


def test_out_of_range_data_bytes_are_clamped():
    track = b"\x00\x90\x3c\xc0" + b"\x60\x80\x3c\x00" + b"\x00\xff\x2f\x00"  # velocity byte 0xC0
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk" + struct.pack(">I", len(track)) + track
    result = check("velocity 0xC0", data)
    assert list(result.velocity) == [127] and list(result.end) == [0.5]


def test_running_status_without_a_status_byte_is_skipped():
    track = b"\x00\x3c\x40" + b"\x00\x90\x3e\x40\x60\x80\x3e\x00\x00\xff\x2f\x00"  # data bytes first
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk" + struct.pack(">I", len(track)) + track
    result = check("statusless data", data)
    assert list(result.pitch) == [62]
