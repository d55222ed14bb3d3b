"""Training: the config, model builders and the Accelerate loop behind ``musenet train``.

The losses are :mod:`~musenet_hf.training_losses`, the critic's pieces :mod:`~musenet_hf.critic`,
the ``transformers.Trainer`` integration :mod:`~musenet_hf.trainer_musenet`.

* :func:`train` / ``musenet train --config configs/train/<name>.yaml``: the Accelerate loop with
  mixed precision, gradient accumulation, activation checkpointing, warmup + cosine learning
  rate, checkpoints every N steps, and resume after a kill with nothing lost: the data of each
  step is a function of the step (:class:`~musenet_hf.data.TrainBatches`), and the checkpoint
  holds the model, optimizer, scheduler, random states and critic pool. The same code runs on
  one CPU, on GPUs, and data-parallel: ``accelerate launch --multi_gpu --num_processes 2`` on a
  machine without GPUs gives two CPU processes (gloo). (``accelerate launch --num_processes 2
  --cpu`` starts only one process unless MPI is installed: accelerate's CPU launcher needs it.)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object

from .augmentation import AugmentationConfig
from .critic import CriticPool, critic_auc, critic_step
from .data import MuseNetCollator, MuseNetWindows, TrainBatches, load_midi_folder
from .training_losses import evaluate, mixup_loss, summarize_eval, unwrap_model

STRUCTURE_KEYS = ("time_ids", "chord_ids", "part_ids", "countdown_ids")


# ---------------------------------------------------------------------- configuration
@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; the YAML file's sections (``data:``, ``model:``, ...) are
    flattened into these fields, so every key is unique. Relative paths are resolved against the
    working directory, then against the YAML file's folder and the folders above it."""

    output_dir: str = "runs/tiny"
    seed: int = 0
    # data
    data_dir: str = "../shared/midi/valid"
    labels: Any = "auto"
    unknown_labels: str = "ignore"
    validation_fraction: float = 0.1
    num_proc: int = 1
    context_length: int = 256
    num_workers: int = 0
    max_eval_windows: int | None = 64
    data_cache_dir: str | None = None  # default: <output_dir>/data-cache
    augmentation: Any = None
    # tokenizer and model
    tokenizer_preset: str = "extended"
    tokenizer_path: str | None = None
    model_config: str | None = "configs/musenet-tiny.json"
    model_overrides: dict = dataclasses.field(default_factory=dict)
    init_from: str | None = None
    architecture: str = "musenet"  # or "gpt2": the plain GPT-2 baseline of the same size (baseline.py)
    # optimization
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 200
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    adam_betas: tuple = (0.9, 0.95)
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"
    activation_checkpointing: bool = False
    torch_threads: int | None = None
    # events
    log_every: int = 10
    eval_every: int = 50
    eval_batch_size: int = 8
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    # mixup
    mixup_alpha: float = 0.0
    # critic
    critic_every: int = 0
    critic_samples: int = 4
    critic_sample_tokens: int = 64
    critic_pool_size: int = 64
    critic_eval_samples: int = 8

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        import yaml

        raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        flat: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("data", "model", "optim", "events", "mixup", "critic") and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        flat.update(overrides or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"{path}: unknown training options {unknown}")
        cfg = cls(**flat)
        # configs/train/x.yaml names configs/musenet-tiny.json: found from the repository root too
        bases = Path(path).resolve().parents
        for name in ("data_dir", "model_config", "tokenizer_path", "init_from"):
            value = getattr(cfg, name)
            if value and not Path(value).exists():
                found = next((b / value for b in bases if (b / value).exists()), None)
                if found is not None:
                    setattr(cfg, name, str(found))
        return cfg


def load_data(cfg: TrainConfig, tokenizer) -> Any:
    """The run's encoded folder (:func:`~musenet_hf.data.load_midi_folder` with the config's data
    options and cache): what training, ``musenet evaluate`` and ``musenet train-critic`` all read,
    so they see the same train/validation split."""
    return load_midi_folder(cfg.data_dir, tokenizer, labels=cfg.labels, unknown_labels=cfg.unknown_labels,
                            validation_fraction=cfg.validation_fraction, num_proc=cfg.num_proc,
                            cache_dir=cfg.data_cache_dir or Path(cfg.output_dir) / "data-cache")


def lr_lambda(cfg: TrainConfig):
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def build_tokenizer(cfg: TrainConfig):
    from .tokenization_musenet import MuseNetTokenizer

    if cfg.tokenizer_path:
        return MuseNetTokenizer.from_pretrained(cfg.tokenizer_path)
    return MuseNetTokenizer.from_preset(cfg.tokenizer_preset)


def build_model(cfg: TrainConfig, tokenizer) -> torch.nn.Module:
    """From ``init_from`` (a checkpoint) or a config JSON plus the tokenizer's vocabulary facts.

    ``architecture: gpt2`` builds the plain GPT-2 baseline of the same size instead
    (:class:`~musenet_hf.baseline.GPT2Baseline`), for side-by-side runs on the same windows."""
    from .configuration_musenet import MuseNetConfig
    from .modeling_musenet import MuseNetForCausalLM

    if cfg.architecture not in ("musenet", "gpt2"):
        raise ValueError(f"architecture must be 'musenet' or 'gpt2', got {cfg.architecture!r}")
    vocab = tokenizer.vocabulary
    if cfg.init_from:
        if cfg.architecture == "gpt2":
            from .baseline import GPT2Baseline

            return GPT2Baseline.from_pretrained(cfg.init_from)
        # the config's overrides apply to a warm start too (e.g. switching the sounding embedding
        # on: its new table starts as the structural tables do, so the model computes what it did)
        extra = {k: v for k, v in vocab.model_config_kwargs().items() if k in ("note_slots", "drum_instrument")}
        model = MuseNetForCausalLM.from_pretrained(cfg.init_from, **extra, **cfg.model_overrides)
        start_sounding_as_note_offs(model)
        if model.config.vocab_size != len(vocab):
            model.resize_token_embeddings(len(vocab))
        return model
    base = MuseNetConfig.from_json_file(cfg.model_config).to_dict() if cfg.model_config else {}
    base.update(vocab.model_config_kwargs())
    base["max_position_embeddings"] = max(base.get("max_position_embeddings", 0), cfg.context_length)
    base.update(cfg.model_overrides)
    for key in ("model_type", "architectures", "transformers_version"):
        base.pop(key, None)
    config = MuseNetConfig(**base)
    if cfg.architecture == "gpt2":
        from .baseline import GPT2Baseline, gpt2_config_for

        return GPT2Baseline(gpt2_config_for(config))
    return MuseNetForCausalLM(config)


def training_coverage(pieces: Any, augmentation: AugmentationConfig) -> dict[str, Any]:
    """Which label x instrumentation combinations a run trains on: the training pieces per label
    and instrumentation token, the instruments re-voicing moves parts onto (when it is on) and
    the share of windows without an instrumentation token. Stored in the model's config."""
    from .augmentation import REVOICE_PROGRAMS

    cols = pieces.select_columns(["label", "instruments"]).to_dict()
    labels: dict[str, dict[str, int]] = {}
    for label, inst in zip(cols["label"], cols["instruments"]):
        row = labels.setdefault(label or "", {})
        row[inst or ""] = row.get(inst or "", 0) + 1
    on = augmentation.enabled
    return {"labels": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in sorted(labels.items())},
            "revoiced": sorted(REVOICE_PROGRAMS) if on and augmentation.revoice > 0 else [],
            "revoice": augmentation.revoice if on else 0.0,
            "drop_instrumentation": augmentation.drop_instrumentation if on else 0.0}


def start_sounding_as_note_offs(model: torch.nn.Module) -> bool:
    """A warm start's new sounding table (all zero: the checkpoint had none) starts as the
    note-off embeddings of its keys: the vector added for a sounding note is the embedding of the
    token that ends it, so through the tied LM head the model starts out leaning towards ending
    the notes that sound, and learns from there. Returns whether it did."""
    emb = getattr(getattr(model, "model", None), "embeddings", None)
    table = getattr(emb, "embed_sounding", None)
    if table is None or table.weight.detach().abs().max() > 0:
        return False
    keys = (emb.off_id >= 0).nonzero().flatten()
    with torch.no_grad():
        table.weight[keys] = emb.embed_tokens.weight[emb.off_id[keys]]
    return True


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so that bf16 autocast
    trains faster than fp32 (about 2-3x on this project's CPUs; ``benchmarks/bench_model.py``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text("utf-8")
    except OSError:  # not Linux: oneDNN's own check
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_mixed_precision(setting: str) -> str:
    """``auto`` -> what this machine trains fastest with: bf16 on a GPU that has it (else fp16),
    bf16 on a CPU with native bfloat16, else ``no`` (fp32). Other settings pass through."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "no"


def _param_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, p in sorted(unwrap_model(model).state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (with their trainer_state.json), oldest first."""
    return sorted(p.parent for p in (output_dir / "checkpoints").glob("step-*/trainer_state.json"))


# ---------------------------------------------------------------------- the Accelerate loop
def train(cfg: TrainConfig, *, resume: str = "auto", stop_after_step: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a model as ``cfg`` says; returns the last logged metrics.

    Args:
        cfg: the run's settings.
        resume: ``"auto"`` (the latest checkpoint in ``output_dir`` if any), ``"never"``, or a
            checkpoint folder.
        stop_after_step: stop after this step as if interrupted (no final save): the learning
            rate schedule stays that of ``max_steps``, so resuming later continues the same run.
        progress: show a tqdm bar on the main process.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm

    mp = resolve_mixed_precision(cfg.mixed_precision)
    # cpu=True on a machine without an accelerator: under torchrun (`accelerate launch --multi_gpu
    # --num_processes N`, or `torchrun --nproc_per_node N`) the processes then form a CPU
    # (gloo) group instead of N independent runs.
    no_device = not torch.accelerator.is_available()
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mp) and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # an earlier run in this process (a Trainer, another train()) chose another precision;
        # accelerate keeps one per process unless told to start over
        AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=mp, cpu=no_device,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = accelerator.process_index, accelerator.num_processes
    if world == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        print("note: `accelerate launch --cpu` starts a single process (several need MPI); for N CPU processes "
              "use `accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`", flush=True)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    elif world > 1 and accelerator.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # processes must not fight over cores
    out = Path(cfg.output_dir)
    log_path = out / "log.jsonl"
    set_seed(cfg.seed)  # the same initial weights in every process

    tokenizer = build_tokenizer(cfg)
    with accelerator.main_process_first():
        enc = load_data(cfg, tokenizer)
    if accelerator.is_main_process:
        print(enc.report(show_failed=5), flush=True)
    aug = AugmentationConfig.from_dict(cfg.augmentation)
    train_windows = MuseNetWindows(enc.dataset["train"], tokenizer, cfg.context_length, train=True,
                                   seed=cfg.seed, augmentation=aug)
    val_windows = MuseNetWindows(enc.dataset["validation"], tokenizer, cfg.context_length, train=False)
    if cfg.max_eval_windows is not None and len(val_windows) > cfg.max_eval_windows:
        keep = np.linspace(0, len(val_windows) - 1, cfg.max_eval_windows).astype(int)  # spread over the pieces
        val_windows.piece_of, val_windows.window_of = val_windows.piece_of[keep], val_windows.window_of[keep]
    collator = MuseNetCollator(tokenizer.vocabulary.pad_id)

    model = build_model(cfg, tokenizer)
    if hasattr(model.config, "training_coverage"):
        model.config.training_coverage = training_coverage(enc.dataset["train"], aug)
    set_seed(cfg.seed, device_specific=True)  # same weights everywhere, but each process its own dropout
    if cfg.activation_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate, betas=tuple(cfg.adam_betas))
    # Not passed to prepare(): accelerate would step it once per process; we step it once per step.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    pool = CriticPool(cfg.critic_pool_size)

    start_step = 0
    found = _checkpoints(out) if resume == "auto" else [] if resume == "never" else [Path(resume)]
    if found:
        start_step = load_checkpoint(accelerator, found[-1], pool, log_path)

    def log(record: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    sampler = TrainBatches(len(train_windows), cfg.per_device_batch_size, cfg.gradient_accumulation_steps,
                           rank, world, cfg.seed, start_step, cfg.max_steps)
    # Its own generator: starting the loader must not draw from the global RNG that the
    # checkpoint restored (dropout and the critic's sampling read it).
    loader = torch.utils.data.DataLoader(train_windows, batch_sampler=sampler, collate_fn=collator,
                                         num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    batches = iter(loader)
    bar = tqdm(total=cfg.max_steps, initial=start_step, desc="training",
               disable=not (progress and accelerator.is_main_process))
    data_hash = hashlib.sha1()
    inner = unwrap_model(model)
    last: dict[str, Any] = {}

    def run_eval(step: int) -> None:
        stats = evaluate(model, val_windows, collator, batch_size=cfg.eval_batch_size, rank=rank,
                         world_size=world, device=accelerator.device)
        summed = accelerator.reduce(torch.tensor([stats["nll"], stats["tokens"], stats["seconds"]],
                                                 dtype=torch.float64, device=accelerator.device), reduction="sum")
        ev = {"step": step, **summarize_eval(dict(zip(("nll", "tokens", "seconds"), summed.tolist())))}
        if cfg.critic_every > 0 and getattr(inner, "critic", None) is not None and len(val_windows) and step > 0:
            ev["critic_auc"] = critic_auc(model, val_windows, collator, accelerator, samples=cfg.critic_eval_samples,
                                           tokens=cfg.critic_sample_tokens)
        log(ev)
        last.update(ev)
        accelerator.print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items() if k != "step"))

    if start_step == 0 and len(val_windows):
        run_eval(0)  # the untrained model's loss: where the curve starts
    t0, tokens_seen = time.time(), 0
    model.train()
    step = start_step
    while step < cfg.max_steps:
        critic_now = cfg.critic_every > 0 and getattr(inner, "critic", None) is not None and (step + 1) % cfg.critic_every == 0
        lm_losses, critic_loss = [], None
        for micro in range(cfg.gradient_accumulation_steps):
            batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
            data_hash.update(batch["input_ids"].cpu().numpy().tobytes())
            tokens_seen += int(batch["attention_mask"].sum()) * world
            last_micro = micro == cfg.gradient_accumulation_steps - 1
            if critic_now and last_micro:
                rng = np.random.default_rng([cfg.seed, step, rank, 11])
                critic_loss = critic_step(model, batch, pool, train_windows, collator, accelerator, rng,
                                          samples=cfg.critic_samples, tokens=cfg.critic_sample_tokens)
            sync = contextlib.nullcontext() if last_micro else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                if cfg.mixup_alpha > 0 and batch["input_ids"].shape[0] > 1:
                    rng = np.random.default_rng([cfg.seed, step, micro, rank, 5])
                    loss, _ = mixup_loss(model, batch, float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)))
                else:
                    loss = model(**batch).loss
                accelerator.backward(loss / cfg.gradient_accumulation_steps)
            lm_losses.append(loss.detach())
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update()

        loss_now = accelerator.reduce(torch.stack(lm_losses).mean(), reduction="mean").item()
        record: dict[str, Any] = {"step": step, "loss": loss_now, "lr": scheduler.get_last_lr()[0]}
        if critic_loss is not None:
            record["critic_loss"] = accelerator.reduce(critic_loss.detach(), reduction="mean").item()
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            elapsed = time.time() - t0
            record.update(tokens_per_second=tokens_seen / max(elapsed, 1e-9), elapsed=elapsed)
            log(record)
            bar.set_postfix(loss=f"{loss_now:.3f}")
        if (step % cfg.eval_every == 0 or step == cfg.max_steps) and len(val_windows):
            run_eval(step)
        last.update(record)
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            save_checkpoint(accelerator, out, step, world, pool, cfg.keep_checkpoints)
        if stop_after_step is not None and step >= stop_after_step and step < cfg.max_steps:
            bar.close()
            return last
    bar.close()

    digests = gather_object([{"rank": rank, "weights": _param_digest(model), "data": data_hash.hexdigest()}])
    log({"step": step, "event": "final", "world_size": world, "replicas": digests})
    if accelerator.is_main_process:
        final = out / "final"
        accelerator.unwrap_model(model).save_pretrained(final)
        tokenizer.save_pretrained(final)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return last


def load_checkpoint(accelerator: Any, path: Path, pool: CriticPool, log_path: Path) -> int:
    """Restore a checkpoint of :func:`save_checkpoint`; drop log lines written after it. Returns its step."""
    accelerator.load_state(str(path))
    state = json.loads((path / "trainer_state.json").read_text("utf-8"))
    step, world = state["step"], accelerator.num_processes
    if state.get("world_size", world) != world:
        accelerator.print(f"warning: resuming a {state['world_size']}-process run with {world}: the data order changes")
    pool_file = path / f"critic_pool_rank{accelerator.process_index}.json"
    if pool_file.is_file():
        pool.load(json.loads(pool_file.read_text("utf-8")))
    if accelerator.is_main_process and log_path.is_file():  # what the interrupted run did after it is redone
        lines = [ln for ln in log_path.read_text("utf-8").splitlines() if json.loads(ln).get("step", 0) <= step]
        log_path.write_text("".join(ln + "\n" for ln in lines), "utf-8")
    accelerator.wait_for_everyone()
    accelerator.print(f"resumed from {path} at step {step}")
    return step


def save_checkpoint(accelerator: Any, out: Path, step: int, world: int, pool: CriticPool, keep: int) -> Path:
    """Model, optimizer, scheduler and random states (accelerate), the critic pool, then
    ``trainer_state.json`` last, so a checkpoint without it is incomplete and ignored."""
    path = out / "checkpoints" / f"step-{step:07d}"
    accelerator.save_state(str(path))
    (path / f"critic_pool_rank{accelerator.process_index}.json").write_text(json.dumps(pool.state()), "utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / "trainer_state.json").write_text(json.dumps({"step": step, "world_size": world}), "utf-8")
        for old in _checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


# ---------------------------------------------------------------------- command line
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> int:
    import yaml

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    for key in ("output_dir", "data_dir", "max_steps"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    cfg = TrainConfig.from_yaml(args.config, overrides)
    train(cfg, resume=args.resume, stop_after_step=args.stop_after_step, progress=not args.no_progress)
    return 0


__all__ = [
    "TrainConfig", "add_train_arguments", "build_model", "build_tokenizer", "cpu_supports_bf16", "load_checkpoint",
    "load_data", "lr_lambda", "resolve_mixed_precision", "run_train", "save_checkpoint", "start_sounding_as_note_offs",
    "train", "training_coverage",
]
