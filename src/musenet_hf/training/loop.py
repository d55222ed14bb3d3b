"""The Accelerate loop behind ``musenet train``: read it top to bottom, like nanoGPT's ``train.py``.

:func:`train` sets up a run (:func:`prepare_run`: accelerator, data, model, optimizer, resume),
then repeats :func:`train_step` (gradient accumulation, mixup, the critic every ``critic_every``
steps), logs, evaluates (:func:`evaluate_run`) and checkpoints until ``max_steps``. Mixed precision,
activation checkpointing, warmup + cosine learning rate, and resume after a kill with nothing lost:
the data of each step is a function of the step (:class:`~musenet_hf.training.batching.TrainBatches`), the
random draws of mixup and the critic are seeded by the step, and the checkpoint holds the model,
optimizer, scheduler, random states and critic pool. The same code runs on one CPU, on GPUs, and
data-parallel: ``accelerate launch --multi_gpu --num_processes 2`` on a machine without GPUs gives
two CPU processes (gloo). (``accelerate launch --num_processes 2 --cpu`` starts only one process
unless MPI is installed: accelerate's CPU launcher needs it.)

Around it: :mod:`~musenet_hf.training.training_config` (the settings and builders),
:mod:`~musenet_hf.training.training_losses` (the losses), :mod:`~musenet_hf.training.critic` (the critic's pieces),
:mod:`~musenet_hf.training.trainer_musenet` (the ``transformers.Trainer`` integration) and
:mod:`~musenet_hf.cli.cli_train` (the command line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, gather_object, set_seed
from tqdm.auto import tqdm

from .augmentation import AugmentationConfig
from .batching import MuseNetCollator, TrainBatches, label_balanced_weights, label_draws
from .checkpointing import checkpoints, load_checkpoint, save_checkpoint
from .critic import CriticPool, critic_auc, critic_step
from .data import MuseNetWindows
from .training_config import (
    TrainConfig,
    build_model,
    build_tokenizer,
    load_data,
    lr_lambda,
    parameter_groups,
    resolve_mixed_precision,
    training_coverage,
)
from .training_losses import evaluate, mixup_loss, summarize_eval, unwrap_model


# ---------------------------------------------------------------------- setting up
def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """The run's ``Accelerator`` (its mixed precision from :func:`resolve_mixed_precision`) and
    torch's CPU threads."""
    mp = resolve_mixed_precision(cfg.mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mp) and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # an earlier run in this process (a Trainer, another train()) chose another precision;
        # accelerate keeps one per process unless told to start over
        AcceleratorState._reset_state()
    # cpu=True on a machine without an accelerator: under torchrun (`accelerate launch --multi_gpu
    # --num_processes N`, or `torchrun --nproc_per_node N`) the processes then form a CPU
    # (gloo) group instead of N independent runs.
    accelerator = Accelerator(mixed_precision=mp, cpu=not torch.accelerator.is_available(),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    world = accelerator.num_processes
    if world == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        print("note: `accelerate launch --cpu` starts a single process (several need MPI); for N CPU processes "
              "use `accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`", flush=True)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    elif world > 1 and accelerator.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # processes must not fight over cores
    return accelerator


COVERAGE_FILE = "training_coverage.json"  # in output_dir: what the run trains on (the model config's copy)
TOKENIZER_DIR = "tokenizer"  # in output_dir: the run's vocabulary (with the labels its data added)


@dataclasses.dataclass
class Run:
    """Everything the loop works on, built by :func:`prepare_run`."""

    cfg: TrainConfig
    accelerator: Accelerator
    tokenizer: Any
    train_windows: MuseNetWindows
    val_windows: MuseNetWindows
    collator: MuseNetCollator
    model: torch.nn.Module  # as prepared by accelerate (DDP-wrapped with several processes)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    pool: CriticPool  # the critic's negatives: the model's past generations
    train_weights: np.ndarray | None = None  # per-window sampling probabilities (label_temperature), or None

    @property
    def out(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def has_critic(self) -> bool:
        """Whether the run trains a critic: switched on and the model has a head."""
        return self.cfg.critic_every > 0 and getattr(unwrap_model(self.model), "critic", None) is not None

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``log.jsonl`` (main process only)."""
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def run_windows(cfg: TrainConfig, tokenizer: Any, accelerator: Accelerator
                ) -> tuple[MuseNetWindows, MuseNetWindows, np.ndarray | None, dict[str, Any]]:
    """Training windows (augmented, new offsets each epoch), validation windows (at most
    ``max_eval_windows``, spread over the pieces) of the run's data, the training windows'
    sampling probabilities (None unless ``label_temperature`` rebalances the labels), and what it
    trains on (:func:`~musenet_hf.training.training_config.training_coverage`, stored in the model's config,
    with the share of draws each label gets)."""
    with accelerator.main_process_first():  # one process encodes the folder, the others read its cache
        enc = load_data(cfg, tokenizer)
    if accelerator.is_main_process:
        print(enc.report(show_failed=5), flush=True)
    aug = AugmentationConfig.from_dict(cfg.augmentation)
    train_windows = MuseNetWindows(enc.dataset["train"], tokenizer, cfg.context_length, train=True,
                                   seed=cfg.seed, augmentation=aug, opening_share=cfg.opening_share,
                                   predict_restruck=cfg.predict_restruck)
    val_windows = MuseNetWindows(enc.dataset["validation"], tokenizer, cfg.context_length, train=False)
    if cfg.max_eval_windows is not None and len(val_windows) > cfg.max_eval_windows:
        keep = np.linspace(0, len(val_windows) - 1, cfg.max_eval_windows).astype(int)  # spread over the pieces
        val_windows.piece_of, val_windows.window_of = val_windows.piece_of[keep], val_windows.window_of[keep]
    labels = train_windows.window_labels()
    rebalanced = cfg.label_temperature != 1.0 or bool(cfg.label_boost)
    weights = label_balanced_weights(labels, cfg.label_temperature, cfg.label_boost) if rebalanced else None
    coverage = training_coverage(enc.dataset["train"], aug)
    coverage.update(label_temperature=cfg.label_temperature, label_boost=dict(cfg.label_boost),
                    label_draws={k: round(v, 4) for k, v in label_draws(labels, weights).items()})
    if accelerator.is_main_process:
        print("label shares of the training draws: " + ", ".join(f"{k or '(none)'} {100 * v:.1f}%"
                                                             for k, v in list(coverage["label_draws"].items())[:12]))
    return train_windows, val_windows, weights, coverage


def prepare_run(cfg: TrainConfig, resume: str = "auto") -> tuple[Run, int]:
    """Build the run and resume it when asked; returns it and the step to continue from.

    The order of the seeded steps matters for exact resume and for every process starting
    from the same weights: seed, data, model, then a per-process seed for dropout."""
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)  # the same initial weights in every process
    tokenizer = build_tokenizer(cfg)
    train_windows, val_windows, train_weights, coverage = run_windows(cfg, tokenizer, accelerator)
    model = build_model(cfg, tokenizer)
    if hasattr(model.config, "training_coverage"):
        model.config.training_coverage = coverage
    if accelerator.is_main_process:  # for exports of the loop's step checkpoints, which hold weights only
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.output_dir) / COVERAGE_FILE).write_text(json.dumps(coverage, indent=1) + "\n", "utf-8")
        tokenizer.save_pretrained(Path(cfg.output_dir) / TOKENIZER_DIR)
    set_seed(cfg.seed, device_specific=True)  # same weights everywhere, but each process its own dropout
    if cfg.activation_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.learning_rate, betas=tuple(cfg.adam_betas))
    # Not passed to prepare(): accelerate would step it once per process; we step it once per step.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    run = Run(cfg, accelerator, tokenizer, train_windows, val_windows, MuseNetCollator(tokenizer.vocabulary.pad_id),
              model, optimizer, scheduler, CriticPool(cfg.critic_pool_size), train_weights)
    found = checkpoints(run.out) if resume == "auto" else [] if resume == "never" else [Path(resume)]
    start_step = load_checkpoint(accelerator, found[-1], run.pool, run.out / "log.jsonl") if found else 0
    return run, start_step


# ---------------------------------------------------------------------- the loop
def evaluate_run(run: Run, step: int) -> dict[str, Any]:
    """Validation loss and bits per second over all processes (and the critic's AUC on fresh
    generations once it trains); logged and printed. Returns the record."""
    cfg, accelerator = run.cfg, run.accelerator
    stats = evaluate(run.model, run.val_windows, run.collator, batch_size=cfg.eval_batch_size,
                     rank=accelerator.process_index, world_size=accelerator.num_processes, device=accelerator.device)
    summed = accelerator.reduce(torch.tensor([stats["nll"], stats["tokens"], stats["seconds"]],
                                             dtype=torch.float64, device=accelerator.device), reduction="sum")
    ev = {"step": step, **summarize_eval(dict(zip(("nll", "tokens", "seconds"), summed.tolist())))}
    if run.has_critic and len(run.val_windows) and step > 0:
        ev["critic_auc"] = critic_auc(run.model, run.val_windows, run.collator, accelerator,
                                      samples=cfg.critic_eval_samples, tokens=cfg.critic_sample_tokens)
    run.log(ev)
    accelerator.print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items() if k != "step"))
    return ev


def train_step(run: Run, step: int, batches: Any, data_hash: Any) -> tuple[dict[str, Any], int]:
    """Step ``step`` -> ``step + 1``: ``gradient_accumulation_steps`` micro-batches from
    ``batches`` (their ids go into ``data_hash``), mixup when on, the critic's update on the last
    micro-batch every ``critic_every`` steps, then one optimizer and scheduler step.

    Returns the step's record (``step``, ``loss``, ``lr``, ``critic_loss``) and the tokens seen."""
    cfg, accelerator, model = run.cfg, run.accelerator, run.model
    rank, accum = accelerator.process_index, cfg.gradient_accumulation_steps
    critic_now = run.has_critic and (step + 1) % cfg.critic_every == 0
    lm_losses, critic_loss, tokens = [], None, 0
    for micro in range(accum):
        batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
        data_hash.update(batch["input_ids"].cpu().numpy().tobytes())
        tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
        last_micro = micro == accum - 1
        if critic_now and last_micro:
            rng = np.random.default_rng([cfg.seed, step, rank, 11])  # seeded by the step: resume redraws it
            critic_loss = critic_step(model, batch, run.pool, run.train_windows, run.collator, accelerator, rng,
                                      samples=cfg.critic_samples, tokens=cfg.critic_sample_tokens)
        sync = contextlib.nullcontext() if last_micro else accelerator.no_sync(model)  # all-reduce once per step
        with sync, accelerator.autocast():
            if cfg.mixup_alpha > 0 and batch["input_ids"].shape[0] > 1:
                rng = np.random.default_rng([cfg.seed, step, micro, rank, 5])
                loss, _ = mixup_loss(model, batch, float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)))
            else:
                loss = model(**batch).loss
            accelerator.backward(loss / accum)
        lm_losses.append(loss.detach())
    if cfg.max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    record: dict[str, Any] = {"step": step + 1,
                              "loss": accelerator.reduce(torch.stack(lm_losses).mean(), reduction="mean").item(),
                              "lr": run.scheduler.get_last_lr()[0]}
    if critic_loss is not None:
        record["critic_loss"] = accelerator.reduce(critic_loss, reduction="mean").item()
    return record, tokens


def train(cfg: TrainConfig, *, resume: str = "auto", stop_after_step: int | None = None,
          finish_at_step: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a model as ``cfg`` says; returns the last logged metrics.

    Args:
        cfg: the run's settings.
        resume: ``"auto"`` (the latest checkpoint in ``output_dir`` if any), ``"never"``, or a
            checkpoint folder.
        stop_after_step: stop after this step as if interrupted (no final save): the learning
            rate schedule stays that of ``max_steps``, so resuming later continues the same run.
        finish_at_step: end the run after this step as if its schedule ended there (evaluate,
            checkpoint and save ``final/``), the learning rate still that of ``max_steps``: a
            recipe's stage that passes an early step's weights on (:mod:`~musenet_hf.training.recipe`).
        progress: show a tqdm bar on the main process.
    """
    run, step = prepare_run(cfg, resume)
    accelerator = run.accelerator
    sampler = TrainBatches(len(run.train_windows), cfg.per_device_batch_size, cfg.gradient_accumulation_steps,
                           accelerator.process_index, accelerator.num_processes, cfg.seed, step, cfg.max_steps,
                           weights=run.train_weights)
    # Its own generator: starting the loader must not draw from the global RNG that the
    # checkpoint restored (dropout and the critic's sampling read it).
    loader = torch.utils.data.DataLoader(run.train_windows, batch_sampler=sampler, collate_fn=run.collator,
                                         num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    batches = iter(loader)
    end = cfg.max_steps if finish_at_step is None else min(finish_at_step, cfg.max_steps)
    bar = tqdm(total=end, initial=step, desc="training", disable=not (progress and accelerator.is_main_process))
    data_hash, last = hashlib.sha1(), {}
    if step == 0 and len(run.val_windows):
        last.update(evaluate_run(run, 0))  # the untrained model's loss: where the curve starts
    t0, tokens_seen = time.time(), 0
    run.model.train()
    while step < end:
        record, tokens = train_step(run, step, batches, data_hash)
        step, tokens_seen = step + 1, tokens_seen + tokens
        bar.update()
        if step % cfg.log_every == 0 or step == end:
            elapsed = time.time() - t0
            record.update(tokens_per_second=tokens_seen / max(elapsed, 1e-9), elapsed=elapsed)
            run.log(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
        if (step % cfg.eval_every == 0 or step == end) and len(run.val_windows):
            last.update(evaluate_run(run, step))
        last.update(record)
        if step % cfg.checkpoint_every == 0 or step == end:
            save_checkpoint(accelerator, run.out, step, accelerator.num_processes, run.pool, cfg.keep_checkpoints)
        if stop_after_step is not None and stop_after_step <= step < end:
            bar.close()
            return last
    bar.close()
    finish_run(run, step, data_hash)
    return last


def finish_run(run: Run, step: int, data_hash: Any) -> None:
    """Log every process's weight and data digests (equal weights: one model; different data: each
    its own share), save ``final/`` (model and tokenizer) and end the run."""
    accelerator = run.accelerator
    digests = gather_object([{"rank": accelerator.process_index, "weights": param_digest(run.model),
                              "data": data_hash.hexdigest()}])
    run.log({"step": step, "event": "final", "world_size": accelerator.num_processes, "replicas": digests})
    if accelerator.is_main_process:
        final = run.out / "final"
        accelerator.unwrap_model(run.model).save_pretrained(final)
        run.tokenizer.save_pretrained(final)
    accelerator.wait_for_everyone()
    accelerator.end_training()


# ---------------------------------------------------------------------- weights digest
def param_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, p in sorted(unwrap_model(model).state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


__all__ = [
    "COVERAGE_FILE", "TOKENIZER_DIR", "Run", "evaluate_run", "finish_run", "make_accelerator", "param_digest", "prepare_run", "run_windows", "train",
    "train_step",
]
