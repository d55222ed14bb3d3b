"""The losses training minimizes and reports: next-token cross-entropy, MuseNet's mixup on token
embeddings, and validation loss per token and bits per second of music.

* :func:`causal_lm_loss`: logits at t predict labels at t + 1, -100 ignored.
* :func:`mixup_loss`: two windows' embeddings mixed by ``lambda ~ Beta(a, a)``, their losses mixed
  by the same ``lambda``.
* :func:`evaluate` / :func:`summarize_eval`: summed validation statistics of one process's share
  of the windows, and the loss and bits per second they give once summed over processes.

Shared by the Accelerate loop (:mod:`~musenet_hf.training.loop`), the ``Trainer`` integration
(:mod:`~musenet_hf.training.trainer_musenet`), the critic and ``musenet evaluate``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .batching import MuseNetCollator, window_seconds
from .data import MuseNetWindows


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / compile wrappers (what owns ``structure_ids``)."""
    while hasattr(model, "module"):
        model = model.module
    return getattr(model, "_orig_mod", model)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy: ``logits`` ``(B, T, V)`` at t predict ``labels`` ``(B, T)`` at t + 1.

    -100 labels are ignored. ``reduction="sum"`` gives the total in nats (for bits per second).
    """
    logits = logits[:, :-1].float()
    target = labels[:, 1:].to(logits.device)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                           reduction=reduction)


def mixup_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], lam: float,
               partner: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MuseNet's mixup on token embeddings.

    Each window ``a`` of the batch is paired with window ``b = partner[a]`` (default: the next one,
    cyclically). The model sees ``lam * embed(a) + (1 - lam) * embed(b)`` with ``a``'s structural
    indices (``lam >= 0.5`` is enforced by swapping, so ``a`` dominates), and the loss is
    ``lam * loss(logits, labels_a) + (1 - lam) * loss(logits, labels_b)``.

    Args:
        model: a ``MuseNetForCausalLM`` (possibly wrapped by DDP).
        batch: a collated batch (``input_ids``, ``attention_mask``, ``labels`` ``(B, T)``,
            ``piece_seconds``, ``time_offset_seconds`` ``(B,)``).
        lam: the mixing weight, e.g. drawn from ``Beta(alpha, alpha)``.
        partner: ``(B,)`` index of each window's partner.

    Returns:
        The loss and the model inputs used (``inputs_embeds`` and the structural ids), so a test
        can recompute the two losses separately.
    """
    inner = unwrap_model(model)
    lam = max(lam, 1.0 - lam)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    if partner is None:
        partner = torch.roll(torch.arange(ids.shape[0], device=ids.device), -1)
    embed = inner.get_input_embeddings()
    inputs = {
        "inputs_embeds": lam * embed(ids) + (1.0 - lam) * embed(ids[partner]),
        "attention_mask": torch.maximum(mask, mask[partner]),
        **inner.structure_ids(ids, batch.get("piece_seconds"), batch.get("time_offset_seconds")),
    }
    logits = model(**inputs).logits
    loss = lam * causal_lm_loss(logits, labels) + (1.0 - lam) * causal_lm_loss(logits, labels[partner])
    return loss, inputs


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: MuseNetWindows, collator: MuseNetCollator, *, batch_size: int = 8,
             rank: int = 0, world_size: int = 1, device: Any = None) -> dict[str, float]:
    """Summed validation statistics of this process's share of ``windows`` (every ``world_size``-th).

    Returns ``{"nll": nats, "tokens": predicted tokens, "seconds": seconds of music they span}``;
    add them over processes, then ``loss = nll / tokens`` and ``bits_per_second = nll / ln 2 /
    seconds`` (see :func:`summarize_eval`).
    """
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    vocab = windows.vocab
    nll = tokens = seconds = 0.0
    indices = list(range(rank, len(windows), world_size))
    for i in range(0, len(indices), batch_size):
        batch = collator([windows[j] for j in indices[i:i + batch_size]])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       piece_seconds=batch["piece_seconds"], time_offset_seconds=batch["time_offset_seconds"]).logits
        nll += float(causal_lm_loss(logits, batch["labels"], reduction="sum"))
        predicted = batch["labels"][:, 1:]
        tokens += float((predicted != -100).sum())
        seconds += float(window_seconds(predicted, vocab).sum())
    model.train(was_training)
    return {"nll": nll, "tokens": tokens, "seconds": seconds}


def summarize_eval(stats: dict[str, float]) -> dict[str, float]:
    """``val_loss`` (nats per token) and ``val_bits_per_second`` from summed :func:`evaluate` stats."""
    loss = stats["nll"] / max(stats["tokens"], 1.0)
    bps = stats["nll"] / math.log(2) / stats["seconds"] if stats["seconds"] > 0 else float("nan")
    return {"val_loss": loss, "val_bits_per_second": bps}



__all__ = ["causal_lm_loss", "evaluate", "mixup_loss", "summarize_eval", "unwrap_model"]
