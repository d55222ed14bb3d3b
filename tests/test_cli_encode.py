"""`musenet encode`: files and folders to ids or text, bad files reported on stderr."""

import json

import mido
import pytest

from musenet_hf.cli import main


@pytest.fixture
def midi_file(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([
        mido.Message("program_change", program=40, time=0),
        mido.Message("note_on", note=67, velocity=80, time=0),
        mido.Message("note_off", note=67, velocity=0, time=480),  # 0.5 s at 120 bpm
    ])
    mid.tracks.append(track)
    path = tmp_path / "one.mid"
    mid.save(path)
    return path


def test_encode_text(midi_file, capsys):
    assert main(["encode", str(midi_file), "--composer", "bach", "--text"]) == 0
    assert capsys.readouterr().out.strip() == "bach strings start violin:v80:G4 wait:50 violin:v0:G4 end"


def test_encode_folder_ids_and_report(midi_file, tmp_path, capsys):
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00")
    out = tmp_path / "ids.jsonl"
    assert main(["encode", str(tmp_path), "-o", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(midi_file)]
    assert rows[0]["ids"] == [4098 + 32, 4096, 14 * 128 + 67, 3968 + 49, 15 * 128 + 67, 4097]
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.mid" in err
    assert main(["encode", str(tmp_path / "broken.mid")]) == 1
