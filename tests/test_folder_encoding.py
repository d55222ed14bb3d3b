"""The one folder-encoding path: ``MuseNetTokenizer.encode_files`` under ``encode_folder`` and
``load_midi_folder``, inline or in the worker pool, on a small folder these tests write."""

from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
from musenet_hf.training.data import load_midi_folder


def write_piece(path: Path, program: int, pitches: list[int], beats_per_note: float = 0.5) -> None:
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("program_change", program=program, channel=0, time=0)])
    step = int(480 * beats_per_note)
    for p in pitches:
        track += [mido.Message("note_on", note=p, velocity=80, channel=0, time=0),
                  mido.Message("note_off", note=p, velocity=0, channel=0, time=step)]
    mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pieces")
    write_piece(root / "bach" / "a.mid", 0, [60, 62, 64, 65, 67])
    write_piece(root / "bach" / "b.mid", 40, [67, 65, 64, 62, 60, 59])
    write_piece(root / "mozart" / "c.mid", 73, [72, 74, 76], beats_per_note=1.0)
    (root / "mozart" / "not_midi.mid").write_bytes(b"this is not a MIDI file at all")
    silent = mido.MidiFile(ticks_per_beat=480)
    silent.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)]))
    silent.save(root / "mozart" / "silent.mid")
    return root


@pytest.fixture(scope="module")
def tok() -> MuseNetTokenizer:
    return MuseNetTokenizer.from_preset("extended")


def test_encode_files_inline_and_in_workers_agree(folder, tok):
    paths = sorted(str(p) for p in folder.rglob("*.mid"))
    inline = {p: (piece, reason) for p, piece, reason in tok.encode_files(paths, num_proc=1, progress=False, quiet=True)}
    pooled = {p: (piece, reason) for p, piece, reason in tok.encode_files(paths, num_proc=2, progress=False, quiet=True)}
    assert sorted(inline) == sorted(pooled) == paths
    for p in paths:
        a, b = inline[p], pooled[p]
        assert (a[0] is None) == (b[0] is None) and a[1] == b[1]
        if a[0] is not None:
            assert (a[0].prefix, a[0].body, a[0].instruments, a[0].sha1) == (b[0].prefix, b[0].body, b[0].instruments,
                                                                              b[0].sha1)
    bad = inline[str(folder / "mozart" / "not_midi.mid")]
    assert bad[0] is None and bad[1]  # a reason, not an exception
    assert inline[str(folder / "bach" / "a.mid")][0].instruments == ["piano"]
    assert len(inline[str(folder / "bach" / "a.mid")][0].notes) == 5


def test_encode_folder_gives_encode_midi_ids_and_names_the_unreadable_file(folder, tok):
    result = tok.encode_folder(folder, "bach", progress=False)
    for path, ids in result.ids.items():
        assert ids == tok.encode_midi(path, composer="bach")
    assert list(result.failed) == [str(folder / "mozart" / "not_midi.mid")]
    assert str(folder / "mozart" / "silent.mid") in result.ids  # encode_folder keeps an empty piece


def test_load_midi_folder_is_the_same_inline_and_in_workers(folder, tok):
    one = load_midi_folder(folder, tok, validation_fraction=0.0, num_proc=1, progress=False)
    two = load_midi_folder(folder, tok, validation_fraction=0.0, num_proc=2, progress=False)
    assert one.dataset["train"].to_dict() == two.dataset["train"].to_dict()
    assert one.failed == two.failed and sorted(one.failed) == ["mozart/not_midi.mid", "mozart/silent.mid"]
    assert one.failed["mozart/silent.mid"] == "no notes"
    train = one.dataset["train"].to_dict()
    assert train["file"] == ["bach/a.mid", "bach/b.mid", "mozart/c.mid"]  # file order, whatever the workers' order
    assert train["label"] == ["bach", "bach", "mozart"] and train["instruments"] == ["piano", "strings", "winds"]  # programs 0, 40 (violin), 73 (flute)
    assert train["num_tokens"] == [len(b) for b in train["body"]]


def test_encode_files_wants_one_composer_per_path(tok, folder):
    with pytest.raises(ValueError, match="2 composers for 1 paths"):
        list(tok.encode_files([folder / "bach" / "a.mid"], ["bach", "bach"], progress=False))


def test_stored_notes_come_back_as_the_notes_read(folder, tok):
    """The data pipeline stores NoteArrays.to_matrix() per piece and augments NoteArrays.from_matrix()."""
    from musenet_hf.midi.midi_notes import NOTE_COLUMNS, NoteArrays

    (_, piece, _), = tok.encode_files([folder / "mozart" / "c.mid"], progress=False)
    matrix = piece.notes.to_matrix()
    assert matrix.shape == (3, len(NOTE_COLUMNS)) and matrix[:, NOTE_COLUMNS.index("pitch")].tolist() == [72, 74, 76]
    back = NoteArrays.from_matrix(matrix.ravel(), piece.notes.tempos)
    for column in NOTE_COLUMNS:
        assert np.array_equal(getattr(back, column), getattr(piece.notes, column)), column
        assert getattr(back, column).dtype == getattr(piece.notes, column).dtype, column
    assert back.tempos == piece.notes.tempos and back.duration == pytest.approx(1.5)  # 3 beats at 120 bpm
    assert tok.encode_notes(back) == tok.encode_notes(piece.notes)
