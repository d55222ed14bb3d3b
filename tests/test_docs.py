"""The documents' commands run (on the tiny model) and the documents stay within their length; the
README's generated files are ignored. The README's Python snippets run in test_new_user.py."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mido
import pytest

import demo_app  # tests/demo_app.py

REPO = Path(__file__).resolve().parents[1]
TINY_CHECKPOINT = REPO / "checkpoints" / "musenet-tiny-music21"
RUNNABLE = ("generate", "list", "encode", "train")  # the rest need a corpus (prepare-corpus, evaluate, ...)


def code_blocks(path: Path) -> list[str]:
    return re.findall(r"```\w*\n(.*?)```", path.read_text(), re.S)


def shown_commands(path: Path) -> list[list[str]]:
    """Each ``musenet`` command of a document's code blocks and indented lines (continuations
    joined, `[optional parts]`, `$(...)` and comments left out), as an argument list after ``musenet``."""
    text = path.read_text()
    lines = [b for block in code_blocks(path) for b in block.replace("\\\n", " ").splitlines()]
    lines += [x.strip() for x in text.replace("\\\n", " ").splitlines() if x.startswith("    musenet ")]
    lines += [x for x in re.findall(r"`(musenet [^`]+)`", text) if len(shlex.split(x)) >= 5]  # whole commands
    commands = []
    for line in lines:
        if "musenet " not in line or line.lstrip().startswith("#"):
            continue
        line = line[line.index("musenet "):]
        line = re.sub(r"\$\(.*?\)|\[[^\]]*\]|#.*$|&\s*$", "", line)
        args = shlex.split(line)[1:]
        if not args or args[0] not in RUNNABLE or "--help" in args or args in commands:
            continue
        if args[0] == "train" and not args[args.index("--config") + 1].endswith("tiny.yaml"):
            continue  # a recipe for a corpus; the recipes in configs/ load in test_training.py
        commands.append(args)
    return commands


def runnable(args: list[str], tmp: Path, song: Path) -> list[str]:
    """The command on the tiny model, short and on one thread: PATH and FILE placeholders filled,
    seconds and steps cut, outputs into ``tmp``."""
    out, k = [], 0
    while k < len(args):
        a = args[k]
        value = args[k + 1] if k + 1 < len(args) else None
        if a in ("--model",):
            out += [a, str(TINY_CHECKPOINT)]; k += 2; continue
        if a in ("--seconds", "--primer-seconds"):
            out += [a, "2"]; k += 2; continue
        if a == "--max-steps":
            out += [a, "2"]; k += 2; continue
        if a in ("--data-dir",):
            out += [a, str(song.parent)]; k += 2; continue
        if a in ("--primer",):
            out += [a, str(song)]; k += 2; continue
        if a in ("-o", "--pianoroll", "--wav", "--output-dir"):
            out += [a, str(tmp / Path(value).name)]; k += 2; continue
        if a in ("FILE_OR_FOLDER", "...", "song.mid"):
            out += [str(song)] if a != "..." else []; k += 1; continue
        out.append(a); k += 1
    if out[0] in ("generate", "list") and "--model" not in out:
        out += ["--model", str(TINY_CHECKPOINT)]
    if out[0] == "generate":
        out += ["--threads", "1"] + ([] if "-o" in out else ["-o", str(tmp / "out.mid")])
    if out[0] == "train":
        out += ([] if "--max-steps" in out else ["--max-steps", "2"]) + ["--output-dir", str(tmp / "run"), "--no-progress", "--set", "num_proc=1", "--set", "torch_threads=1",
                "--set", "context_length=64", "--set", "per_device_batch_size=2", "--set", "validation_fraction=0.5",
                "--set", "eval_every=2", "--set", "warmup_steps=1", "--set", f"data_cache_dir={tmp / 'cache'}",
                "--set", "unknown_labels=add"]
    return out


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """The user's ``song.mid``: two labelled folders of made MIDI (a training run splits them)."""
    root = tmp_path_factory.mktemp("songs")
    for label, program in (("bach", 0), ("irish", 40)):
        (root / label).mkdir()
        for n in range(3):
            demo_app.write_primer(root / label / f"{label}{n}.mid", program=program, seconds=6 + n, chord=2)
    return root / "bach" / "bach0.mid"


@pytest.mark.parametrize("document", ["README.md", "MODEL_CARD.md"])
def test_the_commands_a_document_shows_run_on_the_tiny_model(document, song, tmp_path, monkeypatch, capsys):
    """Every `musenet generate/list/encode/train` command the document shows, run as shown except
    for the model (the tiny one), the length and the steps: each exits 0, and a generated piece is
    a MIDI file with notes."""
    from musenet_hf import cli

    commands = shown_commands(REPO / document)
    assert any(c[0] == "generate" for c in commands), commands
    if document == "README.md":
        assert {c[0] for c in commands} == set(RUNNABLE), commands
        assert any("--primer" in c for c in commands)
    song_dir = song.parent.parent
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for args in commands:
        argv = runnable(args, tmp_path, song)
        if argv[0] == "train":
            argv[argv.index("--data-dir") + 1] = str(song_dir)
            argv[argv.index("--config") + 1] = str(REPO / argv[argv.index("--config") + 1])
        assert cli.main(argv) == 0, (document, args, argv)
        if argv[0] == "generate":
            written = Path(argv[argv.index("-o") + 1])
            assert any(m.type == "note_on" and m.velocity for m in mido.MidiFile(written)), argv
        if argv[0] == "train":
            assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
            shutil.rmtree(tmp_path / "run")
    capsys.readouterr()


def test_the_model_card_stays_short():
    """Issue 33: a card a user can read, in Hugging Face's order; the history is docs/experiments.md."""
    card = (REPO / "MODEL_CARD.md").read_text()
    assert len(card.splitlines()) <= 300
    sections = re.findall(r"^## (.+)$", card, re.M)
    order = ["Model details", "Intended uses", "How to use", "Training data", "Training procedure",
             "Evaluation", "Limitations", "Citation"]
    assert [next(k for k, s in enumerate(sections) if s.startswith(o)) for o in order] == sorted(
        next(k for k, s in enumerate(sections) if s.startswith(o)) for o in order)
    assert (REPO / "docs" / "experiments.md").is_file()


def test_the_model_cards_python_runs(tmp_path):
    """The card's "How to use" snippet, on the tiny model and 4 s, in a fresh interpreter."""
    snippet = next(b for b in code_blocks(REPO / "MODEL_CARD.md") if "pipeline(" in b)
    snippet = snippet.replace("str(musenet_hf.bundled_checkpoint())", repr(str(TINY_CHECKPOINT)))
    snippet = re.sub(r"seconds=\d+", "seconds=4", snippet)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": __import__("os").environ["PATH"]})
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(m.type == "note_on" and m.velocity for m in mido.MidiFile(tmp_path / "bach.mid"))


def test_the_readmes_bundled_model_paragraph_stays_short():
    paragraph = next(p for p in (REPO / "README.md").read_text().split("\n\n") if p.startswith("**The bundled model.**"))
    assert len(paragraph.strip().splitlines()) <= 10


def test_readme_outputs_are_ignored_by_git():
    """Issue 12, item 8: the README's first command writes its .mid/.wav/.png at the repository root
    (irish.* since stage 4 of the bundled model; bach.* before)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = ["irish.mid", "irish.wav", "irish.png", "bach.mid", "bach.wav", "bach.png"]
    done = subprocess.run(["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == names


def test_design_facts_the_code_cites_are_in_the_repository():
    """Docstrings and configs cite `docs/<page>.md §N`: each page ships and has that section; no
    citation points outside the repository (a user's clone has no ../shared/DESIGN.md)."""
    cited = set()
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "configs").rglob("*.yaml")]:
        text = path.read_text()
        assert "DESIGN.md" not in text, f"{path} cites a design document outside the repository"
        cited |= {(m[0], m[1]) for m in re.findall(r"(docs/[\w-]+\.md) §(\d+)", text)}
    assert ("docs/musenet.md", "1") in cited
    for page, section in cited:
        assert re.search(rf"^## {section}\. ", (REPO / page).read_text(), re.M), f"{page} has no section {section}"
