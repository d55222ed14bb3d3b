"""``musenet evaluate``: features, validity, adherence, the report, and one end-to-end run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musenet_hf.evaluation.measurements import (
    DURATION_EDGES, cut_notes, is_valid_piece, markdown_report, music_statistics, note_on_instruments, piece_features,
    probe_table,
)
from musenet_hf.midi.midi_io import Note
from musenet_hf.evaluation.musical_statistics import piece_statistics
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

from midi_fixtures import SHARED_MIDI, SOURCES

REPO = Path(__file__).resolve().parents[1]
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


class FakePipe:
    """Stands in for the musenet-generation pipeline: the same piece every call, and what it was asked."""

    def __init__(self, tokenizer, ids):
        self.tokenizer, self.ids, self.calls = tokenizer, ids, []

    def __call__(self, num_samples, seed, **prompt):
        self.calls.append({"num_samples": num_samples, "seed": seed, **prompt})
        return [{"tokens": list(self.ids)} for _ in range(num_samples)]


def test_music_statistics_generated_against_real():
    tok = MuseNetTokenizer.from_preset("musenet")
    # on the 10 ms grid, so the decoded piece is the notes themselves: 0.5 s notes, then a 5 s chord
    piece = [note(p, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate((60, 62, 64, 65))]
    piece += [note(p, 2.0, 7.0) for p in (60, 64, 67)]
    ids = tok.prefix_ids("bach", ["piano"]) + tok.encode_notes(piece)[0] + [tok.vocabulary.end_id]
    other = [note(40 + 7 * i % 30, 0.1 * i, 0.1 * i + 0.05) for i in range(60)]  # fast, short, wide
    held = [("bach", piece), ("bach", piece), ("folk", other), ("folk", []), ("jazz", piece)]
    pipe = FakePipe(tok, ids)
    res = music_statistics(pipe, held, {"bach": "piano", "folk": "piano_strings"}, pieces_per_label=3, seconds=20.0,
                           seed=5, generated={"folk": [ids]})
    assert res["seconds"] == 20.0 and list(res["labels"]) == ["bach", "folk"]
    # bach is generated (3 pieces, the composer section's seeds), folk reuses the ids it was given
    assert pipe.calls == [{"num_samples": 3, "seed": 5, "composer": "bach", "instruments": "piano", "seconds": 20.0,
                           "steering": "none"}]  # what the model plays, not what steering forces
    bach, folk = res["labels"]["bach"], res["labels"]["folk"]
    assert bach["generated"]["pieces"] == 3 and bach["real"]["pieces"] == 2 and folk["real"]["pieces"] == 1
    assert bach["match"] == pytest.approx(1.0)  # the same piece on both sides
    for key in ("note_length_median", "note_length_p90", "polyphony_mean", "silent_share", "pitch_class_entropy"):
        assert bach["generated"][key] == pytest.approx(bach["real"][key]) == pytest.approx(piece_statistics(piece)[key])
    assert bach["generated"]["long_note_share"] == pytest.approx(3 / 7)
    assert folk["match"] < 0.3 and folk["overlaps"]["note_length"] == 0.0
    # a real opening is clipped to the generated length: the 5 s chord ends at 3 s
    short = music_statistics(pipe, held, {"bach": "piano"}, seconds=3.0, generated={"bach": [ids]})
    assert short["labels"]["bach"]["real"]["note_length_p90"] == pytest.approx(1.0)
    assert short["labels"]["bach"]["real"]["long_note_share"] == 0.0


def test_probe_table_on_the_tiny_checkpoint():
    import torch

    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = MuseNetForCausalLM.from_pretrained(TINY_CHECKPOINT).eval()
        tok = MuseNetTokenizer.from_pretrained(TINY_CHECKPOINT)
        rows = probe_table(model, tok, [("bach", "piano,violin"), (None, "piano_strings"), ("folk", None)],
                           new_tokens=12, seed=3)
    finally:
        torch.set_num_threads(threads)
    assert [(r["composer"], r["instruments"]) for r in rows] == [("bach", "piano,violin"), (None, "piano_strings"),
                                                                 ("folk", None)]
    for r in rows:
        assert 0 < r["tokens"] <= 12 and r["seed"] == 3
        assert r["note_ons"] + r["note_offs"] + r["waits"] + r["others"] == r["tokens"]
    md = markdown_report({"probe": {"new_tokens": 12, "seed": 3, "rows": rows}})
    assert "| prompt | tokens | note-ons |" in md and "| bach piano,violin | " in md and "| piano_strings | " in md


def test_markdown_report_music_and_probe_tables():
    gen = {"pieces": 3, "note_length_median": 0.5, "note_length_p90": 5.0, "long_note_share": 0.375,
           "polyphony_mean": 2.0588, "polyphony_p95": 3.0, "notes_per_second": 1.06, "pitch_range": 12.0,
           "pitch_class_entropy": 2.1556, "scale_consistency": 1.0, "silent_share": 0.1176}
    real = {**gen, "pieces": 2, "note_length_p90": 1.25, "long_note_share": 0.0, "pitch_range": float("nan")}
    report = {
        "music": {"seconds": 20.0, "labels": {"bach": {"generated": gen, "real": real, "match": 0.8123}}},
        "probe": {"new_tokens": 300, "seed": 0, "rows": [
            {"composer": "bach", "instruments": "piano", "tokens": 300, "note_ons": 100, "note_offs": 90,
             "off_on_ratio": 0.9, "orphan_offs": 0, "waits": 80, "left_sounding": 10, "struck": {"piano": 100},
             "passes": True},
            {"composer": None, "instruments": None, "tokens": 5, "note_ons": 0, "note_offs": 2,
             "off_on_ratio": float("nan"), "orphan_offs": 2, "waits": 3, "left_sounding": 0, "struck": {},
             "passes": False}]},
    }
    md = markdown_report(report)
    assert "Musical statistics, generated against held-out real pieces (first 20 s" in md
    assert "| label | pieces | length median (s) | length p90 (s) | > 4 s | polyphony mean |" in md
    assert "| bach generated | 3 | 0.50 | 5.00 | 37.5% | 2.06 | 3.0 | 1.1 | 12.0 | 2.16 | 1.00 | 11.8% | 0.81 |" in md
    assert "| bach real | 2 | 0.50 | 1.25 | 0.0% | 2.06 | 3.0 | 1.1 | n/a | 2.16 | 1.00 | 11.8% |  |" in md
    assert "Note-closure probe: up to 300 tokens" in md and "within 15% of pitched note-ons" in md
    assert "| bach piano | 300 | 100 | 90 | 0.90 | 0 | 80 | 10 | piano 100 | yes |" in md
    assert "| (none) | 5 | 0 | 2 | n/a | 2 | 3 | 0 |  | no |" in md
    assert markdown_report({"music": None, "probe": None}) == ""


@pytest.mark.parametrize("source", SOURCES)
def test_evaluate_command_end_to_end(tmp_path, source, made_midi):
    """Two labelled folders of 8 songs (made here, or real shared files), the bundled tiny
    checkpoint, a GPT-2 baseline: every section runs."""
    from transformers import GPT2LMHeadModel

    from musenet_hf.model.baseline import gpt2_config_for
    from musenet_hf.model.configuration_musenet import MuseNetConfig

    data = tmp_path / "data"
    if source == "made":
        songs = made_midi.song_files[:16]
    else:
        songs = sorted((SHARED_MIDI / "valid" / "musicautobot").glob("*.mid"))[:16]
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
           "--seconds", "4", "--critic-pieces", "4", "--steering-pieces", "2", "--steering-strengths", "1",
           "--lengths", "4", "--length-pieces", "1", "--probe", "bach:piano", ":piano_strings", "--probe-tokens", "16", "--threads", "1", "--out", str(out),
           "--guidance", "2", "--top-p", "0.9"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    models = report["compression"]["models"]
    assert set(models) == {"MuseNet (this model)", "GPT-2 baseline (gpt2)"}
    # the trained tiny model compresses real music far better than an untrained GPT-2 (~log2(11677) bits a token)
    assert models["MuseNet (this model)"]["bits_per_token"] < models["GPT-2 baseline (gpt2)"]["bits_per_token"] - 3
    assert models["GPT-2 baseline (gpt2)"]["bits_per_token"] > 12
    assert report["sampling"] == {"guidance": 2.0, "top_p": 0.9}  # every generated piece's options, recorded
    critic = report["critic"]
    assert critic["real"] == critic["generated"] >= 2 and 0.0 <= critic["auc"] <= 1.0
    assert report["composer"]["composers"] == ["bach", "folk"] and report["composer"]["n_generated"] == 4
    assert report["validity"] == {"pieces": 4, "valid": 4, "reasons": []}
    assert report["steering"]["hard"]["share"] == 1.0
    assert list(report["steering"]["soft_at"]) == ["1.0"] and report["steering"]["soft_at"]["1.0"]["note_ons"] > 0
    assert report["length"]["pieces"] == 1
    music = report["music"]["labels"]
    assert list(music) == ["bach", "folk"] and music["bach"]["generated"]["pieces"] == 2  # the composer section's
    assert all(0.0 <= r["match"] <= 1.0 for r in music.values())
    probe = report["probe"]["rows"]
    assert [(r["composer"], r["instruments"]) for r in probe] == [("bach", "piano"), (None, "piano_strings")]
    assert all(r["note_ons"] + r["note_offs"] + r["waits"] + r["others"] == r["tokens"] <= 16 for r in probe)
    md = (out / "report.md").read_text()
    assert "| steering | note-ons |" in md and "| soft (strength 1) |" in md and "| bach generated | 2 |" in md and "| bach piano | " in md
