"""Reading and writing MIDI files: semantics on small files built here, backends on real files."""

from __future__ import annotations

import io
import random
import struct
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf import MidiReadError, MidiReadWarning
from musenet_hf.midi import midi_io, midi_symusic
from musenet_hf.midi.midi_io import Note, NoteArrays, Score, read_midi, read_midi_arrays, read_midi_notes, write_midi

from midi_fixtures import HAVE_SHARED_MIDI, SOURCES, needs_shared_midi, shared_midi
BACKENDS = ["python", "mido"] + (["symusic"] if midi_symusic.AVAILABLE else [])
COLUMNS = ("program", "is_drum", "pitch", "velocity", "start", "end", "start_beat", "end_beat")
M, Meta = mido.Message, mido.MetaMessage


def midi_bytes(*tracks: list, ticks_per_beat: int = 480, type: int = 1) -> bytes:
    """A MIDI file with the given tracks (lists of mido messages with delta times)."""
    mf = mido.MidiFile(type=type, ticks_per_beat=ticks_per_beat)
    for msgs in tracks:
        mf.tracks.append(mido.MidiTrack(msgs))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def raw_file(*chunks: bytes, fmt: int = 1, division: int = 480, ntracks: int | None = None) -> bytes:
    """A MIDI file from raw track payloads (delta-time + event bytes)."""
    out = b"MThd" + struct.pack(">IHHH", 6, fmt, len(chunks) if ntracks is None else ntracks, division)
    return out + b"".join(b"MTrk" + struct.pack(">I", len(c)) + c for c in chunks)


def same_arrays(a: NoteArrays, b: NoteArrays) -> str | None:
    """None if the two readings agree (times to 1e-6 s), else what differs."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} notes"
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        if not (np.allclose(x, y, rtol=0, atol=1e-6) if x.dtype.kind == "f" else np.array_equal(x, y)):
            i = int(np.flatnonzero(~np.isclose(x, y, rtol=0, atol=1e-6))[0])
            return f"{name} differs at note {i}: {x[i]} vs {y[i]}"
    if a.ticks_per_beat != b.ticks_per_beat or abs(a.duration - b.duration) > 1e-6:
        return f"clock: {a.ticks_per_beat}, {a.duration} vs {b.ticks_per_beat}, {b.duration}"
    if len(a.tempos) != len(b.tempos) or not np.allclose(a.tempos, b.tempos, rtol=0, atol=1e-6):
        return "tempos differ"
    return None


def read_all(data: bytes, **kw) -> Score:
    """Read with every backend, check they agree, and return the Score."""
    first = read_midi_arrays(data, backend=BACKENDS[0], **kw)
    for backend in BACKENDS[1:]:
        diff = same_arrays(first, read_midi_arrays(data, backend=backend, **kw))
        assert diff is None, f"{backend} vs {BACKENDS[0]}: {diff}"
    return first.to_score()


def tuples(score: Score, *names: str) -> list[tuple]:
    names = names or ("program", "is_drum", "pitch", "velocity", "start", "end")
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in (getattr(n, k) for k in names))
            for n in score.notes]


# ------------------------------------------------------------------------------------------
# Semantics on small files


def test_tempo_map_from_any_track_gives_seconds_and_beats():
    # 120 bpm for 4 beats, then 60 bpm (set in the conductor track); notes in track 1
    conductor = [Meta("set_tempo", tempo=500_000, time=0), Meta("set_tempo", tempo=1_000_000, time=4 * 480)]
    notes = [M("note_on", note=60, velocity=90, time=480), M("note_off", note=60, time=480),
             M("note_on", note=62, velocity=80, time=3 * 480), M("note_off", note=62, time=960)]
    score = read_all(midi_bytes(conductor, notes))
    assert tuples(score, "pitch", "start", "end", "start_beat", "end_beat") == [
        (60, 0.5, 1.0, 1.0, 2.0), (62, 3.0, 5.0, 5.0, 7.0)]  # 0.5 s a beat, then 1 s a beat from 2.0 s
    assert score.tempos == [(0.0, 120.0), (2.0, 60.0)]
    assert score.ticks_per_beat == 480
    assert score.duration == 5.0


def test_default_tempo_is_120_bpm():
    score = read_all(midi_bytes([M("note_on", note=60, velocity=90, time=240), M("note_off", note=60, time=240)]))
    assert tuples(score, "start", "end") == [(0.25, 0.5)]
    assert score.tempos == [(0.0, 120.0)]


def test_program_change_mid_track_applies_to_later_notes():
    track = [M("program_change", program=5, time=0),
             M("note_on", note=60, velocity=90, time=0),
             M("program_change", program=40, time=240),  # while note 60 still sounds
             M("note_on", note=64, velocity=90, time=0),
             M("note_off", note=60, time=240), M("note_off", note=64, time=0),
             M("note_on", note=67, velocity=90, time=0),
             M("program_change", program=41, time=0),  # after a note-on at the same tick
             M("note_off", note=67, time=480)]
    assert tuples(read_all(midi_bytes(track)), "program", "pitch") == [(5, 60), (40, 64), (40, 67)]


def test_program_change_in_another_track_of_the_same_channel():
    setup = [M("program_change", channel=2, program=33, time=0),
             M("program_change", channel=2, program=26, time=960)]
    notes = [M("note_on", channel=2, note=40, velocity=90, time=0), M("note_off", channel=2, note=40, time=480),
             M("note_on", channel=2, note=41, velocity=90, time=960), M("note_off", channel=2, note=41, time=480),
             M("note_on", channel=3, note=42, velocity=90, time=0), M("note_off", channel=3, note=42, time=480)]
    score = read_all(midi_bytes(setup, notes))
    assert tuples(score, "program", "pitch") == [(33, 40), (26, 41), (0, 42)]


def test_velocity_zero_note_on_is_a_note_off():
    track = [M("note_on", note=60, velocity=100, time=0), M("note_on", note=60, velocity=0, time=480),
             M("note_on", note=60, velocity=50, time=0), M("note_off", note=60, velocity=64, time=240)]
    assert tuples(read_all(midi_bytes(track)), "velocity", "start", "end") == [(100, 0.0, 0.5), (50, 0.5, 0.75)]


def test_overlapping_notes_of_one_pitch_pair_first_in_first_out():
    track = [M("note_on", note=60, velocity=100, time=0), M("note_on", note=60, velocity=70, time=480),
             M("note_off", note=60, time=480), M("note_off", note=60, time=480),
             M("note_off", note=60, time=480)]  # one off too many: ignored
    assert tuples(read_all(midi_bytes(track)), "velocity", "start", "end") == [(100, 0.0, 1.0), (70, 0.5, 1.5)]


def test_zero_length_and_unfinished_notes():
    track = [M("note_on", note=60, velocity=100, time=0), M("note_off", note=60, time=0),  # zero length
             M("note_on", note=62, velocity=90, time=480),  # never released
             M("note_on", note=64, velocity=80, time=480), M("note_off", note=64, time=480),
             Meta("end_of_track", time=480)]
    assert tuples(read_all(midi_bytes(track)), "pitch", "start", "end") == [
        (60, 0.0, 0.0), (62, 0.5, 2.0), (64, 1.0, 1.5)]


def test_notes_left_sounding_end_with_the_file():
    short = [M("note_on", note=60, velocity=100, time=0), Meta("end_of_track", time=480)]
    long = [M("note_on", channel=1, note=62, velocity=90, time=0), M("note_off", channel=1, note=62, time=1920)]
    assert tuples(read_all(midi_bytes(short, long)), "pitch", "start", "end") == [(60, 0.0, 2.0), (62, 0.0, 2.0)]


def test_pedal_lifted_and_pressed_at_one_tick_releases_held_notes():
    track = [M("control_change", control=64, value=127, time=0),
             M("note_on", note=60, velocity=90, time=0), M("note_off", note=60, time=240),  # held
             M("control_change", control=64, value=0, time=240), M("control_change", control=64, value=127, time=0),
             M("note_on", note=62, velocity=90, time=0),  # re-pedalled at 480: 60 ends there
             M("control_change", control=64, value=0, time=480),  # 62 released at 960 as the pedal
             M("control_change", control=64, value=127, time=0), M("note_off", note=62, time=0),  # changes
             M("note_on", note=64, velocity=90, time=0), M("note_off", note=64, time=240),
             M("control_change", control=64, value=0, time=240)]
    assert tuples(read_all(midi_bytes(track)), "pitch", "start", "end") == [(60, 0.0, 0.5), (62, 0.5, 1.0), (64, 1.0, 1.5)]


def test_notes_pair_within_their_track():
    # an off in another track does not end a note
    score = read_all(midi_bytes([M("note_on", note=60, velocity=100, time=0), Meta("end_of_track", time=960)],
                                [M("note_off", note=60, time=480)]))
    assert tuples(score, "pitch", "start", "end") == [(60, 0.0, 1.0)]


def sustain_file() -> bytes:
    track = [M("control_change", control=64, value=127, time=0),
             M("note_on", note=60, velocity=90, time=0), M("note_off", note=60, time=240),  # held to 960
             M("note_on", note=64, velocity=90, time=0), M("note_off", note=64, time=240),  # held, re-struck at 720
             M("note_on", note=64, velocity=70, time=240), M("note_off", note=64, time=120),
             M("control_change", control=64, value=0, time=120),  # up at 960
             M("note_on", note=67, velocity=90, time=0), M("note_off", note=67, time=240),  # not held
             M("control_change", control=64, value=100, time=240),  # down at 1440, never up
             M("note_on", note=69, velocity=90, time=0), M("note_off", note=69, time=240),
             Meta("end_of_track", time=480)]
    drums = [M("control_change", channel=9, control=64, value=127, time=0),
             M("note_on", channel=9, note=36, velocity=90, time=0), M("note_off", channel=9, note=36, time=60)]
    return midi_bytes(track, drums)


def test_sustain_pedal_extends_notes_to_its_release():
    score = read_all(sustain_file())
    assert tuples(score, "is_drum", "pitch", "velocity", "start", "end") == [
        (True, 36, 90, 0.0, 0.0625),  # drums ignore the pedal
        (False, 60, 90, 0.0, 1.0),  # held to the pedal's release
        (False, 64, 90, 0.25, 0.75),  # cut by its re-strike
        (False, 64, 70, 0.75, 1.0),
        (False, 67, 90, 1.0, 1.25),  # released after the pedal went up
        (False, 69, 90, 1.5, 2.25)]  # pedal never released: the file's last event


def test_sustain_off_keeps_note_offs():
    score = read_all(sustain_file(), sustain=False)
    assert tuples(score, "pitch", "start", "end") == [
        (36, 0.0, 0.0625), (60, 0.0, 0.25), (64, 0.25, 0.5), (64, 0.75, 0.875), (67, 1.0, 1.25), (69, 1.5, 1.75)]


def test_drums_are_channel_10_with_program_0():
    track = [M("program_change", channel=9, program=25, time=0), M("program_change", channel=0, program=25, time=0),
             M("note_on", channel=9, note=36, velocity=100, time=0), M("note_on", channel=0, note=36, velocity=100, time=0),
             M("note_off", channel=9, note=36, time=120), M("note_off", channel=0, note=36, time=0)]
    assert tuples(read_all(midi_bytes(track)), "program", "is_drum", "pitch") == [(0, True, 36), (25, False, 36)]


def test_notes_are_sorted_by_start_pitch_program_drum():
    track = [M("note_on", channel=c, note=p, velocity=90, time=0) for c, p in ((9, 40), (1, 40), (0, 50), (0, 30))]
    track = [M("program_change", channel=1, program=7, time=0)] + track
    track += [M("note_off", channel=c, note=p, time=100 if i == 0 else 0)
              for i, (c, p) in enumerate(((9, 40), (1, 40), (0, 50), (0, 30)))]
    assert tuples(read_all(midi_bytes(track)), "pitch", "program", "is_drum") == [
        (30, 0, False), (40, 0, True), (40, 7, False), (50, 0, False)]


def test_empty_files_give_no_notes():
    for data in (midi_bytes([]), midi_bytes(), raw_file(ntracks=0), midi_bytes([Meta("end_of_track", time=960)])):
        score = read_all(data)
        assert score.notes == [] and score.tempos == [(0.0, 120.0)]
    assert read_all(midi_bytes([Meta("end_of_track", time=960)])).duration == 1.0


def test_type_0_and_type_1_give_the_same_notes():
    tempo = [Meta("set_tempo", tempo=400_000, time=0)]
    a = [M("note_on", channel=0, note=60, velocity=90, time=0), M("note_off", channel=0, note=60, time=480)]
    b = [M("program_change", channel=1, program=40, time=0), M("note_on", channel=1, note=67, velocity=80, time=240),
         M("note_off", channel=1, note=67, time=480)]
    merged = tempo + [a[0], b[0], M("note_on", channel=1, note=67, velocity=80, time=240),
                      M("note_off", channel=0, note=60, time=240), M("note_off", channel=1, note=67, time=240)]
    one = read_all(midi_bytes(tempo, a, b))
    zero = read_all(midi_bytes(merged, type=0))
    assert tuples(one) == tuples(zero) == [(0, False, 60, 90, 0.0, 0.4), (40, False, 67, 80, 0.2, 0.6)]


def test_type_2_sequences_play_one_after_another():
    first = [Meta("set_tempo", tempo=1_000_000, time=0), M("note_on", note=60, velocity=90, time=0),
             M("note_off", note=60, time=480), Meta("end_of_track", time=480)]  # 2 s long at 60 bpm
    second = [M("note_on", note=62, velocity=90, time=480), M("note_off", note=62, time=480)]  # 120 bpm
    score = read_all(midi_bytes(first, second, type=2))
    assert tuples(score, "pitch", "start", "end", "start_beat", "end_beat") == [
        (60, 0.0, 1.0, 0.0, 1.0), (62, 2.5, 3.0, 3.0, 4.0)]
    assert score.tempos == [(0.0, 60.0), (2.0, 120.0)]


def test_smpte_division_counts_real_seconds():
    # 25 frames a second, 40 ticks a frame: 1000 ticks a second; tempo events do not apply
    track = b"\x00\xff\x51\x03\x0f\x42\x40" + b"\x00\x90\x3c\x40" + b"\x87\x68\x80\x3c\x00" + b"\x00\xff\x2f\x00"
    data = raw_file(track, fmt=0, division=0xE728)
    score = read_all(data)
    assert tuples(score, "pitch", "start", "end", "start_beat", "end_beat") == [(60, 0.0, 1.0, 0.0, 2.0)]
    assert score.ticks_per_beat == 500
    mf = mido.MidiFile(file=io.BytesIO(data))
    assert mf.ticks_per_beat < 0  # mido's reading of SMPTE; read_midi still gets seconds right
    assert tuples(read_midi(mf), "start", "end") == [(0.0, 1.0)]


def test_division_zero_is_read_at_an_assumed_96_ticks_per_beat():
    with pytest.warns(MidiReadWarning, match="read as 96 ticks per beat"):
        score = read_midi(raw_file(b"\x00\xff\x2f\x00", division=0))
    assert score.ticks_per_beat == 96


def test_sources_paths_bytes_and_midifile(tmp_path):
    data = midi_bytes([M("note_on", note=60, velocity=90, time=0), M("note_off", note=60, time=480)])
    path = tmp_path / "song.mid"
    path.write_bytes(data)
    assert read_midi(path).source == str(path)
    assert read_midi(str(path)).source == str(path)
    assert read_midi(data).source == "<bytes>"
    assert read_midi(mido.MidiFile(file=io.BytesIO(data))).source == "<MidiFile>"
    assert read_midi_notes(path) == read_midi(data).notes == [Note(0, False, 60, 90, 0.0, 0.5, 0.0, 1.0)]
    with pytest.raises(MidiReadError, match="missing.mid: cannot open"):
        read_midi(tmp_path / "missing.mid")
    with pytest.raises(ValueError, match="backend"):
        read_midi(data, backend="nope")


def test_notes_are_frozen_plain_values():
    note = read_midi(midi_bytes([M("note_on", note=60, velocity=90, time=0), M("note_off", note=60, time=480)])).notes[0]
    assert type(note) is Note and type(note.pitch) is int and type(note.start) is float and type(note.is_drum) is bool
    with pytest.raises(AttributeError):
        note.pitch = 61
    assert note == Note(0, False, 60, 90, 0.0, 0.5, 0.0, 1.0) and hash(note) == hash(Note(0, False, 60, 90, 0.0, 0.5, 0.0, 1.0))


# ------------------------------------------------------------------------------------------
# Writing


def random_notes(rng: random.Random, programs: list[tuple[int, bool]], count: int) -> list[Note]:
    """Notes on a 1/480-beat grid at 120 bpm, no two of one pitch and instrument overlapping."""
    notes, busy = [], {}
    for _ in range(count):
        program, drum = rng.choice(programs)
        pitch = rng.randrange(21, 109)
        start = busy.get((program, drum, pitch), 0) + rng.randrange(0, 2000)
        end = start + rng.randrange(0, 1500)
        busy[(program, drum, pitch)] = end + 1
        notes.append(Note(program, drum, pitch, rng.randrange(1, 128), start / 960, end / 960, start / 480, end / 480))
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.program, n.is_drum))


@pytest.mark.parametrize("n_programs", [3, 20])
def test_write_then_read_gives_the_same_notes(n_programs):
    rng = random.Random(n_programs)
    programs = [(p, False) for p in rng.sample(range(128), n_programs)] + [(0, True)]
    notes = random_notes(rng, programs, 400)
    back = read_all(mf_bytes(write_midi(notes)))
    assert_same_notes(back.notes, notes)


def assert_same_notes(got: list[Note], want: list[Note], tol: float = 1e-6) -> None:
    """The same notes, in any order, times within ``tol``."""
    key = lambda n: (round(n.start, 4), n.pitch, n.program, n.is_drum, round(n.end, 4), n.velocity)  # noqa: E731
    got, want = sorted(got, key=key), sorted(want, key=key)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.program, g.is_drum, g.pitch, g.velocity) == (w.program, w.is_drum, w.pitch, w.velocity), (g, w)
        assert np.allclose([g.start, g.end, g.start_beat, g.end_beat], [w.start, w.end, w.start_beat, w.end_beat],
                           rtol=0, atol=tol), (g, w)


def mf_bytes(mf: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def test_written_file_layout():
    notes = [Note(40, False, 60, 90, 0.0, 0.5, 0.0, 1.0), Note(40, False, 60, 80, 0.5, 1.0, 1.0, 2.0),
             Note(0, True, 36, 100, 0.25, 0.25, 0.5, 0.5), Note(0, False, 72, 70, 0.0, 2.0, 0.0, 4.0)]
    mf = write_midi(notes, tempo_bpm=90, ticks_per_beat=96, program_names={40: "violin", "drums": "kit"})
    assert mf.type == 1 and mf.ticks_per_beat == 96 and len(mf.tracks) == 4
    assert [m.tempo for m in mf.tracks[0] if m.type == "set_tempo"] == [mido.bpm2tempo(90)]
    names = [next(m.name for m in t if m.type == "track_name") for t in mf.tracks[1:]]
    assert names == ["program 0", "violin", "kit"]
    channels = [{m.channel for m in t if not m.is_meta} for t in mf.tracks[1:]]
    assert channels == [{0}, {1}, {9}]
    violin = [(m.type, m.time) for m in mf.tracks[2] if m.type in ("note_on", "note_off")]
    assert violin == [("note_on", 0), ("note_off", 72), ("note_on", 0), ("note_off", 72)]  # off before on
    drum = [m.type for m in mf.tracks[3] if m.type in ("note_on", "note_off")]
    assert drum == ["note_on", "note_off"]  # a zero-length note: its own on first
    back = read_midi(mf_bytes(mf))
    assert np.allclose(back.tempos, [(0.0, 90.0)])
    at_90 = [Note(n.program, n.is_drum, n.pitch, n.velocity, n.start, n.end, n.start * 1.5, n.end * 1.5) for n in notes]
    assert_same_notes(back.notes, at_90, tol=1e-5)  # the tempo is stored in whole microseconds


# ------------------------------------------------------------------------------------------
# Backends agree on every real file (the files made in midi_fixtures.py; the shared ones where present)


def valid_files(folder: str | None = None) -> list[Path]:
    root = shared_midi("valid") / (folder or "")
    return sorted(p for p in root.rglob("*") if p.is_file())


def made_files(made_midi) -> list[Path]:
    """Every valid file made here: the labelled pieces, the 16 songs and the empty file."""
    return made_midi.valid_files + made_midi.song_files + [made_midi.empty]


def source_files(source: str, made_midi) -> list[Path]:
    return made_files(made_midi) if source == "made" else valid_files()


FOLDERS = ["anticipation", "drywetmidi", "midis2jam2", "miditok", "musicautobot", "prettymidi", "symusic"]


@pytest.mark.skipif(not midi_symusic.AVAILABLE, reason="symusic is not installed")
@pytest.mark.parametrize("folder", ["made"] + (FOLDERS if HAVE_SHARED_MIDI else [
    pytest.param("shared", marks=needs_shared_midi)]))
def test_symusic_matches_the_built_in_parser_on_every_valid_file(folder, made_midi):
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiReadWarning)
        for path in made_files(made_midi) if folder == "made" else valid_files(folder):
            diff = same_arrays(read_midi_arrays(path, backend="python"), read_midi_arrays(path, backend="symusic"))
            if diff:
                bad.append(f"{path.name}: {diff}")
    assert not bad, bad


def check_mido_vs_symusic(paths: list[Path]) -> list[str]:
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiReadWarning)
        for path in paths:
            diff = same_arrays(read_midi_arrays(path, backend="mido"), read_midi_arrays(path, backend="auto"))
            if diff:
                bad.append(f"{path.name}: {diff}")
    return bad


@pytest.mark.parametrize("source", SOURCES)
def test_mido_matches_the_fast_reader_on_a_sample_of_valid_files(source, made_midi):
    # mido parses ~30x slower: a fixed sample of the shared files (every 3rd file under 64 KB),
    # all of them in the slow test; every made file
    if source == "made":
        paths = made_files(made_midi)
    else:
        paths = [p for p in valid_files() if p.stat().st_size <= 64 << 10][::3]
    assert not check_mido_vs_symusic(paths)


@pytest.mark.slow
def test_mido_matches_the_fast_reader_on_every_valid_file():
    assert not check_mido_vs_symusic(valid_files())


@pytest.mark.skipif(not midi_symusic.AVAILABLE, reason="symusic is not installed")
@pytest.mark.parametrize("source", SOURCES)
def test_the_fast_path_reads_most_valid_files_itself(source, made_midi):
    # Files the fast path hands to the built-in parser (program changes of one channel in
    # several tracks, files using every program, possible F7 events, many unfinished notes):
    # 33 of 443 shared files measured; 4 of the 22 made ones (the piano pieces whose two hands
    # are two tracks of one channel, each with its program change)
    handed_over, files = 0, source_files(source, made_midi)
    for path in files:
        layout = midi_io.read_layout(path.read_bytes(), str(path))
        sequences = [[s] for s in layout.spans] if layout.format == 2 else [layout.spans]
        handed_over += any(s and midi_symusic.raw_from_symusic(layout.data, s) is None for s in sequences)
    assert handed_over <= {"made": 4, "shared": 36}[source] and len(files) > {"made": 20, "shared": 400}[source]
