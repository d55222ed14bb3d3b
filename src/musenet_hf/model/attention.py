"""Sparse Transformer attention: block layouts, their dense masks, and the attention backends.

Layouts (Child et al., 2019), defined on blocks of `block_size` tokens so kernels can skip empty
blocks; `L = stride / block_size` is the stride in blocks, `qb`/`kb` the query/key block:

- `full`: every key j <= i.
- `strided`: pattern A, the previous L blocks (`qb - L < kb <= qb`); pattern B, every L-th block
  back (`(qb - kb) mod L == 0`).
- `fixed`: pattern A, the same stride block (`qb // L == kb // L`); pattern B, the last
  `c / block_size` blocks of every stride block (the "summary" blocks) plus the query's own block.

Every pattern is also causal at the token level (j <= i) and always contains the query's own
block, so no row is ever empty. A layer combines the two patterns by `alternate` (even layers A,
odd layers B), `split_heads` (first half of the heads A, second half B) or `union` (A or B).
Padding (keys whose attention mask is 0) is removed from every row except the key at the query's
own position, which keeps rows of padding queries finite.

Backends, all computing the same function:

- `sdpa`: `torch.nn.functional.scaled_dot_product_attention`. `full` without padding uses
  `is_causal=True`; patterns A and B without padding run block-structured (`structured_attention`,
  in `attention_structured`: `fixed` A as causal attention inside stride chunks, `strided` B as
  causal attention over the blocks of each residue mod L, `strided` A over local key windows,
  `fixed` B over the summary tokens plus the own block), which skips the empty blocks; everything
  else (padding, `union`, decoding rows) uses the dense boolean mask, cached per shape and device.
- `flex`: FlexAttention with a `BlockMask` that skips empty blocks (compiled on CUDA; on the CPU
  it runs eagerly and has no backward, so training there falls back to `sdpa`).
- `xformers`: `memory_efficient_attention` on varlen packed tokens with xformers' own bias objects,
  block-sparse like `sdpa`'s structured path and no dense bias anywhere (`attention_xformers`):
  `BlockDiagonalCausalMask` over stride chunks (`fixed` A, and one chunk per sequence for `full`)
  and over the reordered residue classes (`strided` B), `BlockDiagonalCausalFromBottomRightMask`
  over each query block's gathered key blocks (`strided` A, `fixed` B, `union`). Padding and
  decoding rows use `sdpa` with the mask rows. CUDA only, used only when its compiled kernels load;
  imported lazily with its logger silenced.
- `eager`: the plain reference, `reference_attention` (scores, masked softmax, dropout, values)
  with the dense mask of every head: slow, for checks.
- `auto`: on CUDA, `flex` (else `xformers`) for sparse layouts and `sdpa` (flash) for `full`; `sdpa`
  on the CPU.

A model asks for one the Transformers way (`attn_implementation="sdpa"`, `"flex_attention"`,
`"xformers"` or `"eager"`, see `requested_backend`); without one, its config's `attention_backend`
(default `auto`). An explicit `flex` or `xformers` that cannot run on the device falls back to `sdpa`
with one warning (`resolve_backend`).

Decoding with a KV cache (fewer queries than keys) always uses `sdpa` (`eager`: the reference) with
the mask rows of the new queries, so cached decoding sees exactly the layout of a full forward.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import logging as hf_logging

from .attention_structured import structured_attention
from .attention_xformers import (
    PackedAttention,
    chunk_plan,
    gathered_plan,
    packed_attention,
    residue_plan,
    xformers_available,
)

logger = hf_logging.get_logger(__name__)

PATTERNS = ("causal", "A", "B", "AB")


@dataclass(frozen=True)
class SparseLayout:
    """A Sparse Transformer attention layout (hashable, so masks can be cached by it).

    Attributes:
        kind: `"full"`, `"strided"` or `"fixed"`.
        block_size: block size in tokens.
        stride: stride l in tokens (a multiple of `block_size`).
        c: `fixed` only: summary tokens at the end of each stride block (a multiple of `block_size`).
        combine: `"alternate"`, `"split_heads"` or `"union"`.
    """

    kind: str = "full"
    block_size: int = 64
    stride: int = 256
    c: int = 64
    combine: str = "split_heads"

    @classmethod
    def from_config(cls, config) -> "SparseLayout":
        return cls(
            kind=config.attention_layout,
            block_size=config.attention_block_size,
            stride=config.attention_stride,
            c=config.attention_c,
            combine=config.attention_combine,
        )

    @property
    def stride_blocks(self) -> int:
        return self.stride // self.block_size

    @property
    def c_blocks(self) -> int:
        return max(1, self.c // self.block_size)

    def head_patterns(self, layer_idx: int, num_heads: int) -> list[tuple[int, int, str]]:
        """The head groups of one layer as `(first_head, end_head, pattern)`, pattern in `PATTERNS`."""
        if self.kind == "full":
            return [(0, num_heads, "causal")]
        if self.combine == "alternate":
            return [(0, num_heads, "A" if layer_idx % 2 == 0 else "B")]
        if self.combine == "union":
            return [(0, num_heads, "AB")]
        half = (num_heads + 1) // 2
        groups = [(0, half, "A")]
        if half < num_heads:
            groups.append((half, num_heads, "B"))
        return groups


def _block_rule(layout: SparseLayout, pattern: str, qb: torch.Tensor, kb: torch.Tensor) -> torch.Tensor:
    """Whether query block `qb` may attend to key block `kb` (broadcasting; causality not included).

    Written with plain tensor arithmetic so FlexAttention can trace it as a `mask_mod`.
    """
    L, cb = layout.stride_blocks, layout.c_blocks
    d = qb - kb
    if layout.kind == "strided":
        a = d < L
        b = torch.remainder(d, L) == 0
    else:  # fixed
        a = torch.div(qb, L, rounding_mode="floor") == torch.div(kb, L, rounding_mode="floor")
        # summary blocks, plus the own block so queries before the first summary block see something
        b = (torch.remainder(kb, L) >= L - cb) | (d == 0)
    if pattern == "A":
        return a
    if pattern == "B":
        return b
    return a | b


def pattern_mask(layout: SparseLayout, pattern: str, q_positions: torch.Tensor, k_len: int) -> torch.Tensor:
    """Dense boolean mask of one pattern (True = attend).

    Args:
        q_positions: (Tq,) absolute positions of the queries (keys are positions 0 .. k_len-1).
    Returns:
        (Tq, Tk) bool.
    """
    k_positions = torch.arange(k_len, device=q_positions.device)
    allowed = k_positions[None, :] <= q_positions[:, None]
    if pattern != "causal":
        bs = layout.block_size
        allowed = allowed & _block_rule(layout, pattern, (q_positions // bs)[:, None], (k_positions // bs)[None, :])
    return allowed


def dense_mask(layout: SparseLayout, layer_idx: int, num_heads: int, q_positions: torch.Tensor, k_len: int) -> torch.Tensor:
    """The dense boolean mask of every head of a layer: (H, Tq, Tk), True = attend.

    `q_positions` are absolute query positions, so the rows of a KV-cache decoding step are
    `dense_mask(..., torch.arange(past, past + new), past + new)`.
    """
    rows = []
    for h0, h1, pattern in layout.head_patterns(layer_idx, num_heads):
        rows.append(pattern_mask(layout, pattern, q_positions, k_len)[None].expand(h1 - h0, -1, -1))
    return torch.cat(rows, dim=0)


def block_layout(layout: SparseLayout, layer_idx: int, num_heads: int, num_blocks: int) -> torch.Tensor:
    """The block layout of every head of a layer: (H, nb, nb) bool, True = the block is computed."""
    blocks = torch.arange(num_blocks)
    rows = []
    for h0, h1, pattern in layout.head_patterns(layer_idx, num_heads):
        active = blocks[None, :] <= blocks[:, None]
        if pattern != "causal":
            active = active & _block_rule(layout, pattern, blocks[:, None], blocks[None, :])
        rows.append(active[None].expand(h1 - h0, -1, -1))
    return torch.cat(rows, dim=0)


def layout_density(layout: SparseLayout, layer_idx: int, num_heads: int, seq_len: int) -> float:
    """Fraction of the causal (query, key) pairs that a layer attends to, averaged over heads."""
    mask = dense_mask(layout, layer_idx, num_heads, torch.arange(seq_len), seq_len)
    return mask.sum().item() / (num_heads * seq_len * (seq_len + 1) / 2)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                        dropout_p: float = 0.0) -> torch.Tensor:
    """Plain softmax attention with a dense boolean mask: the reference the backends are tested
    against, and the `eager` backend.

    Args:
        q: (B, H, Tq, D); k, v: (B, H, Tk, D); mask: broadcastable to (B, H, Tq, Tk), True = attend.
        dropout_p: dropout on the attention probabilities.
    Returns:
        (B, H, Tq, D)
    """
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


def _cache_size(k_len: int) -> int:
    return max(256, 1 << (k_len - 1).bit_length())


@functools.lru_cache(maxsize=8)
def _square_mask(layout: SparseLayout, pattern: str, size: int, device: torch.device) -> torch.Tensor:
    if pattern == "diagonal":
        return torch.eye(size, dtype=torch.bool, device=device)
    return pattern_mask(layout, pattern, torch.arange(size, device=device), size)


def _cached_rows(layout: SparseLayout, pattern: str, q_start: int, q_len: int, k_len: int, device) -> torch.Tensor:
    """(Tq, Tk) rows of a pattern's mask, sliced from one square mask built per power-of-two size.

    Training, prefill and every decoding step then share a handful of masks instead of building
    rows at each step (which costs more than the attention of one new token).
    """
    square = _square_mask(layout, pattern, _cache_size(k_len), torch.device(device))
    return square[q_start : q_start + q_len, :k_len]


def _flex_module():
    try:
        from torch.nn.attention import flex_attention as flex

        return flex
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def _compiled_flex_attention():
    return torch.compile(_flex_module().flex_attention, dynamic=False)


_FLEX_COMPILE_FAILED: list = []


def _run_flex(q, k, v, block_mask):
    flex = _flex_module()
    if q.device.type == "cuda" and not _FLEX_COMPILE_FAILED:
        try:
            return _compiled_flex_attention()(q, k, v, block_mask=block_mask)
        except Exception as error:  # no triton / no compiler: eager FlexAttention is slow but exact
            _FLEX_COMPILE_FAILED.append(error)
            logger.warning(f"torch.compile(flex_attention) failed ({error!r}): running FlexAttention eagerly")
    with warnings.catch_warnings():
        # eager FlexAttention (the CPU path) warns that it is not fused: known, and only used for inference
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        return flex.flex_attention(q, k, v, block_mask=block_mask)


def _make_block_mask(layout: SparseLayout, pattern: str, seq_len: int, key_valid: torch.Tensor | None, device):
    flex = _flex_module()
    bs = layout.block_size

    def mask_mod(b, h, q_idx, kv_idx):
        keep = kv_idx <= q_idx
        if pattern != "causal":
            keep = keep & _block_rule(layout, pattern, q_idx // bs, kv_idx // bs)
        if key_valid is not None:
            keep = keep & (key_valid[b, kv_idx] | (kv_idx == q_idx))
        return keep

    batch = None if key_valid is None else key_valid.shape[0]
    return flex.create_block_mask(mask_mod, batch, None, seq_len, seq_len, device=device)


@functools.lru_cache(maxsize=16)
def _cached_block_mask(layout: SparseLayout, pattern: str, seq_len: int, device: torch.device):
    return _make_block_mask(layout, pattern, seq_len, None, device)


def flex_available(device_type: str) -> bool:
    """Whether FlexAttention can run (CUDA for training; the CPU runs it eagerly, forward only)."""
    return _flex_module() is not None and device_type in ("cuda", "cpu")


_LOGGED: set = set()


def _log_once(key, level: str, message: str) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        getattr(logger, level)(message)


# Transformers' `attn_implementation` names and the backends they select
IMPLEMENTATION_BACKENDS = {"sdpa": "sdpa", "flex_attention": "flex", "xformers": "xformers", "eager": "eager"}


def requested_backend(attn_implementation: str | None, attention_backend: str = "auto") -> str:
    """The backend a model asks for: the one its `attn_implementation` names (`sdpa`, `flex_attention`,
    `xformers`, `eager`: see `IMPLEMENTATION_BACKENDS`), or, when none was requested (None), its
    config's `attention_backend` (`auto`, `sdpa`, `flex`, `xformers` or `eager`)."""
    if attn_implementation is None:
        return attention_backend
    if attn_implementation not in IMPLEMENTATION_BACKENDS:
        raise ValueError(
            f"MuseNet's attention runs as one of attn_implementation={list(IMPLEMENTATION_BACKENDS)}, "
            f"got {attn_implementation!r}"
        )
    return IMPLEMENTATION_BACKENDS[attn_implementation]


def resolve_backend(requested: str, layout_kind: str, device: torch.device, dtype: torch.dtype) -> str:
    """Turn a requested backend into the one that runs on `device` (`auto` picks the fastest).

    An explicit `xformers` or `flex` that cannot run here falls back to `sdpa` with one warning.
    """
    device = torch.device(device)
    if requested in ("sdpa", "eager"):
        return requested
    if requested == "flex":
        if flex_available(device.type):
            return "flex"
        _log_once(("fallback", "flex", device.type), "warning", f"FlexAttention is unavailable on {device.type}: using sdpa")
        return "sdpa"
    if requested == "xformers":
        if xformers_available(device.type, dtype):
            return "xformers"
        _log_once(
            ("fallback", "xformers", device.type, dtype),
            "warning",
            f"xformers' kernels do not run on {device.type} ({dtype}): using sdpa",
        )
        return "sdpa"
    if requested != "auto":
        raise ValueError(f"unknown attention backend {requested!r}")
    choice = "sdpa"
    if device.type == "cuda" and layout_kind != "full":
        # sparse layouts: FlexAttention skips empty blocks; flash sdpa already is the best for `full`
        if flex_available("cuda"):
            choice = "flex"
        elif xformers_available("cuda", dtype):
            choice = "xformers"
    _log_once(("auto", layout_kind, device.type, dtype), "info", f"attention backend auto -> {choice} ({device.type})")
    return choice


@functools.lru_cache(maxsize=32)
def xformers_pattern_plan(layout: SparseLayout, pattern: str, batch: int, length: int,
                          device: torch.device) -> PackedAttention:
    """How the `xformers` backend computes one pattern of `batch` full sequences of `length` tokens
    without padding: the decompositions of `structured_attention` as xformers bias objects."""
    bs, L = layout.block_size, layout.stride_blocks
    if pattern == "causal":
        return chunk_plan(batch, length, length, device)
    if layout.kind == "fixed" and pattern == "A":
        return chunk_plan(batch, length, layout.stride, device)
    if layout.kind == "strided" and pattern == "B":
        return residue_plan(batch, length, bs, L, device)
    blocks = torch.arange(-(-length // bs))
    active = (blocks[None, :] <= blocks[:, None]) & _block_rule(layout, pattern, blocks[:, None], blocks[None, :])
    return gathered_plan(active, batch, length, bs, device)


class AttentionPlan:
    """What every layer of one forward pass shares: layout, backend, shapes, padding, built masks.

    The model builds one plan per forward; each layer calls `attend`. Masks are built on first use
    and reused by the later layers (and by the recompute of activation checkpointing).

    Args:
        layout: the attention layout.
        backend: a resolved backend name (`sdpa`, `flex`, `xformers` or `eager`).
        q_len: number of new queries Tq; k_len: number of keys Tk (cached + new), queries sit at
            positions Tk - Tq .. Tk - 1.
        key_valid: (B, Tk) bool, False for padding keys; None when nothing is padded.
        device: where the masks live.
    """

    def __init__(self, layout: SparseLayout, backend: str, q_len: int, k_len: int, key_valid, device):
        self.layout = layout
        self.backend = backend
        self.q_len = q_len
        self.k_len = k_len
        self.q_start = k_len - q_len
        self.key_valid = key_valid
        self.device = torch.device(device)
        self._masks: dict = {}
        self._block_masks: dict[str, object] = {}

    def mask(self, pattern: str) -> torch.Tensor:
        """The boolean mask of one pattern: (B or 1, 1, Tq, Tk)."""
        if pattern not in self._masks:
            rows = (self.layout, pattern, self.q_start, self.q_len, self.k_len, self.device)
            base = _cached_rows(*rows)
            if self.key_valid is None:
                mask = base[None, None]
            else:
                diagonal = _cached_rows(self.layout, "diagonal", *rows[2:])
                mask = base[None, None] & (self.key_valid[:, None, None, :] | diagonal[None, None])
            self._masks[pattern] = mask
        return self._masks[pattern]

    def head_mask(self, groups: list[tuple[int, int, str]]) -> torch.Tensor:
        """The masks of a layer's head groups stacked along the heads: (B or 1, H, Tq, Tk)."""
        key = tuple(groups)
        if key not in self._masks:
            parts = [self.mask(pattern).expand(-1, h1 - h0, -1, -1) for h0, h1, pattern in groups]
            self._masks[key] = torch.cat(parts, dim=1)
        return self._masks[key]

    def block_mask(self, pattern: str):
        """The FlexAttention `BlockMask` of one pattern (full-sequence forwards only)."""
        if pattern not in self._block_masks:
            if self.key_valid is None:
                bm = _cached_block_mask(self.layout, pattern, self.k_len, self.device)
            else:
                bm = _make_block_mask(self.layout, pattern, self.k_len, self.key_valid, self.device)
            self._block_masks[pattern] = bm
        return self._block_masks[pattern]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer_idx: int, dropout_p: float = 0.0):
        """Attention of one layer.

        Args:
            q: (B, H, Tq, D); k, v: (B, H, Tk, D).
        Returns:
            (B, H, Tq, D)
        """
        groups = self.layout.head_patterns(layer_idx, q.shape[1])
        if self.backend == "eager":
            return reference_attention(q, k, v, self.head_mask(groups), dropout_p)
        dense_anyway = self.q_len != self.k_len or (self.key_valid is not None and self.backend in ("sdpa", "xformers"))
        if len(groups) > 1 and dense_anyway:
            # dense masks for every group anyway: one call over all heads beats one call per group
            return F.scaled_dot_product_attention(q, k, v, attn_mask=self.head_mask(groups), dropout_p=dropout_p)
        outs = [self._attend_group(q[:, h0:h1], k[:, h0:h1], v[:, h0:h1], pattern, dropout_p) for h0, h1, pattern in groups]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _attend_group(self, q, k, v, pattern: str, dropout_p: float) -> torch.Tensor:
        backend = self.backend
        if self.q_len != self.k_len:
            backend = "sdpa"  # decoding: a few mask rows, nothing for a sparse kernel to skip
        elif backend == "flex":
            needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
            if pattern == "causal" and self.key_valid is None:
                backend = "sdpa"  # plain causal attention: flash sdpa is the fastest
            elif dropout_p > 0.0 or (needs_grad and q.device.type != "cuda"):
                _log_once(("flex-fallback", q.device.type), "warning", "flex cannot run this (dropout or CPU backward): using sdpa")
                backend = "sdpa"
        if backend == "flex":
            return _run_flex(q, k, v, self.block_mask(pattern))
        if backend == "xformers" and self.key_valid is None:
            plan = xformers_pattern_plan(self.layout, pattern, q.shape[0], self.k_len, self.device)
            return packed_attention(plan, q, k, v, dropout_p)
        return self._sdpa(q, k, v, pattern, dropout_p)  # xformers with padding: sdpa with the mask rows

    def _sdpa(self, q, k, v, pattern: str, dropout_p: float) -> torch.Tensor:
        if self.key_valid is None:
            if pattern == "causal" and self.q_len == self.k_len:
                return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            if pattern == "causal" and self.q_len == 1:  # the newest query sees every key
                return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            if self.q_len == self.k_len and pattern in ("A", "B"):
                return structured_attention(self.layout, pattern, q, k, v, dropout_p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask(pattern), dropout_p=dropout_p)


__all__ = [
    "IMPLEMENTATION_BACKENDS",
    "PATTERNS",
    "AttentionPlan",
    "SparseLayout",
    "block_layout",
    "dense_mask",
    "flex_available",
    "layout_density",
    "pattern_mask",
    "reference_attention",
    "requested_backend",
    "resolve_backend",
    "structured_attention",
    "xformers_available",
    "xformers_pattern_plan",
]
