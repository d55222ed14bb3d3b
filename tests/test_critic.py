"""``musenet train-critic``: only the critic head learns, from a pool of the model's own samples."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from midi_fixtures import SHARED_MIDI, SOURCES

REPO = Path(__file__).resolve().parents[1]
TINY_CHECKPOINT = REPO / "checkpoints" / "musenet-tiny-music21"


@pytest.mark.parametrize("source", SOURCES)
def test_train_critic_moves_only_the_head_and_separates_the_pool(tmp_path, source, made_midi):
    from transformers import AutoModelForCausalLM

    import musenet_hf  # noqa: F401

    data = tmp_path / "data" / "bach"
    data.mkdir(parents=True)
    if source == "made":
        songs = made_midi.song_files[:16]
    else:
        songs = sorted((SHARED_MIDI / "valid" / "musicautobot").glob("*.mid"))[:16]
    for f in songs:
        shutil.copy(f, data / f.name)
    config = tmp_path / "critic.yaml"
    config.write_text((REPO / "configs" / "train" / "tiny.yaml").read_text().replace(
        "validation_fraction: 0.1", "validation_fraction: 0.4")
        + f"\ndata_dir: {tmp_path / 'data'}\ndata_cache_dir: {tmp_path / 'cache'}\n")
    out = tmp_path / "with-critic"
    cmd = [sys.executable, "-m", "musenet_hf.cli", "train-critic", "--model", str(TINY_CHECKPOINT), "--config",
           str(config), "--out", str(out), "--samples", "24", "--tokens", "48", "--epochs", "100",
           "--heldout-pieces", "4", "--threads", "1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out AUC" in done.stdout
    report = json.loads((out / "critic_report.json").read_text())
    assert report["samples"] == 24 and report["tokens"] == 48
    assert report["train_auc"] > max(report["train_auc_before"], 0.8)  # the head learned to separate its pool
    assert report["heldout"]["real"] == report["heldout"]["generated"] >= 2
    before = AutoModelForCausalLM.from_pretrained(TINY_CHECKPOINT).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("critic.") for k in changed)
