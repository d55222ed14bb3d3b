"""``musenet generate`` end to end on a saved tiny random model: MIDI, WAV, PNG, errors."""

import json
import os
import shutil
import wave
from pathlib import Path

import mido
import pytest

from musenet_hf import cli

from musenet_hf.cli import cli_generate

from midi_fixtures import SOURCES, primer_piece

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("source", SOURCES)
def test_primer_and_wav(model_dir, tmp_path, source, made_midi):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    args = ["generate", "--model", str(model_dir), "--seconds", "3", "--seed", "0", "--max-polyphony", "8", "-o", str(tmp_path / "p.mid"),
            "--wav", str(tmp_path / "p.wav"), "--no-progress", "--primer", str(primer_piece(source, made_midi)),
            "--primer-seconds", "1"]
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
    package = Path(musenet_hf.__file__).resolve().parent
    # an editable install or a checkout reads checkpoints/; a wheel its own copy (tests/test_packaging.py)
    assert path in (package.parents[1] / "checkpoints" / "musenet-small-music21",
                    package / "bundled" / "musenet-small-music21")
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


# ------------------------------------------------------------------ issue 12
def open_notes(path: Path) -> int:
    """Notes struck and never ended in a MIDI file."""
    balance: dict[tuple[int, int], int] = {}
    for msg in mido.merge_tracks(mido.MidiFile(path).tracks):
        if msg.type in ("note_on", "note_off"):
            key = (msg.channel, msg.note)
            balance[key] = balance.get(key, 0) + (1 if msg.type == "note_on" and msg.velocity else -1)
    return sum(n for n in balance.values() if n > 0)


def test_silent_pieces_fail_and_say_what_to_try(model_dir, tmp_path, monkeypatch, capsys):
    """Issue 12, item 1: a piece with (almost) no notes on the requested instruments is written
    but reported, naming them and what to try, with exit status 3 (before: 'flute.mid: 15.1 s', 0)."""
    from musenet_hf.generation import pipeline_musenet
    from musenet_hf.generation.generate import LongFormOutput, split_prompt

    def one_piano_note(model, tokenizer, prompt_ids, seconds, num_samples=1, **kwargs):
        v = tokenizer.vocabulary
        prefix, _ = split_prompt(v, prompt_ids)
        body = [v.note_id("piano", 80, 60)] + v.wait_ids(int(seconds * 100)) + [v.note_id("piano", 0, 60), v.end_id]
        seqs = [prefix + body for _ in range(num_samples)]
        return LongFormOutput(seqs, len(prefix), [True] * num_samples, [seconds] * num_samples)

    monkeypatch.setattr(pipeline_musenet, "generate_long", one_piano_note)
    out = tmp_path / "flute.mid"
    rc = cli.main(["generate", "--model", str(model_dir), "--composer", "irish", "--instruments", "flute",
                   "--steering", "hard", "--seconds", "15", "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3 and out.is_file()
    assert "only 0 new notes on the requested instruments in 15.0 s (flute 0; it played piano 1 instead)" in err
    assert "try other instruments" in err and "musenet list" in err and "--min-note-rate 0" in err
    # a lower bar accepts it; with no instruments named the piece's own notes count
    assert cli.main(["generate", "--model", str(model_dir), "--instruments", "flute", "--seconds", "15",
                     "--min-note-rate", "0", "-o", str(out), "--no-progress"]) == 0
    assert cli.main(["generate", "--model", str(model_dir), "--seconds", "15", "-o", str(out), "--no-progress"]) == 3
    assert "only 1 new note in 15.0 s" in capsys.readouterr().err


def test_primer_seconds_are_the_new_music_and_reported(model_dir, tmp_path, capsys, tok):
    """Issue 12, item 2: `--primer` without a length keeps 5 s of it, `--seconds` is the new
    music, and the report says 'primer X s + new Y s'."""
    v = tok.vocabulary
    ids = [v.instrumentation_id(["piano"]), v.start_id]
    for k in range(40):  # 20 s
        ids += [v.note_id("piano", 80, 60 + k % 12)] + v.wait_ids(50) + [v.note_id("piano", 0, 60 + k % 12)]
    primer = tmp_path / "real.mid"
    tok.decode_to_midi(ids).save(str(primer))
    out = tmp_path / "cont.mid"
    rc = cli.main(["generate", "--model", str(model_dir), "--primer", str(primer), "--seconds", "3", "--seed", "0",
                   "--max-polyphony", "8", "-o", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    line = next(x for x in text.splitlines() if x.startswith(f"{out}: "))
    primer_s = float(line.split("primer ")[1].split(" s")[0])
    new_s = float(line.split("+ new ")[1].split(" s")[0])
    assert 4.5 <= primer_s <= 5.0 and 2.0 <= new_s <= 4.0
    assert mido.MidiFile(out).length < 10  # not the whole 20 s primer
    assert "--primer-seconds" in cli_generate.__doc__ and "counts the new music" in cli_generate.__doc__


def test_default_steering_is_soft_and_none_switches_it_off(model_dir, tmp_path, monkeypatch):
    """Issue 12, item 3: named instruments get soft steering unless `--steering none`."""
    from musenet_hf.generation import pipeline_musenet
    from musenet_hf.generation.logits_processors import DEFAULT_STEERING_STRENGTH

    seen = []
    real = pipeline_musenet.default_logits_processors

    def recording(*args, **kwargs):
        seen.append((kwargs.get("steering"), kwargs.get("strength")))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_musenet, "default_logits_processors", recording)
    base = ["generate", "--model", str(model_dir), "--seconds", "1", "--seed", "0", "--max-polyphony", "4",
            "--min-note-rate", "0", "-o", str(tmp_path / "s.mid"), "--no-progress"]
    assert cli.main(base + ["--instruments", "violin"]) == 0
    assert cli.main(base + ["--instruments", "violin", "--steering", "none"]) == 0
    assert cli.main(base) == 0
    assert seen == [("soft", DEFAULT_STEERING_STRENGTH), (None, DEFAULT_STEERING_STRENGTH),
                    (None, DEFAULT_STEERING_STRENGTH)]


def test_threads_option_and_default(model_dir, tmp_path, monkeypatch):
    """Issue 12, item 4: one torch thread unless --threads or $MUSENET_THREADS says otherwise."""
    import functools

    import torch

    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

    seen = []
    forward = MuseNetForCausalLM.forward

    @functools.wraps(forward)
    def recording(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(MuseNetForCausalLM, "forward", recording)
    monkeypatch.delenv("MUSENET_THREADS", raising=False)
    base = ["generate", "--model", str(model_dir), "--seconds", "1", "--seed", "0", "--max-polyphony", "4",
            "--min-note-rate", "0", "-o", str(tmp_path / "t.mid"), "--no-progress"]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cli.main(base) == 0 and set(seen) == {1}
        seen.clear()
        torch.set_num_threads(1)
        assert cli.main(base + ["--threads", "2"]) == 0 and set(seen) == {2}
        seen.clear()
        monkeypatch.setenv("MUSENET_THREADS", "2")
        assert cli.main(base) == 0 and set(seen) == {2}
        assert cli.main(base + ["--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


def test_ctrl_c_writes_the_music_so_far(model_dir, tmp_path, monkeypatch, capsys):
    """Issue 12, item 5: Ctrl-C mid-piece writes what was generated, every note ended, and
    exits 130 (before: a KeyboardInterrupt traceback and no file)."""
    import functools

    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

    calls = {"n": 0}
    forward = MuseNetForCausalLM.forward

    @functools.wraps(forward)
    def interrupting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(MuseNetForCausalLM, "forward", interrupting)
    out = tmp_path / "long.mid"
    try:
        rc = cli.main(["generate", "--model", str(model_dir), "--seconds", "300", "--seed", "0", "-o", str(out),
                       "--pianoroll", str(tmp_path / "long.png"), "--no-progress"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped `musenet generate` as a traceback")
    captured = capsys.readouterr()
    assert rc == 130 and out.is_file()
    assert f"{out}: " in captured.out and "(interrupted)" in captured.out
    assert "interrupted (Ctrl-C)" in captured.err and "every sounding note ended" in captured.err
    assert sum(notes_by_program(out).values()) > 0 and open_notes(out) == 0
    assert mido.MidiFile(out).length < 300


def test_long_and_impossible_lengths_are_refused(model_dir, tmp_path, monkeypatch, capsys):
    """Issue 12, items 5 and 7: --seconds above 600 needs --allow-long (and says how long it
    would take); NaN, inf and negative numbers are errors, before anything is generated."""
    from musenet_hf.generation import pipeline_musenet

    def must_not_run(*args, **kwargs):
        raise AssertionError("generation started")

    monkeypatch.setattr(pipeline_musenet, "generate_long", must_not_run)
    base = ["generate", "--model", str(model_dir), "-o", str(tmp_path / "x.mid"), "--no-progress"]
    assert cli.main(base + ["--seconds", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--allow-long" in err and "hours" in err
    for flag, value, says in (("--seconds", "nan", "--seconds must be"), ("--seconds", "inf", "--seconds must be"),
                              ("--seconds", "-3", "--seconds must be"), ("--temperature", "nan", "--temperature"),
                              ("--primer-seconds", "nan", "--primer-seconds"), ("--strength", "inf", "--strength")):
        assert cli.main(base + [flag, value]) == 2, (flag, value)
        assert says in capsys.readouterr().err
    assert not (tmp_path / "x.mid").exists()


def test_names_in_any_case_greedy_and_list(model_dir, tmp_path, capsys):
    """Issue 12, item 7: instrument and composer names in any case; --temperature 0 is greedy
    decoding (said so, samples alike); `musenet list` shows the names and, for a model with
    training coverage, the labels it trained on, which the unknown-composer error lists first."""
    out = tmp_path / "g.mid"
    rc = cli.main(["generate", "--model", str(model_dir), "--composer", "BACH", "--instruments", "Piano,Violin",
                   "--seconds", "2", "--temperature", "0", "--samples", "2", "--max-polyphony", "6",
                   "--min-note-rate", "0", "-o", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "greedy decoding" in text
    assert notes_by_program(out) == notes_by_program(tmp_path / "g-2.mid")
    # a model that records what it trained on
    covered = tmp_path / "covered"
    shutil.copytree(model_dir, covered)
    config = json.loads((covered / "config.json").read_text())
    config["training_coverage"] = {"labels": {"irish": {"piano": 300}, "bach": {"piano": 40}}, "revoiced": []}
    (covered / "config.json").write_text(json.dumps(config))
    assert cli.main(["list", "--model", str(covered)]) == 0
    listed = capsys.readouterr().out
    assert "composers/styles it trained on (2, pieces each" in listed and "irish 300, bach 40" in listed
    for part in ("composers/styles it never trained on (", "tchaikovsky", "instruments (", "violin [strings]",
                 "strings = violin+cello"):
        assert part in listed
    assert cli.main(["list", "--model", str(model_dir)]) == 0
    assert "trained on: not recorded" in capsys.readouterr().out
    assert cli.main(["generate", "--model", str(covered), "--composer", "iris", "-o", str(tmp_path / "n.mid")]) == 2
    err = capsys.readouterr().err
    assert "unknown composer/style 'iris' (did you mean irish" in err and "this model trained on: irish (300), bach (40)" in err
    assert cli.main(["list", "--model", str(tmp_path / "nowhere")]) == 2


def test_lora_adapter_loads_offline_from_anywhere(model_dir, tmp_path, monkeypatch, capsys):
    """Issue 12, item 6: `--model ADAPTER` loads a LoRA adapter on its recorded base model from
    any working directory; a base that is not there is a clear error at once, never a download
    (before: five Hub retries, then an OSError traceback); importing musenet_hf goes offline."""
    import subprocess
    import sys
    import time

    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"]))
    adapter = tmp_path / "lora" / "adapter"
    lora.save_pretrained(str(adapter))
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    assert config["base_model_name_or_path"] == str(model_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "lora.mid"
    args = ["generate", "--model", str(adapter), "--seconds", "1", "--seed", "0", "--max-polyphony", "4",
            "--min-note-rate", "0", "-o", str(out), "--no-progress"]
    assert cli.main(args) == 0 and out.is_file()
    config["base_model_name_or_path"] = "runs/tiny/final"  # relative, and not there from here
    config_path.write_text(json.dumps(config))
    started = time.time()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert time.time() - started < 10
    assert "the base model of the LoRA adapter" in err and "'runs/tiny/final'" in err and "nothing is downloaded" in err
    assert "Traceback" not in err
    code = "import os, musenet_hf, huggingface_hub.constants as c; print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE)"
    env = {k: val for k, val in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["1", "True"], done.stderr[-1000:]


def test_finetune_lora_example_records_an_absolute_base(tmp_path, tok):
    """Issue 12, item 6: examples/finetune_lora.py, given a relative --checkpoint, writes an
    adapter whose base path is absolute, so `musenet generate --model ADAPTER` works from any
    directory."""
    import subprocess
    import sys

    pytest.importorskip("peft")
    checkpoint = Path("checkpoints") / "musenet-tiny-music21"
    if not (REPO / checkpoint).is_dir():
        pytest.skip("checkpoints/musenet-tiny-music21 not in this checkout")
    data = tmp_path / "data" / "bach"
    data.mkdir(parents=True)
    v = tok.vocabulary
    for n in range(4):
        ids = [v.instrumentation_id(["piano"]), v.start_id]
        for k in range(30):
            pitch = 60 + (k * (n + 1)) % 12
            ids += [v.note_id("piano", 80, pitch)] + v.wait_ids(25) + [v.note_id("piano", 0, pitch)]
        tok.decode_to_midi(ids).save(str(data / f"p{n}.mid"))
    out = tmp_path / "lora"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "finetune_lora.py"), "--checkpoint", str(checkpoint),
                           "--data", str(tmp_path / "data"), "--output", str(out), "--max-steps", "1",
                           "--context-length", "64", "--num-proc", "1", "--threads", "1", "--validation-fraction", "0.3"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    recorded = json.loads((out / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str((REPO / checkpoint).resolve())
    # issue 34, item 7: the adapter says what it was fine-tuned on, and loading it takes that
    from musenet_hf.loading import load_model

    coverage = json.loads((out / "adapter" / "training_coverage.json").read_text())
    assert set(coverage["labels"]) == {"bach"} and coverage["fine_tuned_from"] == recorded
    assert load_model(out / "adapter").config.training_coverage == coverage
    done = subprocess.run([sys.executable, "-m", "musenet_hf.cli", "generate", "--model", str(out / "adapter"),
                           "--seconds", "1", "--seed", "0", "--min-note-rate", "0", "-o", str(tmp_path / "x.mid"),
                           "--no-progress"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "x.mid").is_file()


def test_list_piped_into_a_reader_that_stops_early_ends_quietly():
    """`musenet list | head -1`: one line out, no BrokenPipeError traceback."""
    import subprocess
    import sys

    done = subprocess.run(f"'{sys.executable}' -m musenet_hf.cli list | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
