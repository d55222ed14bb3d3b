"""``musenet derive-sampling``: a model's per-label sampling presets, derived by measurement.

Reads the recipe (``configs/sampling/derive.yaml``: the checks and the candidate settings), the
validation pieces of the model's training data (``--data-config``, the training recipe that made it;
the evaluation split is never read), generates and measures (:mod:`musenet_hf.evaluation.derive_sampling`),
prints one line per label and writes ``derive_sampling.json`` (every measurement) into ``--out``.
With ``--write`` the derived settings replace the model folder's ``generation_config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_derive_sampling_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the model folder whose settings are derived")
    p.add_argument("--recipe", default="configs/sampling/derive.yaml", help="the checks and candidate settings")
    p.add_argument("--data-config", required=True,
                   help="the training recipe whose data and validation split to measure against")
    p.add_argument("--out", help="folder for derive_sampling.json (default: the model folder)")
    p.add_argument("--write", action="store_true", help="write the result as the model's generation_config.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the same result every run)")


def check_derive_sampling(args: argparse.Namespace) -> str | None:
    for flag, path in (("--model", args.model), ("--recipe", args.recipe), ("--data-config", args.data_config)):
        if not Path(path).exists():
            return f"{flag} {path} not found"
    return None


def run_derive_sampling(args: argparse.Namespace) -> int:
    import torch
    from transformers import pipeline

    from ..evaluation.derive_sampling import DerivationRecipe, derive, real_statistics
    from ..generation.pipeline_musenet import TASK, register_pipeline
    from ..loading import load_model, tokenizer_for_model
    from ..training.training_config import TrainConfig, load_data

    torch.set_num_threads(args.threads)
    try:
        recipe = DerivationRecipe.from_yaml(args.recipe)
    except (ValueError, TypeError) as err:
        print(f"musenet derive-sampling: error: {args.recipe}: {err}", file=sys.stderr)
        return 2
    register_pipeline()
    model = load_model(args.model)
    tokenizer = tokenizer_for_model(model)
    validation = load_data(TrainConfig.from_yaml(args.data_config), tokenizer).dataset["validation"]
    rows = validation.select_columns(["composer", "body"]).to_dict()
    known = set(tokenizer.vocabulary.composers)
    pieces = [(c, tokenizer.decode_to_notes(b)) for c, b in zip(rows["composer"], rows["body"]) if c in known]
    real = real_statistics(pieces, recipe.seconds, tokenizer.vocabulary, recipe.min_pieces)
    pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device("cpu"))
    derived, report = derive(pipe, real, recipe)
    for label, entry in report["labels"].items():
        chosen = entry["chosen"]
        print(f"{label}: " + ("no preset needed" if chosen == {} else f"preset {chosen}" if chosen
                              else "fails with every candidate (defaults kept)"))
    out = Path(args.out or args.model)
    out.mkdir(parents=True, exist_ok=True)
    (out / "derive_sampling.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    if args.write:
        derived.save_pretrained(args.model)
        print(f"wrote {Path(args.model) / 'generation_config.json'} ({len(report['presets'])} presets)")
    return 0


__all__ = ["add_derive_sampling_arguments", "check_derive_sampling", "run_derive_sampling"]
