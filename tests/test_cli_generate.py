"""``musenet generate`` end to end on a saved tiny random model: MIDI, WAV, PNG, errors."""

import json
import shutil
import wave
from pathlib import Path

import mido
import pytest

from musenet_hf import cli, cli_generate

REPO = Path(__file__).resolve().parents[1]
SHARED_MIDI = REPO.parent / "shared" / "midi" / "valid"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny, tok):
    """conftest.py's tiny random model and musenet tokenizer, saved as a checkpoint folder."""
    path = tmp_path_factory.mktemp("tiny-musenet")
    tiny.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def notes_by_program(path: Path) -> dict[int, int]:
    midi = mido.MidiFile(path)
    program = {}
    counts: dict[int, int] = {}
    for msg in mido.merge_tracks(midi.tracks):
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            key = -1 if msg.channel == 9 else program.get(msg.channel, 0)
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_generate_midi_and_pianoroll(model_dir, tmp_path, capsys):
    out, png = tmp_path / "out.mid", tmp_path / "out.png"
    rc = cli.main(["generate", "--model", str(model_dir), "--composer", "bach", "--instruments", "piano,violin",
                   "--seconds", "3", "--steering", "hard", "--seed", "0", "-o", str(out), "--pianoroll", str(png),
                   "--no-progress"])
    assert rc == 0
    counts = notes_by_program(out)
    assert sum(counts.values()) > 0 and set(counts) <= {0, 40, -1}  # piano, violin (drums unsteered)
    text = capsys.readouterr().out
    assert f"{out}: " in text and "critic" in text and f"{png}: piano roll" in text
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[1] >= 900 and (img[..., :3] < 0.9).any(axis=-1).mean() > 0.01


def test_samples_are_written_best_first(model_dir, tmp_path, capsys):
    out = tmp_path / "piece.mid"
    rc = cli.main(["generate", "--model", str(model_dir), "--composer", "bach+mozart", "--seconds", "2",
                   "--samples", "3", "--rerank", "--seed", "1", "--max-polyphony", "8", "-o", str(out), "--no-progress"])
    assert rc == 0
    for name in ("piece.mid", "piece-2.mid", "piece-3.mid"):
        assert mido.MidiFile(tmp_path / name).length > 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "critic" in line]
    scores = [float(line.split("critic ")[1].split()[0]) for line in lines]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_primer_and_wav(model_dir, tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    args = ["generate", "--model", str(model_dir), "--seconds", "3", "--seed", "0", "--max-polyphony", "8", "-o", str(tmp_path / "p.mid"),
            "--wav", str(tmp_path / "p.wav"), "--no-progress"]
    if SHARED_MIDI.exists():
        primer = next(p for p in sorted(SHARED_MIDI.rglob("*.mid")) if p.stat().st_size > 20000)
        args += ["--primer", str(primer), "--primer-seconds", "1"]
    assert cli.main(args) == 0
    with wave.open(str(tmp_path / "p.wav")) as w:
        assert w.getnframes() / w.getframerate() >= 2.7 and max(w.readframes(w.getnframes())) > 0


def test_missing_audio_tools_are_explained(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    rc = cli.main(["generate", "--model", str(model_dir), "--seconds", "1", "--max-polyphony", "4", "-o", str(tmp_path / "a.mid"),
                   "--wav", str(tmp_path / "a.wav"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and (tmp_path / "a.mid").is_file() and not (tmp_path / "a.wav").exists()
    assert "fluidsynth" in err and "apt-get install fluidsynth fluid-soundfont-gm" in err


def test_errors_name_the_problem(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_generate, "bundled_checkpoint", lambda: tmp_path / "no-such-checkpoint")
    assert cli.main(["generate", "-o", str(tmp_path / "x.mid")]) == 2
    assert "pass --model PATH" in capsys.readouterr().err
    assert cli.main(["generate", "--model", str(model_dir), "--composer", "nobody", "-o", str(tmp_path / "x.mid")]) == 2
    assert "unknown composer/style 'nobody'" in capsys.readouterr().err
    assert cli.main(["generate", "--model", str(model_dir), "--instruments", "kazoo", "-o", str(tmp_path / "x.mid")]) == 2
    assert "unknown instrument 'kazoo'" in capsys.readouterr().err
    assert not (tmp_path / "x.mid").exists()


def test_bundled_checkpoint_ships_and_loads():
    """Without --model the CLI finds musenet-small-music21 shipped in the repository: at most 60 MB,
    safetensors only, and it loads in float32 through the Auto classes and the pipeline in a fresh
    process (nothing imported here beforehand)."""
    import subprocess
    import sys

    import musenet_hf

    path = cli_generate.bundled_checkpoint()
    assert path == Path(musenet_hf.__file__).resolve().parents[2] / "checkpoints" / "musenet-small-music21"
    files = sorted(p.name for p in path.iterdir())
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    assert sum(p.stat().st_size for p in path.iterdir()) <= 60 * 2**20
    script = f"""
import json, torch, musenet_hf
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
path = {str(path)!r}
torch.set_num_threads(1)
model = AutoModelForCausalLM.from_pretrained(path)
tok = AutoTokenizer.from_pretrained(path)
music = pipeline("musenet-generation", model=path)
piece = music(composer="bach", instruments=["piano"], seconds=3, seed=0)[0]
print(json.dumps({{"cls": type(model).__name__, "dtype": str(model.dtype), "params": model.num_parameters(),
                  "tok": type(tok).__name__, "pipe_model": type(music.model).__name__, "finished": piece["finished"],
                  "seconds": piece["seconds"], "notes": len(music.tokenizer.decode_to_notes(piece["tokens"]))}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["cls"] == got["pipe_model"] == "MuseNetForCausalLM" and got["tok"] == "MuseNetTokenizer"
    assert got["dtype"] == "torch.float32" and got["params"] > 15_000_000  # the 8-layer, 384-wide network
    assert got["finished"] and abs(got["seconds"] - 3) <= 0.3 and got["notes"] > 0
