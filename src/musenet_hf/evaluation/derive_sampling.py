"""Sampling settings derived by measurement, never hand-edited into a checkpoint.

A recipe (``configs/sampling/derive.yaml``) names the checks and the candidate settings. The
procedure starts from the recipe's model-wide defaults and **no per-label exceptions**, generates
each label's pieces (its usual instruments, fixed seeds) and measures them against the label's
*validation* pieces (never the evaluation split): the medians of note length, notes per second and
notes at once within ``tolerance`` of the real ones, and few notes held past ``held_seconds``. A label
that fails tries the candidates in order; the first that passes becomes its preset. A label no
candidate mends keeps the defaults and is reported. The result is a
:class:`~musenet_hf.generation.generation_config.MuseNetGenerationConfig` (written as the checkpoint's
``generation_config.json``) and a report of every measurement; with one thread and the same model,
data and recipe, a rerun writes the same file.

    musenet derive-sampling --model checkpoints/musenet-broad-wip --recipe configs/sampling/derive.yaml \\
        --data-config configs/train/broad.yaml --write
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..generation.generation_config import MuseNetGenerationConfig, check_setting
from .musical_statistics import clip_notes, piece_statistics

MEASURES = ("note_length_median", "notes_per_second", "polyphony_mean")  # compared with the real pieces


@dataclass
class DerivationRecipe:
    """What ``derive-sampling`` measures and tries (one YAML file).

    Attributes:
        seconds: length of each generated piece and of each real piece's opening that is measured.
        seeds: one generated piece per seed and label.
        min_pieces: labels with fewer validation pieces are not judged (no preset).
        tolerance: a measure passes within this share of the real median (0.3: 30%).
        max_held_share: at most this share of generated notes may last over ``held_seconds``.
        held_seconds: how long a held note is.
        defaults: the model-wide settings every label starts from (a MuseNetGenerationConfig's fields).
        candidates: settings tried, in order, for a label that fails with the defaults.
        labels: the labels to judge (None: every label with a token and ``min_pieces`` validation pieces).
    """

    seconds: float = 20.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    min_pieces: int = 10
    tolerance: float = 0.3
    max_held_share: float = 0.05
    held_seconds: float = 4.0
    defaults: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        for i, candidate in enumerate(self.candidates):
            if not isinstance(candidate, dict) or not candidate:
                raise ValueError(f"candidates[{i}] must be a non-empty mapping of settings, got {candidate!r}")
            for name, value in candidate.items():
                check_setting(name, value)
        MuseNetGenerationConfig(**self.defaults)  # ValueError naming a bad default

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DerivationRecipe":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
        return cls(**data)


def real_statistics(pieces: Iterable[tuple[str, Sequence[Any]]], seconds: float, vocabulary: Any = None,
                    min_pieces: int = 1) -> dict[str, dict[str, float]]:
    """``{label: {measure: median, "pieces": n}}`` over the openings (``seconds``) of real pieces
    ``(label, notes)``; labels with fewer than ``min_pieces`` non-empty pieces are left out."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for label, notes in pieces:
        clip = clip_notes(notes, seconds)
        if label and clip:
            by_label.setdefault(label, []).append(piece_statistics(clip, vocabulary))
    return {label: {**{m: statistics.median(float(s[m]) for s in stats) for m in MEASURES}, "pieces": len(stats)}
            for label, stats in sorted(by_label.items()) if len(stats) >= min_pieces}


def measure_label(pipe: Any, label: str, recipe: DerivationRecipe) -> dict[str, float]:
    """The label's generated pieces (one per seed, the model's settings as they stand): the medians of
    the measures over the seeds, and the share of notes held over ``held_seconds``."""
    tokenizer = pipe.tokenizer
    rows, held, notes_total = [], 0, 0
    for seed in recipe.seeds:
        out = pipe(composer=label, seconds=recipe.seconds, seed=seed, progress=False)[0]
        notes = tokenizer.decode_to_notes(out["tokens"])
        rows.append(piece_statistics(notes, tokenizer.vocabulary))
        held += sum(n.end - n.start > recipe.held_seconds for n in notes)
        notes_total += len(notes)
    result = {m: statistics.median(float(r[m]) for r in rows) for m in MEASURES}
    result["held_share"] = held / notes_total if notes_total else 1.0
    return result


def judge(generated: dict[str, float], real: dict[str, float], recipe: DerivationRecipe) -> dict[str, Any]:
    """Whether generated pieces pass against the real ones: each measure's ratio and the verdict."""
    ratios = {m: generated[m] / real[m] if real[m] else math.nan for m in MEASURES}
    ok = all(abs(r - 1) <= recipe.tolerance for r in ratios.values()) and generated["held_share"] <= recipe.max_held_share
    worst = max((abs(r - 1) for r in ratios.values()), default=math.inf)
    return {"ratios": ratios, "worst": worst if math.isfinite(worst) else math.inf, "ok": bool(ok)}


def derive(pipe: Any, real: dict[str, dict[str, float]], recipe: DerivationRecipe,
           progress: bool = True) -> tuple[MuseNetGenerationConfig, dict[str, Any]]:
    """The derived generation config and the report: every label's measurements with the defaults and
    with each candidate tried. ``pipe`` is a ``musenet-generation`` pipeline; its model's generation
    config is replaced while measuring and restored after."""
    from tqdm.auto import tqdm

    model = pipe.model
    before = model.generation_config
    keep = {k: getattr(before, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id") if getattr(before, k, None) is not None}
    labels = [lb for lb in (recipe.labels or list(real)) if lb in real]
    presets, report = [], {"recipe": recipe.__dict__, "real": real, "labels": {}}
    try:
        for label in tqdm(labels, desc="labels", disable=not progress):
            entry = report["labels"][label] = {"tried": []}
            for candidate in [None, *recipe.candidates]:
                when = [] if candidate is None else [{"when": {"label": label}, "set": candidate}]
                model.generation_config = MuseNetGenerationConfig(**recipe.defaults, **keep, presets=when)
                generated = measure_label(pipe, label, recipe)
                verdict = judge(generated, real[label], recipe)
                entry["tried"].append({"set": candidate or {}, "generated": generated, **verdict})
                if verdict["ok"]:
                    entry["chosen"] = candidate or {}
                    if candidate is not None:
                        presets.append({"when": {"label": label}, "set": candidate})
                    break
            else:
                entry["chosen"] = None  # nothing passes: the defaults stay, and the report says so
    finally:
        model.generation_config = before
    derived = MuseNetGenerationConfig(**recipe.defaults, **keep, presets=presets)
    report["presets"] = presets
    report["failing"] = [lb for lb in labels if report["labels"][lb]["chosen"] is None]
    return derived, report


__all__ = ["DerivationRecipe", "MEASURES", "derive", "judge", "measure_label", "real_statistics"]
