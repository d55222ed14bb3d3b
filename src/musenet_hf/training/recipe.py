"""Training recipes of several stages: a YAML config with a ``stages:`` list.

Each entry of ``stages`` is the recipe's settings with the entry's options put over them (as
``--set`` would: ``augmentation`` and ``model_overrides`` are replaced whole) and gives its own
``max_steps`` (its learning-rate schedule); ``name`` (default: its number) names the folder it
writes, ``output_dir/<name>``, and ``stop_after_step`` ends it early, passing that step's weights
on. From the second stage on, a stage warm-starts from the one before's ``final`` folder.
``musenet train`` runs the stages in order (:mod:`~musenet_hf.cli.cli_train`);
:func:`planned_model_config` works out the configuration the last stage ends with, without
training. A recipe without ``stages`` is one stage, as it always was.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..model.configuration_musenet import MuseNetConfig
from .training_config import TrainConfig, build_tokenizer, new_model_config, warm_start_overrides


@dataclasses.dataclass
class Stage:
    """One stage of a recipe: its name, its settings, and the step after which it ends and passes its
    weights on (``None``: when its schedule ends, at ``max_steps``)."""

    name: str
    config: TrainConfig
    stop_after_step: int | None = None


def _stage(path: str | os.PathLike, k: int, entry: Any, base: TrainConfig, overrides: dict[str, Any],
           before: Stage | None) -> Stage:
    """Stage ``k`` (from 1) of the recipe at ``path``: ``entry`` over the recipe's settings, then the
    command line's ``overrides``; warm from ``before``'s final folder when there is one."""
    if not isinstance(entry, dict) or "max_steps" not in entry:
        raise ValueError(f"{path}: stage {k} must be a mapping of options with its own max_steps")
    entry = dict(entry)
    name = str(entry.pop("name", k))
    stop = entry.pop("stop_after_step", None)
    if "stages" in entry or "output_dir" in entry:
        raise ValueError(f"{path}: stage {k} ({name}) may not set stages or output_dir")
    more = {**entry, **{key: v for key, v in overrides.items() if key != "output_dir"}}
    more.update(output_dir=str(Path(base.output_dir) / name), stages=[])
    if before is not None:
        more["init_from"] = str(Path(before.config.output_dir) / "final")
    cfg = TrainConfig.from_yaml(path, more)
    if stop is not None and not 0 < int(stop) <= cfg.max_steps:
        raise ValueError(f"{path}: stage {k} ({name}): stop_after_step must be in 1..max_steps, got {stop}")
    return Stage(name=name, config=cfg, stop_after_step=None if stop is None else int(stop))


def recipe_stages(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> list[Stage]:
    """The stages of the training recipe at ``path``, in order.

    ``overrides`` (the command line's ``--set``) apply to every stage; an ``output_dir`` there
    moves the whole recipe. A recipe without ``stages`` is one stage named ``"1"``, its settings
    as they are (its ``output_dir`` its own)."""
    overrides = dict(overrides or {})
    base = TrainConfig.from_yaml(path, overrides)
    if not base.stages:
        return [Stage(name="1", config=base)]
    stages: list[Stage] = []
    for k, entry in enumerate(base.stages, 1):
        stages.append(_stage(path, k, entry, base, overrides, stages[-1] if stages else None))
    if len({s.name for s in stages}) != len(stages):
        raise ValueError(f"{path}: two stages have one name")
    return stages


def planned_model_config(stages: list[Stage]) -> MuseNetConfig:
    """The configuration of the model a recipe's stages end with, worked out without training or
    loading weights: the first stage's model (new, or its ``init_from`` checkpoint's), then each
    warm start's changes as :func:`~musenet_hf.training.training_config.build_model` makes them."""
    config: MuseNetConfig | None = None
    for stage in stages:
        cfg = stage.config
        tokenizer = build_tokenizer(cfg)
        if config is None and not cfg.init_from:
            config = new_model_config(cfg, tokenizer)
            continue
        if config is None:
            config = MuseNetConfig.from_pretrained(cfg.init_from)
        overrides = warm_start_overrides(cfg, tokenizer)
        positions = max(int(overrides.pop("max_position_embeddings", 0)), cfg.context_length,
                        config.max_position_embeddings)
        for key, value in overrides.items():
            setattr(config, key, value)
        config.max_position_embeddings = positions
        config.vocab_size = len(tokenizer.vocabulary)
    assert config is not None, "a recipe has at least one stage"
    return config


__all__ = ["Stage", "planned_model_config", "recipe_stages"]
