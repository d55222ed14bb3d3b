"""``musenet evaluate``: features, validity, adherence, the report, and one end-to-end run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musenet_hf.evaluation import (
    DURATION_EDGES, cut_notes, is_valid_piece, markdown_report, note_on_instruments, piece_features,
)
from musenet_hf.midi_io import Note
from musenet_hf.tokenization_musenet import MuseNetTokenizer

REPO = Path(__file__).resolve().parents[1]
SHARED_MIDI = REPO.parent / "shared" / "midi" / "valid"
TINY_CHECKPOINT = REPO / "checkpoints" / "musenet-tiny-music21"


def note(pitch: int, start: float, end: float, program: int = 0, drum: bool = False) -> Note:
    return Note(program=program, is_drum=drum, pitch=pitch, velocity=80, start=start, end=end,
                start_beat=2 * start, end_beat=2 * end)


def test_piece_features_of_a_c_major_scale():
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    notes = [note(p, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate(scale)] + [note(36, 0.0, 0.1, drum=True)]
    f = piece_features(notes)
    assert f.shape == (52,)
    pcs = f[:12]
    assert pcs[0] == pytest.approx(2 / 8) and pcs[1] == 0 and pcs[2] == pytest.approx(1 / 8)  # C twice, no C#
    intervals = f[12:37]
    assert intervals[12 + 2] == pytest.approx(5 / 7) and intervals[12 + 1] == pytest.approx(2 / 7)  # 5 tones, 2 semitones
    durations = f[37:47]
    half = np.searchsorted(DURATION_EDGES, 0.5, side="right") - 1
    assert durations[half] == 1.0  # every note lasts 0.5 s; the drum is left out
    density, polyphony, mean_pitch, pitch_range, together = f[47:]
    assert density == pytest.approx(8 / 4.0) and polyphony == pytest.approx(1.0)
    assert mean_pitch == pytest.approx(np.mean(scale) / 127) and pitch_range == pytest.approx(12 / 127)
    assert together == 0.0
    chord = piece_features([note(60, 0, 1), note(64, 0, 1), note(67, 0, 1)])
    assert chord[-1] == pytest.approx(2 / 3) and chord[48] == pytest.approx(3.0)  # three at once
    assert not piece_features([]).any()
    assert [n.pitch for n in cut_notes(notes[:8], 1.0)] == [60, 62]


def test_validity_and_note_ons():
    tok = MuseNetTokenizer.from_preset("musenet")
    v = tok.vocabulary
    on, off = v.token_to_id("piano:v72:C4"), v.token_to_id("piano:v0:C4")
    violin = v.token_to_id("violin:v80:G4")
    wait = v.token_to_id("wait:50")
    prefix = tok.prefix_ids("bach", ["piano"])
    good = prefix + [on, violin, wait, off, v.token_to_id("violin:v0:G4"), wait, v.end_id]
    assert is_valid_piece(tok, good) == (True, "")
    assert note_on_instruments(tok, good) == [v.instrument_index["piano"], v.instrument_index["violin"]]
    ok, why = is_valid_piece(tok, prefix + [on, wait, v.end_id])
    assert not ok and "end while 1 notes sound" in why
    assert is_valid_piece(tok, prefix + [on, wait, off]) == (False, "no end token")
    assert is_valid_piece(tok, prefix + [wait, v.end_id]) == (False, "no notes")


def test_markdown_report_rows():
    report = {
        "compression": {"models": {"MuseNet": {"bits_per_second": 30.0, "bits_per_token": 2.0, "nats_per_token": 1.386},
                                   "GPT-2": {"bits_per_second": 40.0, "bits_per_token": 2.5, "nats_per_token": 1.733}},
                        "windows": 10, "tokens": 5000.0, "seconds": 600.0, "relative": -0.25},
        "validity": {"valid": 100, "pieces": 100, "reasons": []},
        "length": {"rows": [{"target": 30.0, "seconds": 29.5, "finished": True, "within": True, "tokens": 700,
                             "wall_seconds": 3.2}], "tolerance": 0.1, "within": 1, "pieces": 1},
    }
    md = markdown_report(report)
    assert "| MuseNet | 30.00 | 2.000 | 1.386 |" in md and "MuseNet vs GPT-2: -25.0% bits per second." in md
    assert "Validity: 100 of 100" in md and "| 30 | 29.5 | yes | 700 | 3.2 |" in md and "1 of 1 pieces" in md


@pytest.mark.skipif(not SHARED_MIDI.is_dir(), reason="../shared/midi is not present")
def test_evaluate_command_end_to_end(tmp_path):
    """Two labelled folders of real files, the bundled tiny checkpoint, a GPT-2 baseline: every section runs."""
    from transformers import GPT2LMHeadModel

    from musenet_hf.baseline import gpt2_config_for
    from musenet_hf.configuration_musenet import MuseNetConfig

    data = tmp_path / "data"
    songs = sorted((SHARED_MIDI / "musicautobot").glob("*.mid"))[:16]
    for label, files in (("bach", songs[::2]), ("folk", songs[1::2])):
        (data / label).mkdir(parents=True)
        for f in files:
            shutil.copy(f, data / label / f.name)
    config = tmp_path / "eval.yaml"  # tiny.yaml's settings with a larger validation share
    config.write_text((REPO / "configs" / "train" / "tiny.yaml").read_text().replace(
        "validation_fraction: 0.1", "validation_fraction: 0.4") + f"\ndata_cache_dir: {tmp_path / 'cache'}\n")
    gpt2 = GPT2LMHeadModel(gpt2_config_for(MuseNetConfig.from_pretrained(TINY_CHECKPOINT)))
    gpt2.save_pretrained(tmp_path / "gpt2" / "final")
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "musenet_hf.cli", "evaluate", "--model", str(TINY_CHECKPOINT),
           "--config", str(config), "--data-dir", str(data),
           "--baseline", str(tmp_path / "gpt2" / "final"), "--min-pieces", "2", "--pieces-per-composer", "2",
           "--seconds", "4", "--critic-pieces", "4", "--steering-pieces", "2", "--lengths", "4", "--length-pieces", "1",
           "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    models = report["compression"]["models"]
    assert set(models) == {"MuseNet (this model)", "GPT-2 baseline (gpt2)"}
    # the trained tiny model compresses real music far better than an untrained GPT-2 (~log2(11677) bits a token)
    assert models["MuseNet (this model)"]["bits_per_token"] < models["GPT-2 baseline (gpt2)"]["bits_per_token"] - 3
    assert models["GPT-2 baseline (gpt2)"]["bits_per_token"] > 12
    critic = report["critic"]
    assert critic["real"] == critic["generated"] >= 2 and 0.0 <= critic["auc"] <= 1.0
    assert report["composer"]["composers"] == ["bach", "folk"] and report["composer"]["n_generated"] == 4
    assert report["validity"] == {"pieces": 4, "valid": 4, "reasons": []}
    assert report["steering"]["hard"]["share"] == 1.0
    assert report["length"]["pieces"] == 1
    assert "| steering | note-ons |" in (out / "report.md").read_text()
