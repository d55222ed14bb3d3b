"""The critic phase on a finished model: ``musenet train-critic``.

MuseNet's inner critic learns to tell real music from the model's own generations, and its score
picks among samples at generation time (:func:`~musenet_hf.generation.rerank`). The Accelerate
loop can train it inline (``critic_every``), but then its gradients flow into the network while
the network is still learning the music. This phase trains the critic head alone on a finished
model: the network is frozen, a pool of fresh samples (label 0) is generated from the prefixes of
training pieces, the openings of training pieces cut to the same lengths are the real examples
(label 1), and only the head's weights move. Its AUC is then measured on held-out pieces against
new generations (:func:`~musenet_hf.evaluation.critic_auc_heldout`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data import MuseNetCollator, MuseNetWindows
from .training import critic_batch, generate_samples, piece_opening, roc_auc


@torch.no_grad()
def pooled_states(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The critic head's input for each sequence of ``batch``: the masked mean of the final hidden
    states, ``(B, 1, hidden)`` (one position, so the head's own mean pooling leaves it unchanged)."""
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         piece_seconds=batch.get("piece_seconds"),
                         time_offset_seconds=batch.get("time_offset_seconds")).last_hidden_state
    weights = batch["attention_mask"].to(hidden.dtype).unsqueeze(-1)
    return ((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).unsqueeze(1)


def critic_examples(model: Any, windows: MuseNetWindows, pieces: np.ndarray, tokens: int, *, batch: int = 16,
                    progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled states and labels of real openings (1) and fresh generations (0) of ``pieces``.

    Each piece gives one generated sample of up to ``tokens`` tokens from its prefix and its real
    opening cut to the sample's length. Returns ``(N, 1, hidden)`` features and ``(N,)`` labels.
    """
    from tqdm.auto import tqdm

    v = windows.vocab
    collator = MuseNetCollator(v.pad_id)
    feats, labels = [], []
    for i in tqdm(range(0, len(pieces), batch), desc="critic pool", unit="batch", disable=not progress):
        group = [int(p) for p in pieces[i:i + batch]]
        secs = [windows.piece_seconds(p) for p in group]
        fake = generate_samples(model, [windows.prefixes[p] for p in group], secs, tokens, eos_token_id=v.end_id,
                                pad_token_id=v.pad_id)
        real = [piece_opening(windows, p, tokens) for p in group]
        cb = critic_batch(real, list(zip(fake, secs)), collator)
        labels.append(cb.pop("critic_labels"))
        feats.append(pooled_states(model, cb))
    return torch.cat(feats), torch.cat(labels)


def train_critic_head(model: Any, windows: MuseNetWindows, *, samples: int = 256, tokens: int = 128,
                      epochs: int = 200, learning_rate: float = 3e-3, batch_size: int = 64, seed: int = 0,
                      progress: bool = True) -> dict[str, Any]:
    """Train ``model.critic`` (only) on a generated pool against real openings of ``windows``' pieces.

    Args:
        model: a ``MuseNetForCausalLM`` with its critic head; the rest of it is left untouched.
        windows: training windows (their pieces' prefixes and openings are used).
        samples: generated samples in the pool (as many real openings).
        tokens: length of each sample.
        epochs: passes of the head over the pool.

    Returns:
        ``{"samples", "tokens", "train_auc_before", "train_auc", "loss", "seconds"}``.
    """
    if getattr(model, "critic", None) is None:
        raise ValueError("the model has no critic head (use_critic=False)")
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    pieces = rng.choice(windows.num_pieces, size=samples, replace=windows.num_pieces < samples)
    feats, labels = critic_examples(model, windows, pieces, tokens, progress=progress)
    head = model.critic
    with torch.no_grad():
        before = roc_auc(labels.tolist(), head(feats).tolist())
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=0.01)
    head.train()
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for j in range(0, len(order), batch_size):
            idx = order[j:j + batch_size]
            loss = F.binary_cross_entropy_with_logits(head(feats[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.train(was_training)
    head.eval()
    with torch.no_grad():
        after = roc_auc(labels.tolist(), head(feats).tolist())
    return {"samples": int(len(labels) // 2), "tokens": tokens, "train_auc_before": before, "train_auc": after,
            "loss": float(loss), "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------- command line
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
    import json
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from .evaluation import critic_auc_heldout
    from .pipeline_musenet import tokenizer_for_model
    from .training import TrainConfig, load_data

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


__all__ = ["add_train_critic_arguments", "critic_examples", "pooled_states", "run_train_critic", "train_critic_head"]
