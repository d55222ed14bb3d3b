"""Shared by the demo tests: a saved tiny model, the app launched on 127.0.0.1, small MIDI fixtures."""

from __future__ import annotations

import socket
from pathlib import Path

import mido


def save_model(model, tokenizer, folder: Path) -> Path:
    """A model folder the app can load (weights, config, vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model_dir: Path, workdir: Path):
    """(demo, url): the app on a free local port, serving in a thread until ``demo.close()``."""
    from musenet_hf.demo.app import build_demo, launch_demo
    from musenet_hf.demo.demo_backend import Studio

    studio = Studio(model_dir, threads=1, workdir=workdir)
    demo = build_demo(studio)
    port = free_port()
    launch_demo(demo, "127.0.0.1", port, block=False)
    return demo, f"http://127.0.0.1:{port}/"


def write_primer(path: Path, program: int = 0, seconds: float = 4.0, chord: int = 1) -> Path:
    """A little MIDI file: a scale on one General MIDI program, ``chord`` notes every half second."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    for k in range(int(seconds * 2)):
        pitches = [48 + [0, 2, 4, 5, 7, 9, 11, 12][k % 8] + 4 * j for j in range(chord)]
        for p in pitches:
            track.append(mido.Message("note_on", note=p, velocity=80, channel=0, time=0))
        for j, p in enumerate(pitches):  # 120 bpm: 480 ticks = 0.5 s
            track.append(mido.Message("note_off", note=p, velocity=0, channel=0, time=480 if j == 0 else 0))
    mid.save(str(path))
    return path


def tiny_extended():
    """configs/musenet-tiny.json with the extended vocabulary (26 composer/style tokens, like the bundled
    model's): the map of its 153 tokens takes a few seconds, the musenet preset's 737 several times that."""
    import json

    import torch

    from musenet_hf.model.configuration_musenet import MuseNetConfig
    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    tok = MuseNetTokenizer.from_preset("extended")
    cfg = json.loads((Path(__file__).resolve().parents[1] / "configs" / "musenet-tiny.json").read_text())
    for key in ("model_type", "architectures"):
        cfg.pop(key, None)
    cfg.update(tok.vocabulary.model_config_kwargs())
    torch.manual_seed(0)
    return MuseNetForCausalLM(MuseNetConfig(**cfg)).eval(), tok
