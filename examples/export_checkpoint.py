"""Turn a training run's ``final`` folder into a shippable checkpoint: half-precision safetensors
that load in float32, the tokenizer, the generation config, and the run's log beside them.

    python examples/export_checkpoint.py runs/small-cpu/final checkpoints/musenet-small-music21 --half

``SOURCE`` may also be a checkpoint of the training loop (``runs/x/checkpoints/step-0000200``,
model weights without a config): pass ``--config`` (the run's YAML, plus its ``--set`` options
as ``--set``) to rebuild the network it belongs to, MuseNet or the GPT-2 baseline.

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
from musenet_hf.loading import tokenizer_for_model
from musenet_hf.training.loop import COVERAGE_FILE, TOKENIZER_DIR


def load_training_checkpoint(path: Path, config: Path, overrides: dict) -> tuple[torch.nn.Module, object]:
    """The model of a training-loop checkpoint (accelerate's ``model.safetensors``) and its tokenizer."""
    from safetensors.torch import load_file

    from musenet_hf.training.training_config import TrainConfig, build_model, build_tokenizer

    cfg = TrainConfig.from_yaml(config, overrides)
    run_tokenizer = path.parent.parent / TOKENIZER_DIR  # runs/x/checkpoints/step-N -> runs/x/tokenizer
    if run_tokenizer.is_dir():  # the run's vocabulary: new labels of its data were appended to it
        from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

        tokenizer = MuseNetTokenizer.from_pretrained(run_tokenizer)
    else:
        tokenizer = build_tokenizer(cfg)
    model = build_model(cfg, tokenizer)
    missing, unexpected = model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    tied = {"lm_head.weight"}  # stored once, as the input embedding
    if set(missing) - tied or unexpected:
        raise ValueError(f"{path} does not fit {config}: missing {sorted(set(missing) - tied)}, unexpected {unexpected}")
    model.tie_weights()
    coverage = path.parent.parent / COVERAGE_FILE  # runs/x/checkpoints/step-N -> runs/x
    if coverage.is_file() and hasattr(model.config, "training_coverage"):
        model.config.training_coverage = json.loads(coverage.read_text("utf-8"))  # this run's, not init_from's
    return model, tokenizer


def export(source: Path, target: Path, half: bool, config: Path | None = None, overrides: dict | None = None) -> Path:
    """Write ``source``'s model and tokenizer to ``target``; returns the weights file."""
    if (source / "trainer_state.json").is_file():
        if config is None:
            raise SystemExit(f"{source} is a training checkpoint: pass --config (the run's YAML)")
        model, tokenizer = load_training_checkpoint(source, config, overrides or {})
    else:
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
    if log.is_file() and not (source / "trainer_state.json").is_file():
        shutil.copy(log, target / "training_log.jsonl")
    return target / "model.safetensors"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a folder written by save_pretrained (e.g. runs/small-cpu/final)")
    p.add_argument("target", type=Path, help="the checkpoint folder to write")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (they load as float32)")
    p.add_argument("--config", type=Path, help="with a training checkpoint: the run's YAML config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the run's --set options")
    args = p.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    weights = export(args.source, args.target, args.half, args.config, overrides)
    print(f"{weights}: {weights.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
