"""A wheel install (``pip install .``, not editable) generates from another directory, offline.

The wheel is built from this checkout with setup.py's ``build_py`` (which copies the bundled
checkpoint into the package) and installed, without dependencies, into a new virtualenv that
borrows the test environment's packages through a ``.pth`` line. That ``.pth`` adds the
dependencies' folder to ``sys.path`` without running its own ``.pth`` files, so the editable
install of this checkout is not active there: the command must find everything in the wheel.
"""

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import mido
import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = "musenet_hf/bundled/musenet-small-music21/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (REPO / "checkpoints" / "musenet-small-music21" / "model.safetensors").is_file():
        pytest.skip("this checkout has no bundled checkpoint to pack")
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (whl,) = out.glob("musenet_hf-*.whl")
    return whl


def test_the_wheel_carries_the_bundled_model(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packed = sorted(n[len(BUNDLED):] for n in names if n.startswith(BUNDLED))
    assert packed == ["config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json",
                      "vocabulary.json"]
    assert "musenet_hf/resources/musenet_styles.json" in names
    assert "musenet_cli.py" in names  # the `musenet` command's entry point (issue 34: arguments before torch)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "musenet = musenet_cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    assert not [n for n in names if n.startswith(("tests/", "runs/", "corpus/"))]


def test_a_wheel_install_generates_offline_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                          text=True).strip())
    (target / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MUSENET_THREADS": "1"}
    where = subprocess.run([str(python), "-c", "from musenet_hf.loading import bundled_checkpoint as b; print(b())"],
                           cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()) == target / BUNDLED.rstrip("/")  # the wheel's copy, not this checkout
    done = subprocess.run([str(python), "-m", "musenet_hf.cli", "generate", "--composer", "bach", "--seconds", "3",
                           "--seed", "0", "-o", "x.mid"], cwd=work, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("x.mid: ")
    notes = [m for m in mido.MidiFile(work / "x.mid") if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 0
