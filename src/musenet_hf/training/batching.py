"""Windows into batches: :class:`MuseNetCollator` (padding, labels) and :class:`TrainBatches`, the
sampler of the Accelerate loop (the data of optimizer step ``s``, micro-batch ``m`` and process
``r`` is a pure function of those numbers, so a resumed run sees exactly the data an
uninterrupted run would have seen); :func:`window_seconds`, the seconds each window of a batch
predicts (for bits per second).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..tokenizer.vocabulary import MuseNetVocabulary


class MuseNetCollator:
    """Pads windows into a batch: ``input_ids`` and ``labels`` ``(B, T)``, ``attention_mask``
    ``(B, T)``, and ``piece_seconds``/``time_offset_seconds`` ``(B,)`` when the windows have them.

    Padding goes on the right with ``pad_token_id``; padded label positions are -100. Features
    without ``labels`` get ``labels = input_ids``. Any other per-window number (e.g.
    ``critic_labels``) is stacked into a ``(B,)`` float tensor.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        t = max(lengths)
        if self.pad_to_multiple_of:
            t = -(-t // self.pad_to_multiple_of) * self.pad_to_multiple_of
        b = len(features)
        input_ids = torch.full((b, t), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, t), -100, dtype=torch.long)
        mask = torch.zeros((b, t), dtype=torch.long)
        for i, f in enumerate(features):
            n = lengths[i]
            input_ids[i, :n] = torch.as_tensor(np.asarray(f["input_ids"]), dtype=torch.long)
            labels[i, :n] = torch.as_tensor(np.asarray(f.get("labels", f["input_ids"])), dtype=torch.long)
            mask[i, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        for key in features[0]:
            if key not in batch and np.isscalar(features[0][key]):
                batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)
        return batch


class TrainBatches(torch.utils.data.Sampler):
    """Batches of window indices for the Accelerate loop, a pure function of the step.

    Global sample ``k`` (counting over steps, micro-batches, processes and batch rows, in that
    order) is window ``perm_e[k mod n]`` of epoch ``e = k // n``, where ``perm_e`` is a
    permutation seeded by ``(seed, e)``. With ``weights`` (one probability a window, see
    :func:`label_balanced_weights`) an epoch is instead ``n`` windows drawn with replacement from
    those probabilities, seeded the same way. Each yielded batch is a list of
    ``(window index, epoch, progress)`` tuples for :class:`MuseNetWindows`, with
    ``progress = step / max_steps`` driving the augmentation schedule.

    Args:
        num_windows: ``len(dataset)``.
        batch_size: windows per micro-batch and process.
        accumulation: micro-batches per optimizer step.
        rank, world_size: this process and how many there are.
        seed: the data seed.
        start_step, max_steps: yield the batches of steps ``start_step .. max_steps - 1``.
        weights: ``(num_windows,)`` sampling probabilities (summing to 1), or None for every
            window once an epoch.
    """

    def __init__(self, num_windows: int, batch_size: int, accumulation: int, rank: int, world_size: int,
                 seed: int, start_step: int, max_steps: int, weights: np.ndarray | None = None):
        if num_windows < 1:
            raise ValueError("no training windows")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_windows,) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
                raise ValueError(f"weights must be {num_windows} non-negative probabilities summing to 1")
        self.weights = weights
        self.n, self.batch_size, self.accumulation = num_windows, batch_size, accumulation
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.start_step, self.max_steps = start_step, max_steps
        self._perm: tuple[int, np.ndarray] | None = None

    def sample(self, k: int) -> tuple[int, int]:
        """(window index, epoch) of global sample ``k``."""
        epoch, pos = divmod(k, self.n)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 7])
            order = rng.permutation(self.n) if self.weights is None else rng.choice(self.n, self.n, p=self.weights)
            self._perm = (epoch, order)
        return int(self._perm[1][pos]), epoch

    def batch(self, step: int, micro: int) -> list[tuple[int, int, float]]:
        first = ((step * self.accumulation + micro) * self.world_size + self.rank) * self.batch_size
        progress = step / max(self.max_steps, 1)
        return [(*self.sample(k), progress) for k in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int, float]]]:
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.accumulation):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.accumulation


def label_balanced_weights(labels: Sequence[str], temperature: float,
                           boost: Mapping[str, float] | None = None) -> np.ndarray:
    """Sampling probabilities that rebalance labels: ``(len(labels),)``, one per window.

    A label with share ``s`` of the windows is drawn with probability proportional to
    ``s ** temperature``, spread evenly over its windows (temperature sampling, as multilingual
    language models balance their languages). ``temperature=1`` keeps the data's own shares;
    ``0`` gives every label the same share; in between, rare labels (a few hundred chorales
    beside thousands of folk tunes) are seen more often without drowning the common ones.

    ``boost`` multiplies chosen labels' shares before they are normalised (``{"bach": 3}``: three
    times bach's tempered share): for the labels a model still plays worst, without raising every
    rare label as a lower temperature would. A boosted label missing from ``labels`` is an error.
    """
    if not 0.0 <= temperature <= 1.0:
        raise ValueError(f"label temperature must be in [0, 1], got {temperature}")
    names, index, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True,
                                     return_counts=True)
    share = counts / counts.sum()
    target = share ** temperature
    for label, factor in (boost or {}).items():
        if label not in names:
            raise ValueError(f"label_boost names {label!r}, which no training window has "
                             f"(labels: {', '.join(names.tolist())})")
        if not factor > 0:
            raise ValueError(f"label_boost[{label!r}] must be above 0, got {factor}")
        target[names.tolist().index(label)] *= factor
    target /= target.sum()
    return target[index] / counts[index]


def label_draws(labels: Sequence[str], weights: np.ndarray | None = None) -> dict[str, float]:
    """Each label's share of the draws, largest first: the sum of its windows' ``weights``, or
    its share of the windows without them (every window drawn once an epoch)."""
    if weights is None:
        weights = np.full(len(labels), 1.0 / max(len(labels), 1))
    drawn: dict[str, float] = {}
    for label, p in zip(labels, np.asarray(weights).tolist()):
        drawn[label] = drawn.get(label, 0.0) + p
    return dict(sorted(drawn.items(), key=lambda kv: -kv[1]))


def window_seconds(labels: torch.Tensor, vocabulary: MuseNetVocabulary) -> torch.Tensor:
    """Seconds of music the predicted tokens of each window span (its wait tokens). ``(B,)``.

    ``labels``: ``(B, T)`` with -100 on positions that are not predicted.
    """
    waits = torch.as_tensor(vocabulary.wait_units, device=labels.device)
    units = torch.where(labels >= 0, waits[labels.clamp(min=0)], 0)
    return units.sum(dim=1).double() * vocabulary.wait_unit_seconds


__all__ = ["MuseNetCollator", "TrainBatches", "label_balanced_weights", "label_draws", "window_seconds"]
