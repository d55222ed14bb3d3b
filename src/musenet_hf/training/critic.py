"""The inner critic: everything it needs except the head's layer (``modeling_musenet.MuseNetCriticHead``).

MuseNet's inner critic learns to tell real music from the model's own generations, and its score
picks among samples at generation time. This module owns every piece of that:

* the examples: :func:`generate_samples` (the model's own samples), :func:`piece_opening` (the
  real positives), :class:`CriticPool` (past generations, the negatives), :func:`critic_batch`;
* its training: :func:`critic_step` (inline, inside the Accelerate loop, every ``critic_every``
  steps) and :func:`train_critic_head` (``musenet train-critic``: the head alone on a finished,
  frozen model, so its gradients do not flow into a network that is still learning the music);
* its measurement: :func:`roc_auc`, :func:`critic_auc` (inside the loop, across processes) and
  :func:`critic_auc_heldout` (held-out pieces against new generations, ``musenet evaluate``);
* its use: :func:`critic_scores` and :func:`rerank` (the pipeline's ``rerank=True``).

Real examples are always openings of real pieces from time 0, cut to the length of the generated
sample they face, so neither where a window sits in its piece nor its length gives anything away.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import gather_object

from ..generation.generate import accepts_structure, model_context_length, padding_id, split_prompt, vocabulary_of
from .batching import MuseNetCollator
from .data import MuseNetWindows
from .training_losses import unwrap_model


# ---------------------------------------------------------------------- examples
@torch.no_grad()
def generate_samples(model: torch.nn.Module, prompts: Sequence[np.ndarray], piece_seconds: Sequence[float],
                     max_new_tokens: int, *, eos_token_id: int, pad_token_id: int,
                     device: Any = None) -> list[np.ndarray]:
    """Sample a continuation of each prompt (prompts of one length are batched). Returns the
    full sequences ``prompt + generated`` (up to and including ``end`` if it came)."""
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(prompts)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for group in by_length.values():
        ids = torch.as_tensor(np.stack([prompts[i] for i in group]), dtype=torch.long, device=device)
        seqs = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=True,
            top_k=0, top_p=1.0, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
            piece_seconds=torch.tensor([piece_seconds[i] for i in group], dtype=torch.float64, device=device),
        ).cpu().numpy()
        for row, i in zip(seqs, group):
            gen = row[ids.shape[1]:]
            stop = np.flatnonzero(gen == eos_token_id)
            out[i] = np.concatenate([row[:ids.shape[1]], gen[:stop[0] + 1] if len(stop) else gen])
    model.train(was_training)
    return out  # type: ignore[return-value]


class CriticPool:
    """Past generations of the model (the critic's negatives), newest kept, oldest dropped.

    Items are ``(ids, piece_seconds)``; :meth:`state` / :meth:`load` let a checkpoint hold it.
    """

    def __init__(self, size: int):
        self.items: deque[tuple[np.ndarray, float]] = deque(maxlen=size)

    def add(self, samples: Sequence[np.ndarray], piece_seconds: Sequence[float]) -> None:
        self.items.extend(zip(samples, piece_seconds))

    def draw(self, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
        idx = rng.integers(len(self.items), size=min(n, len(self.items)))
        return [self.items[i] for i in idx]

    def state(self) -> dict[str, Any]:
        return {"ids": [x.tolist() for x, _ in self.items], "seconds": [s for _, s in self.items]}

    def load(self, state: dict[str, Any]) -> None:
        self.items.clear()
        self.add([np.asarray(x, dtype=np.int64) for x in state["ids"]], state["seconds"])


def piece_opening(windows: MuseNetWindows, piece: int, length: int) -> dict[str, Any]:
    """The opening of a real piece as the critic's positive: its prefix and first ``length`` body
    tokens from time 0, placed in the piece exactly as a generated sample is (generation starts
    from the prefix at the piece's start), so where a window sits in its piece gives nothing away."""
    body = windows.piece_body(piece)[:max(0, int(length))]
    return {"input_ids": np.concatenate([windows.prefixes[piece], body]),
            "piece_seconds": windows.piece_seconds(piece), "time_offset_seconds": 0.0}


def critic_batch(real: Sequence[dict[str, Any]], fake: Sequence[tuple[np.ndarray, float]],
                 collator: MuseNetCollator) -> dict[str, torch.Tensor]:
    """Real windows (label 1), each cut to the length of a generated sample (label 0), so length
    gives nothing away; no LM labels. ``real``: windows; ``fake``: ``(ids, piece_seconds)``."""
    feats = []
    for r, (ids, secs) in zip(real, fake):
        n = min(len(ids), len(r["input_ids"]))
        feats.append({"input_ids": r["input_ids"][:n], "piece_seconds": r["piece_seconds"],
                      "time_offset_seconds": r["time_offset_seconds"], "critic_labels": 1.0})
        feats.append({"input_ids": ids, "piece_seconds": secs, "time_offset_seconds": 0.0, "critic_labels": 0.0})
    batch = collator(feats)
    del batch["labels"]
    return batch



# ---------------------------------------------------------------------- measurement
def roc_auc(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties 1/2)."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@torch.no_grad()
def critic_auc(model: torch.nn.Module, val_windows: MuseNetWindows, collator: MuseNetCollator, accelerator: Any,
               *, samples: int, tokens: int) -> float:
    """The critic's ROC AUC on fresh generations (never trained on) against validation openings,
    inside the Accelerate loop: each process scores its share of ``samples`` pieces (``tokens``
    long), and the AUC is taken over all processes' scores."""
    vocab = val_windows.vocab
    rank, world = accelerator.process_index, accelerator.num_processes
    idx = [i for i in range(rank, min(len(val_windows), samples * world), world)]
    pieces = [int(val_windows.piece_of[i]) for i in idx]
    real = [piece_opening(val_windows, p, tokens) for p in pieces]
    prompts = [val_windows.prefixes[p] for p in pieces]
    secs = [val_windows.piece_seconds(p) for p in pieces]
    fake = generate_samples(model, prompts, secs, tokens, eos_token_id=vocab.end_id,
                            pad_token_id=vocab.pad_id, device=accelerator.device)
    scores, labels = [], []
    if real:
        inner = unwrap_model(model)
        inner.eval()
        batch = {k: v.to(accelerator.device) for k, v in critic_batch(real, list(zip(fake, secs)), collator).items()}
        labels = batch.pop("critic_labels").tolist()
        scores = inner(**batch).critic_logits.float().tolist()
        inner.train()
    gathered = gather_object([(labels, scores)])
    all_labels = [x for lb, _ in gathered for x in lb]
    all_scores = [x for _, sc in gathered for x in sc]
    return roc_auc(all_labels, all_scores)



@torch.no_grad()
def critic_auc_heldout(model: Any, windows: Any, *, pieces: int = 64, tokens: int = 128, batch: int = 16,
                       seed: int = 0) -> dict[str, Any]:
    """The critic's ROC AUC on validation pieces: the real opening of each piece (its prefix and
    first ``tokens`` tokens) against a fresh generation from the same prefix, cut to the same
    length, so neither position nor length tells them apart.

    Args:
        model: a ``MuseNetForCausalLM`` with its critic head.
        windows: validation :class:`~musenet_hf.training.data.MuseNetWindows`.
        pieces: how many validation pieces (spread over the split).
    """
    if getattr(model, "critic", None) is None:
        raise ValueError("the model has no critic head")
    chosen = np.unique(np.linspace(0, windows.num_pieces - 1, min(pieces, windows.num_pieces)).astype(int))
    torch.manual_seed(seed)
    feats, label_tensor = critic_examples(model, windows, chosen, tokens, batch=batch, progress=False)
    labels = label_tensor.tolist()
    scores = model.critic(feats).float().tolist()  # the head on the pooled states: what a full forward gives
    return {"auc": roc_auc(labels, scores), "real": int(sum(labels)), "generated": len(labels) - int(sum(labels)),
            "tokens": tokens}



# ---------------------------------------------------------------------- training
def critic_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], pool: CriticPool, windows: MuseNetWindows,
                collator: MuseNetCollator, accelerator: Any, rng: np.random.Generator, *, samples: int,
                tokens: int) -> torch.Tensor:
    """One critic update's gradients (accumulated, not yet synchronized): fresh samples of the
    current model join the pool; the critic learns to tell pool samples (0) from openings of real
    training pieces cut to the same lengths (1). ``samples`` new samples of ``tokens`` tokens
    each. Returns the critic loss."""
    pieces = rng.integers(windows.num_pieces, size=samples)
    prompts = [windows.prefixes[p] for p in pieces]
    secs = [windows.piece_seconds(p) for p in pieces]
    vocab = windows.vocab
    pool.add(generate_samples(model, prompts, secs, tokens, eos_token_id=vocab.end_id,
                              pad_token_id=vocab.pad_id, device=accelerator.device), secs)
    n = len(batch["input_ids"])
    real = [piece_opening(windows, p, tokens) for p in rng.integers(windows.num_pieces, size=n)]
    cb = {k: v.to(accelerator.device) for k, v in critic_batch(real, pool.draw(n, rng), collator).items()}
    with accelerator.no_sync(model), accelerator.autocast():
        loss = model(**cb).loss
    accelerator.backward(loss)
    return loss.detach()



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
            "loss": loss.item(), "seconds": time.perf_counter() - started}



# ---------------------------------------------------------------------- scoring finished pieces
@torch.no_grad()
def critic_scores(
    model: Any,
    tokenizer: Any,
    sequences: Sequence[Sequence[int]],
    seconds: float | Sequence[float] | None = None,
    max_window: int | None = None,
    batch_size: int = 8,
) -> list[float]:
    """One score per sequence: the critic head's logit, averaged over the sequence's windows.

    Each sequence is cut into windows of ``prefix + body chunk`` (at most ``max_window``
    tokens) that the model sees with their true ``time_offset_seconds``; windows of all sequences
    run batched with right padding. Higher means "more like real music". A model without a
    critic head (``critic_logits`` absent or None) is scored by its mean token log-likelihood
    instead, so reranking still works with any causal LM.
    """
    v = vocabulary_of(tokenizer)
    window = max_window or model_context_length(model)
    device = model.device
    structure = accepts_structure(model)
    items: list[tuple[int, list[int], float, float]] = []  # (sequence, window ids, offset s, piece s)
    for s_i, ids in enumerate(sequences):
        prefix, body = split_prompt(v, ids)
        piece = seconds[s_i] if isinstance(seconds, Sequence) else (seconds or v.seconds(ids))
        room = window - len(prefix)
        units = 0
        for start in range(0, max(len(body), 1), room):
            chunk = body[start:start + room]
            items.append((s_i, prefix + chunk, units * v.wait_unit_seconds, float(piece)))
            units += int(v.wait_units[chunk].sum()) if chunk else 0
    totals = [0.0] * len(sequences)
    counts = [0] * len(sequences)
    for b in range(0, len(items), batch_size):
        batch = items[b:b + batch_size]
        width = max(len(x[1]) for x in batch)
        ids = torch.full((len(batch), width), padding_id(model, v), dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, (_, w, _, _) in enumerate(batch):
            ids[i, :len(w)] = torch.tensor(w, device=device)
            mask[i, :len(w)] = 1
        kwargs = {}
        if structure:
            kwargs["piece_seconds"] = torch.tensor([x[3] for x in batch], dtype=torch.float64, device=device)
            kwargs["time_offset_seconds"] = torch.tensor([x[2] for x in batch], dtype=torch.float64, device=device)
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
        critic = getattr(out, "critic_logits", None)
        if critic is None:  # mean log-likelihood of the real tokens
            logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            m = mask[:, 1:].float()
            critic = (logp * m).sum(1) / m.sum(1).clamp(min=1)
        for i, x in enumerate(batch):
            totals[x[0]] += float(critic[i])
            counts[x[0]] += 1
    return [t / max(c, 1) for t, c in zip(totals, counts)]


def rerank(scores: Sequence[float]) -> list[int]:
    """Indices of ``scores`` best first (stable for ties)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])



__all__ = [
    "CriticPool", "critic_auc", "critic_auc_heldout", "critic_batch", "critic_examples", "critic_scores",
    "critic_step", "generate_samples", "piece_opening", "pooled_states", "rerank", "roc_auc", "train_critic_head",
]
