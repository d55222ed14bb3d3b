"""Fixtures shared by several test files: one torch thread, the musenet tokenizer, a tiny random model,
and the MIDI files the tests make themselves (``made_midi``, session scoped; see midi_fixtures.py).

The others are module scoped, so every test file gets its own model (tests may change its generation config)
and its own tokenizer. A test file's own fixture of the same name wins (test_data.py's `tok` is the
extended preset). `one_thread` is not autouse: a file opts in with
``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""

import json
from pathlib import Path

import pytest
import torch

from musenet_hf.model.configuration_musenet import MuseNetConfig
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

from midi_fixtures import MadeMidi, write_made_midi  # tests/midi_fixtures.py

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_thread():
    """Small ops on two shared cores: a second thread only adds contention (10-20x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def made_midi(tmp_path_factory) -> MadeMidi:
    """Short pieces (labelled folder, 16 songs, an empty file) and damaged files, written once a session."""
    return write_made_midi(tmp_path_factory.mktemp("made-midi"))


@pytest.fixture(scope="module")
def tok() -> MuseNetTokenizer:
    return MuseNetTokenizer.from_preset("musenet")


@pytest.fixture(scope="module")
def vocab() -> MuseNetVocabulary:
    return MuseNetVocabulary.from_preset("musenet")


@pytest.fixture(scope="module")
def tiny(vocab) -> MuseNetForCausalLM:
    """configs/musenet-tiny.json with the musenet vocabulary's sizes and ids, random weights (seed 0), eval mode."""
    cfg = json.loads((REPO / "configs" / "musenet-tiny.json").read_text())
    for key in ("model_type", "architectures"):  # set by the config class itself
        cfg.pop(key, None)
    cfg.update(vocab.model_config_kwargs())
    torch.manual_seed(0)
    return MuseNetForCausalLM(MuseNetConfig(**cfg)).eval()


def interrupt_forward_at(monkeypatch, model, call: int) -> None:
    """Make ``model``'s ``call``-th forward raise ``KeyboardInterrupt`` (Ctrl-C inside generate())."""
    import functools

    calls = {"n": 0}
    forward = model.forward

    @functools.wraps(forward)
    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", interrupting)
