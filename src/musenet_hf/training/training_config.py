"""What a training run is made of: :class:`TrainConfig` (the YAML file's settings) and the
builders the Accelerate loop, ``musenet train-critic``, ``musenet evaluate`` and the benchmarks
share: the data (:func:`load_data`, one train/validation split for all of them), the tokenizer,
the model (MuseNet or its GPT-2 baseline, new or warm-started), the learning-rate schedule and
the mixed-precision choice.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import GenerationConfig

from ..model.baseline import GPT2Baseline, gpt2_config_for
from ..model.configuration_musenet import MuseNetConfig
from ..model.modeling_musenet import MuseNetForCausalLM
from ..tokenizer.tokenization_musenet import MuseNetTokenizer
from .augmentation import REVOICE_PROGRAMS, AugmentationConfig
from .data import load_midi_folder


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; the YAML file's sections (``data:``, ``model:``, ...) are
    flattened into these fields, so every key is unique. Relative paths are resolved against the
    working directory, then against the YAML file's folder and the folders above it."""

    output_dir: str = "runs/tiny"
    seed: int = 0
    # data
    data_dir: str = "corpus"  # what `musenet prepare-corpus --out corpus` writes; configs name their own
    labels: Any = "auto"
    unknown_labels: str = "ignore"
    validation_fraction: float = 0.1
    num_proc: int = 1
    context_length: int = 256
    num_workers: int = 0
    max_eval_windows: int | None = 64
    data_cache_dir: str | None = None  # default: <output_dir>/data-cache
    augmentation: Any = None
    # 1: windows drawn as the data has them; below 1, rarer labels drawn more often (a label with
    # share s of the windows gets a share proportional to s ** label_temperature; 0: all equal)
    label_temperature: float = 1.0
    # multipliers on chosen labels' tempered shares ({bach: 3}): the labels the model plays worst
    label_boost: dict = dataclasses.field(default_factory=dict)
    # share of training windows that start at their piece's opening (where generation starts)
    opening_share: float = 0.0
    # predict (not give) the notes a cut training window strikes again: what sounds together, per label
    predict_restruck: bool = False
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
    # parameter-name fragment -> learning-rate multiplier, e.g. {embed_composer: 10} for a table
    # a warm start adds at zero, which must grow within a short run
    lr_scale: dict = dataclasses.field(default_factory=dict)
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
    # a recipe of several stages: each entry overrides these settings for one stage, with its own
    # max_steps (and optionally name and stop_after_step); see musenet_hf.training.recipe
    stages: list = dataclasses.field(default_factory=list)

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
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - set(types))
        if unknown:
            raise ValueError(f"{path}: unknown training options {unknown}")
        for key, value in flat.items():
            # YAML 1.1 reads `2e-4` (no dot) as a string: a float option takes it as the number it is
            if types[key] == "float" and isinstance(value, str):
                try:
                    flat[key] = float(value)
                except ValueError:
                    raise ValueError(f"{path}: {key} must be a number, got {value!r}") from None
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
    """The run's encoded folder (:func:`~musenet_hf.training.data.load_midi_folder` with the config's data
    options and cache): what training, ``musenet evaluate`` and ``musenet train-critic`` all read,
    so they see the same train/validation split."""
    return load_midi_folder(cfg.data_dir, tokenizer, labels=cfg.labels, unknown_labels=cfg.unknown_labels,
                            validation_fraction=cfg.validation_fraction, num_proc=cfg.num_proc,
                            cache_dir=cfg.data_cache_dir or Path(cfg.output_dir) / "data-cache")


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's groups: weight decay on matrices, none on vectors; a parameter whose name holds a
    key of ``cfg.lr_scale`` learns at that multiple of the learning rate (first key that matches)."""
    for key, scale in cfg.lr_scale.items():
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"lr_scale[{key!r}] must be a positive number, got {scale!r}")
    groups: dict[tuple[bool, float], list] = {}
    used: set[str] = set()
    for name, param in model.named_parameters():
        key = next((k for k in cfg.lr_scale if k in name), None)
        used.add(key)
        groups.setdefault((param.dim() >= 2, float(cfg.lr_scale.get(key, 1.0))), []).append(param)
    unused = [k for k in cfg.lr_scale if k not in used]
    if unused:
        raise ValueError(f"lr_scale names no parameter of the model: {unused}")
    return [{"params": params, "weight_decay": cfg.weight_decay if decay else 0.0, "lr": cfg.learning_rate * scale}
            for (decay, scale), params in sorted(groups.items(), key=lambda g: (g[0][1] != 1.0, not g[0][0]))]


def build_tokenizer(cfg: TrainConfig) -> MuseNetTokenizer:
    if cfg.tokenizer_path:
        return MuseNetTokenizer.from_pretrained(cfg.tokenizer_path)
    return MuseNetTokenizer.from_preset(cfg.tokenizer_preset)


def new_model_config(cfg: TrainConfig, tokenizer) -> MuseNetConfig:
    """The configuration of a model built from scratch: the config JSON, the tokenizer's
    vocabulary facts, the context length and the recipe's ``model_overrides``."""
    base = MuseNetConfig.from_json_file(cfg.model_config).to_dict() if cfg.model_config else {}
    base.update(tokenizer.vocabulary.model_config_kwargs())
    base["max_position_embeddings"] = max(base.get("max_position_embeddings", 0), cfg.context_length)
    base.update(cfg.model_overrides)
    for key in ("model_type", "architectures", "transformers_version"):
        base.pop(key, None)
    return MuseNetConfig(**base)


def warm_start_overrides(cfg: TrainConfig, tokenizer) -> dict[str, Any]:
    """What a warm start changes in its checkpoint's configuration: the tokenizer's note slots,
    drum instrument and composer ids, then the recipe's ``model_overrides`` (a
    ``max_position_embeddings`` there is a floor: the table grows, never shrinks)."""
    extra = {k: v for k, v in tokenizer.vocabulary.model_config_kwargs().items()
             if k in ("note_slots", "drum_instrument", "composer_token_ids")}
    return {**extra, **cfg.model_overrides}


def build_model(cfg: TrainConfig, tokenizer) -> torch.nn.Module:
    """From ``init_from`` (a checkpoint) or a config JSON plus the tokenizer's vocabulary facts.

    ``architecture: gpt2`` builds the plain GPT-2 baseline of the same size instead
    (:class:`~musenet_hf.model.baseline.GPT2Baseline`), for side-by-side runs on the same windows."""
    if cfg.architecture not in ("musenet", "gpt2"):
        raise ValueError(f"architecture must be 'musenet' or 'gpt2', got {cfg.architecture!r}")
    vocab = tokenizer.vocabulary
    if cfg.init_from:
        if cfg.architecture == "gpt2":
            return GPT2Baseline.from_pretrained(cfg.init_from)
        # the config's overrides apply to a warm start too (e.g. switching the sounding embedding
        # on: its new table starts as the structural tables do, so the model computes what it did)
        overrides = warm_start_overrides(cfg, tokenizer)
        positions = max(int(overrides.pop("max_position_embeddings", 0)), cfg.context_length)
        model = MuseNetForCausalLM.from_pretrained(cfg.init_from, **overrides)
        # A new model's sampling settings are its own, derived after training (musenet derive-sampling),
        # not the checkpoint it started from (whose generation_config.json would also take the overrides)
        model.generation_config = GenerationConfig.from_model_config(model.config)
        start_sounding_as_note_offs(model)
        grow_position_embeddings(model, positions)
        if model.config.vocab_size != len(vocab):
            model.resize_token_embeddings(len(vocab))
        return model
    config = new_model_config(cfg, tokenizer)
    if cfg.architecture == "gpt2":
        return GPT2Baseline(gpt2_config_for(config))
    return MuseNetForCausalLM(config)


def training_coverage(pieces: Any, augmentation: AugmentationConfig) -> dict[str, Any]:
    """Which label x instrumentation combinations a run trains on: the training pieces per label
    and instrumentation token, the instruments re-voicing moves parts onto (when it is on) and
    the share of windows without an instrumentation token. Stored in the model's config."""
    cols = pieces.select_columns(["label", "instruments"]).to_dict()
    labels: dict[str, dict[str, int]] = {}
    for label, inst in zip(cols["label"], cols["instruments"]):
        row = labels.setdefault(label or "", {})
        row[inst or ""] = row.get(inst or "", 0) + 1
    on = augmentation.enabled
    return {"labels": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in sorted(labels.items())},
            "revoiced": sorted(REVOICE_PROGRAMS) if on and augmentation.revoice > 0 else [],
            "revoice": augmentation.revoice if on else 0.0,
            "drop_instrumentation": augmentation.drop_instrumentation if on else 0.0,
            "drop_composer": augmentation.drop_composer if on else 0.0}


def grow_position_embeddings(model: torch.nn.Module, positions: int, period: int = 256) -> bool:
    """Extend a warm start's position table to ``positions`` rows (a longer context); return
    whether it grew.

    The learned rows are kept. Row ``i`` past them repeats row ``i - k * period`` of the table's
    last ``period`` rows: a position deep in the new context starts as one late in the old
    window, never as the window's first tokens (whose rows say "the piece begins here")."""
    emb = model.model.embeddings
    old = emb.embed_positions
    n_old = old.num_embeddings
    if positions <= n_old:
        return False
    period = min(period, n_old)
    rows = torch.arange(n_old, positions)
    source = n_old - period + (rows - n_old) % period
    new = torch.nn.Embedding(positions, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight[:n_old] = old.weight
        new.weight[n_old:] = old.weight[source]
    emb.embed_positions = new
    model.config.max_position_embeddings = positions
    return True


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



__all__ = [
    "TrainConfig", "build_model", "build_tokenizer", "cpu_supports_bf16", "load_data", "lr_lambda",
    "new_model_config", "resolve_mixed_precision", "start_sounding_as_note_offs", "training_coverage",
    "warm_start_overrides",
]
