"""RIFF-wrapped MIDI (RMID, ``.rmi``) and headers whose time division is 0, built from real files.

Every case wraps or edits the bytes of a real file: a small file of ``../shared/midi/valid``
where present (those cases skip, saying why, where it is absent) and a file written here with
mido (always run). An RMID file must give exactly the notes of the file it wraps, in every
backend and through the tokenizer; a division-0 file is read at the assumed 96 ticks per beat:
the same notes in the same order, every time scaled by (the file's division / 96), and one
warning that names the file and the assumption. A RIFF file with no MIDI data still raises
:class:`MidiReadError` naming the file and the reason.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf import MidiReadError, MidiReadWarning
from musenet_hf.midi import midi_symusic
from musenet_hf.midi.midi_io import NoteArrays, read_midi, read_midi_arrays
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

from midi_fixtures import shared_midi

BACKENDS = ["auto", "python", "mido"] + (["symusic"] if midi_symusic.AVAILABLE else [])
ASSUMED_DIVISION = 96  # what a division of 0 is read as (musenet_hf.midi._midi_repair)
# Real files of ../shared/midi/valid: 480 ticks a beat with 49 tempo changes; a type-2 file
# with drums and 14 programs at 480 ticks a beat.
REAL = ["miditok/tests_MIDIs_one_track_6338816_Etude_No._4.mid", "drywetmidi/MultiSequence_Small_jabba2.mid"]
SOURCES = ["made", *REAL]
NOTE_COLUMNS = ("program", "is_drum", "pitch", "velocity", "start", "end", "start_beat", "end_beat")
M, Meta = mido.Message, mido.MetaMessage


def made_file() -> bytes:
    """A type-1 file at 480 ticks a beat: a tempo change, a program change, the sustain pedal,
    drums, and an odd number of bytes (so an RMID wrapper needs its pad byte)."""
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.append(mido.MidiTrack([Meta("set_tempo", tempo=600_000, time=0),
                                     Meta("set_tempo", tempo=400_000, time=1920)]))
    piano = [Meta("track_name", name="piano", time=0), M("program_change", program=0, time=0)]
    for k, pitch in enumerate([60, 64, 67, 72, 71, 67, 64, 62]):
        if k == 4:
            piano.append(M("program_change", program=40, time=0))
        if k == 2:
            piano.append(M("control_change", control=64, value=127, time=0))
        piano += [M("note_on", note=pitch, velocity=50 + 9 * k, time=0),
                  M("note_off", note=pitch, velocity=0, time=360 + 30 * k)]
        if k == 3:
            piano.append(M("control_change", control=64, value=0, time=120))
    mf.tracks.append(mido.MidiTrack(piano))
    drums = [M("note_on", channel=9, note=36 + k % 3, velocity=100, time=0 if k == 0 else 420) for k in range(6)]
    mf.tracks.append(mido.MidiTrack([m for on in drums for m in (on, M("note_off", channel=9, note=on.note, time=60))]))
    buf = io.BytesIO()
    mf.save(file=buf)
    data = buf.getvalue()
    assert len(data) % 2 == 1, len(data)
    return data


@pytest.fixture(params=SOURCES)
def smf(request) -> bytes:
    """The bytes of a real standard MIDI file (made here, or from ../shared/midi/valid)."""
    if request.param == "made":
        return made_file()
    return shared_midi("valid/" + request.param).read_bytes()


def chunk(cid: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, payload, and a pad byte when the size is odd."""
    return cid + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)


def info_list(title: str) -> bytes:
    """A ``LIST``/``INFO`` chunk naming the song, as RMID writers add (odd ``INAM`` size: padded)."""
    return chunk(b"LIST", b"INFO" + chunk(b"INAM", title.encode() + b"\x00"))


def rmid(smf: bytes, before: bytes = b"", after: bytes = b"", data_size: int | None = None) -> bytes:
    """``smf`` wrapped in a RIFF ``RMID`` file: its ``data`` chunk, other chunks around it."""
    data = chunk(b"data", smf)
    if data_size is not None:  # a lying size field
        data = data[:4] + struct.pack("<I", data_size) + data[8:]
    body = b"RMID" + before + data + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read(src, backend: str = "auto") -> tuple[NoteArrays, list[str]]:
    """The notes of ``src`` and the MidiReadWarning messages reading it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = read_midi_arrays(src, backend=backend)
    return arrays, [str(w.message) for w in caught if issubclass(w.category, MidiReadWarning)]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def assert_same_notes(got: NoteArrays, want: NoteArrays) -> None:
    """Exactly the same notes (every column, bit for bit), clock and tempo map."""
    assert len(got) == len(want) > 0
    for name in NOTE_COLUMNS:
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert got.tempos == want.tempos and got.ticks_per_beat == want.ticks_per_beat
    assert got.duration == want.duration


# --------------------------------------------------------------------------------------------
# RMID


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["data only", "INFO before", "INFO after"])
def test_rmid_file_gives_the_notes_of_the_file_it_wraps(smf, backend, layout, tmp_path):
    info = info_list("A song")
    wrapped = {"data only": rmid(smf), "INFO before": rmid(smf, before=info),
               "INFO after": rmid(smf, after=info)}[layout]
    plain, plain_messages = read(write(tmp_path / "song.mid", smf), backend)
    path = write(tmp_path / "song.rmi", wrapped)
    got, messages = read(path, backend)
    assert not plain_messages
    assert_same_notes(got, plain)
    assert len(messages) == 1 and messages[0].startswith(f"{path}: repaired: ") and "RIFF/RMID" in messages[0]
    # the Score path and the bytes agree with the path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiReadWarning)
        assert read_midi(wrapped, backend=backend).notes == read_midi(smf, backend=backend).notes


def test_tokenizer_encodes_an_rmid_file_like_the_file_it_wraps(smf, tmp_path):
    tok = MuseNetTokenizer()
    plain = tok.encode_midi(write(tmp_path / "song.mid", smf), composer="bach")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiReadWarning)
        wrapped = tok.encode_midi(write(tmp_path / "song.rmi", rmid(smf, after=info_list("x"))), composer="bach")
    assert wrapped == plain and len(plain) > 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_rmid_data_chunk_with_a_lying_size_keeps_every_note(smf, backend, tmp_path):
    plain, _ = read(smf, backend)
    cases = {
        # a size that cannot hold even the MThd header (0, as some writers leave it): the data
        # runs to the end of the file
        "size 0": (rmid(smf, before=info_list("x"), data_size=0), "data chunk declares 0 bytes"),
        # a size past the end of the file: the data runs to the end of the file
        "size past the end": (rmid(smf, data_size=len(smf) + 100),
                              f"data chunk declares {len(smf) + 100} bytes but only {len(smf) + len(smf) % 2} remain"),
    }
    for name, (data, says) in cases.items():
        path = write(tmp_path / f"{name}.rmi", data)
        got, messages = read(path, backend)
        assert_same_notes(got, plain)
        assert len(messages) == 1 and messages[0].startswith(f"{path}: repaired: ") and says in messages[0], (
            name, messages)


def test_truncated_rmid_keeps_the_notes_before_the_cut(smf, tmp_path):
    wrapped = rmid(smf)
    path = write(tmp_path / "cut.rmi", wrapped[:len(wrapped) * 2 // 3])
    got, messages = read(path)
    plain, _ = read(smf)
    assert 0 < len(got) < len(plain)
    assert len(messages) == 1 and f"data chunk declares {len(smf)} bytes but only" in messages[0]


@pytest.mark.parametrize("make, reason", [
    pytest.param(lambda smf: b"RIFF" + struct.pack("<I", 32) + b"RMID" + info_list("no data"),
                 "RIFF/RMID file with no data chunk (chunks: LIST)", id="INFO only"),
    pytest.param(lambda smf: rmid(smf, before=info_list("x"))[:40],
                 "RIFF/RMID file with no data chunk (chunks: LIST; the file ends inside a chunk header)",
                 id="cut before the data chunk"),
    pytest.param(lambda smf: rmid(smf)[:30], "truncated RIFF/RMID file: its data chunk has 10 of ",
                 id="cut inside the MIDI header"),
    pytest.param(lambda smf: b"RIFF" + struct.pack("<I", 36) + b"WAVE" + chunk(b"fmt ", bytes(16))
                 + chunk(b"data", b""), "no MThd header chunk (a RIFF 'WAVE' file, not RMID)", id="a WAVE file"),
])
def test_riff_file_without_midi_data_raises_naming_the_file_and_the_reason(make, reason, tmp_path):
    path = write(tmp_path / "broken.rmi", make(made_file()))
    with pytest.raises(MidiReadError) as err:
        read_midi(path)
    assert err.value.source == str(path) and str(err.value).startswith(f"{path}: ")
    assert err.value.reason.startswith(reason), err.value.reason


# --------------------------------------------------------------------------------------------
# Division 0


def with_division_0(smf: bytes) -> tuple[bytes, int]:
    """The file with its header's time division set to 0, and the division it had."""
    head = smf.index(b"MThd")
    division = struct.unpack_from(">H", smf, head + 12)[0]
    assert 0 < division < 0x8000  # ticks per beat
    return smf[:head + 12] + b"\x00\x00" + smf[head + 14:], division


@pytest.mark.parametrize("backend", BACKENDS)
def test_division_0_is_read_at_96_ticks_per_beat(smf, backend, tmp_path):
    bad, division = with_division_0(smf)
    plain, _ = read(write(tmp_path / "song.mid", smf), backend)
    path = write(tmp_path / "zero.mid", bad)
    got, messages = read(path, backend)
    scale = division / ASSUMED_DIVISION  # every tick lasts this many times longer
    assert len(got) == len(plain) > 0
    for name in ("program", "is_drum", "pitch", "velocity"):  # same notes, same order
        assert np.array_equal(getattr(got, name), getattr(plain, name)), name
    for name in ("start", "end", "start_beat", "end_beat"):
        assert np.allclose(getattr(got, name), getattr(plain, name) * scale, rtol=1e-12, atol=1e-9), name
    assert got.ticks_per_beat == ASSUMED_DIVISION
    assert np.isclose(got.duration, plain.duration * scale, rtol=1e-12)
    assert np.allclose(got.tempos, [(t * scale, bpm) for t, bpm in plain.tempos], rtol=1e-12, atol=1e-9)
    assert len(messages) == 1 and messages[0].startswith(f"{path}: repaired: "), messages
    assert "time division is 0 ticks per beat: read as 96 ticks per beat" in messages[0]


def test_division_0_in_a_mido_midifile_and_through_the_tokenizer(smf, tmp_path):
    bad, _ = with_division_0(smf)
    from_bytes, _ = read(bad)
    mf = mido.MidiFile(file=io.BytesIO(bad))
    assert mf.ticks_per_beat == 0
    from_mido, messages = read(mf)
    assert len(from_mido) == len(from_bytes) > 0 and from_mido.ticks_per_beat == ASSUMED_DIVISION
    for name in NOTE_COLUMNS:
        assert np.allclose(getattr(from_mido, name), getattr(from_bytes, name), rtol=0, atol=1e-9), name
    assert len(messages) == 1 and messages[0].startswith("<MidiFile>: repaired: ")
    assert "read as 96 ticks per beat" in messages[0]
    tok = MuseNetTokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiReadWarning)
        ids = tok.encode_midi(write(tmp_path / "zero.mid", bad))
    assert ids == tok.encode_midi(from_bytes) and len(ids) > 10


def test_rmid_wrapping_a_division_0_file(smf, tmp_path):
    bad, division = with_division_0(smf)
    path = write(tmp_path / "zero.rmi", rmid(bad, after=info_list("x")))
    got, messages = read(path)
    want, _ = read(bad)
    assert_same_notes(got, want)
    assert len(messages) == 1 and "RIFF/RMID" in messages[0] and "read as 96 ticks per beat" in messages[0]
