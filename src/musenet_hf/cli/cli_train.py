"""``musenet train`` and ``musenet train-critic`` from the command line.

``musenet train --config configs/train/<name>.yaml [--set key=value ...] [--stage N]`` reads the YAML
config (:class:`~musenet_hf.training.training_config.TrainConfig`) and runs
:func:`~musenet_hf.training.loop.train`, once per stage of a recipe with ``stages:``
(:mod:`~musenet_hf.training.recipe`): in order, skipping stages already finished, or only stage N.
``musenet train-critic`` is the critic phase on a finished model: the work is :func:`~musenet_hf.training.critic.train_critic_head` (the head alone, the network frozen) and
:func:`~musenet_hf.training.critic.critic_auc_heldout`; this file reads the arguments, loads the model and
the training config's data split, and writes the model with its trained head and a report. It
sits above :mod:`~musenet_hf.training.critic` and :mod:`~musenet_hf.generation.pipeline_musenet` (which imports the
critic for reranking), so neither needs the other's command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoModelForCausalLM

from ..loading import tokenizer_for_model
from ..training.critic import critic_auc_heldout, train_critic_head
from ..training.data import MuseNetWindows
from ..training.loop import train
from ..training.recipe import Stage, recipe_stages
from ..training.training_config import TrainConfig, load_data


# ---------------------------------------------------------------------- musenet train
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a YAML training config, e.g. configs/train/tiny.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config option (VALUE is read as YAML), e.g. --set max_steps=50")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--data-dir", help="override data_dir (a MIDI folder, e.g. from `musenet prepare-corpus`)")
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    parser.add_argument("--resume", default="auto",
                        help="'auto' (latest checkpoint in output_dir, default), 'never', or a checkpoint folder")
    parser.add_argument("--stop-after-step", type=int,
                        help="stop after this step as if interrupted (the schedule stays that of max_steps)")
    parser.add_argument("--stage", help="a recipe with stages: run only this one (its name or number, from 1); "
                        "its warm start, the stage before's output, must be there")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def chosen_stages(stages: list[Stage], stage: str | None) -> list[Stage]:
    """The stages ``--stage`` asks for (by name or number from 1): all of them when not given."""
    if stage is None:
        return stages
    chosen = [s for k, s in enumerate(stages, 1) if stage in (s.name, str(k))]
    if not chosen:
        raise SystemExit(f"--stage {stage}: the recipe's stages are "
                         + ", ".join(f"{k} ({s.name})" for k, s in enumerate(stages, 1)))
    return chosen


def announce_stage(stages: list[Stage], stage: Stage, skip_finished: bool) -> bool:
    """Print what stage ``stage`` of a recipe of several will do; return False when it is already
    finished and ``skip_finished``. Stops when its warm start is missing."""
    cfg, k = stage.config, stages.index(stage) + 1
    head = f"stage {k} of {len(stages)} ({stage.name})"
    if skip_finished and (Path(cfg.output_dir) / "final" / "config.json").is_file():
        print(f"{head}: done, {cfg.output_dir}/final")
        return False
    if k > 1 and cfg.init_from and not Path(cfg.init_from).is_dir():
        raise SystemExit(f"{head} starts from {cfg.init_from}, which is not there: run stage {k - 1} first")
    until = f", ending after step {stage.stop_after_step}" if stage.stop_after_step else ""
    print(f"{head}: {cfg.max_steps} steps{until} -> {cfg.output_dir}", flush=True)
    return True


def run_train(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    for key in ("output_dir", "data_dir", "max_steps"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    stages = recipe_stages(args.config, overrides)
    chosen = chosen_stages(stages, getattr(args, "stage", None))
    for stage in chosen:
        if len(stages) > 1 and not announce_stage(stages, stage, skip_finished=len(chosen) > 1):
            continue
        cfg = stage.config
        train(cfg, resume=args.resume, stop_after_step=args.stop_after_step, finish_at_step=stage.stop_after_step,
              progress=not args.no_progress)
        if args.stop_after_step is not None and not (Path(cfg.output_dir) / "final").is_dir():
            break  # stopped as if interrupted: the next stage has nothing to start from
    return 0



# ---------------------------------------------------------------------- musenet train-critic
def add_train_critic_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="a finished MuseNet checkpoint (e.g. runs/small-cpu/final)")
    p.add_argument("--config", required=True, help="the training config whose data and split to use")
    p.add_argument("--out", required=True, help="folder for the model with its trained critic head")
    p.add_argument("--samples", type=int, default=256, help="generated samples in the pool (default 256)")
    p.add_argument("--tokens", type=int, default=128, help="tokens per sample (default 128)")
    p.add_argument("--epochs", type=int, default=200, help="passes of the head over the pool (default 200)")
    p.add_argument("--heldout-pieces", type=int, default=64, help="validation pieces for the AUC (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true")


def run_train_critic(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig.from_yaml(args.config)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = tokenizer_for_model(model)
    enc = load_data(cfg, tokenizer)
    train_windows = MuseNetWindows(enc.dataset["train"], tokenizer, cfg.context_length, train=False)
    val_windows = MuseNetWindows(enc.dataset["validation"], tokenizer, cfg.context_length, train=False)
    report = train_critic_head(model, train_windows, samples=args.samples, tokens=args.tokens, epochs=args.epochs,
                               seed=args.seed, progress=not args.no_progress)
    report["heldout"] = critic_auc_heldout(model, val_windows, pieces=args.heldout_pieces, tokens=args.tokens,
                                           seed=args.seed + 1)
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "critic_report.json").write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(f"critic: training AUC {report['train_auc_before']:.3f} -> {report['train_auc']:.3f} on "
          f"{report['samples']} + {report['samples']} examples; held-out AUC {report['heldout']['auc']:.3f} "
          f"({report['heldout']['real']} real openings vs {report['heldout']['generated']} fresh generations)")
    print(f"wrote {out}")
    return 0



__all__ = ["add_train_arguments", "add_train_critic_arguments", "run_train", "run_train_critic"]
