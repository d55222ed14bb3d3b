"""Turn a training run's ``final`` folder into a shippable checkpoint: half-precision safetensors
that load in float32, the tokenizer, the generation config, and the run's log beside them.

    python examples/export_checkpoint.py runs/small-cpu/final checkpoints/musenet-small-music21 --half

The weights are stored as float16 when ``--half`` is given (half the size: 19.5M parameters take
39 MB), while ``config.json`` keeps ``"dtype": "float32"``, so ``from_pretrained`` (whose default
``dtype="auto"`` reads the config) casts them back to float32: CPUs run float32 far faster than
float16. Nothing else in the folder changes meaning; it loads with ``AutoModelForCausalLM`` and
``pipeline("musenet-generation", model=path)`` after ``import musenet_hf``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

import musenet_hf  # noqa: F401  (registers the musenet model type)
from musenet_hf.pipeline_musenet import tokenizer_for_model


def export(source: Path, target: Path, half: bool) -> Path:
    """Write ``source``'s model and tokenizer to ``target``; returns the weights file."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tokenizer = tokenizer_for_model(model)
    target.mkdir(parents=True, exist_ok=True)
    if half:
        model = model.to(torch.float16)
    model.save_pretrained(target)
    config_file = target / "config.json"
    config = json.loads(config_file.read_text("utf-8"))
    config["dtype"] = "float32"  # what from_pretrained loads into; the file holds float16
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")
    tokenizer.save_pretrained(target)
    log = source.parent / "log.jsonl"
    if log.is_file():
        shutil.copy(log, target / "training_log.jsonl")
    return target / "model.safetensors"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a folder written by save_pretrained (e.g. runs/small-cpu/final)")
    p.add_argument("target", type=Path, help="the checkpoint folder to write")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (they load as float32)")
    args = p.parse_args()
    weights = export(args.source, args.target, args.half)
    print(f"{weights}: {weights.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
