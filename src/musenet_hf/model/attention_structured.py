"""Block-structured sdpa: patterns A and B of a sparse layout as small dense problems.

Exact for full sequences without padding and without a cache (the `sdpa` backend of
:mod:`musenet_hf.model.attention` uses it there): `fixed` A is causal attention inside stride chunks,
`strided` B causal attention over the blocks of each residue mod L, `strided` A attention over
local key windows, `fixed` B attention over the summary tokens plus the own block. Shapes that do
not divide into blocks or strides are padded inside, which never changes a real row. The `xformers`
backend packs the same decompositions for its varlen kernels (:mod:`musenet_hf.model.attention_xformers`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad (B, H, T, D) to `length` positions at the end (padded keys come after every real query)."""
    return x if x.shape[2] == length else F.pad(x, (0, 0, 0, length - x.shape[2]))


def _chunked_causal(q, k, v, chunk: int, dropout_p: float) -> torch.Tensor:
    """`fixed` A: causal attention inside consecutive chunks of `chunk` tokens."""
    B, H, T, D = q.shape
    Tp = -(-T // chunk) * chunk
    q, k, v = (_pad_to(x, Tp).reshape(B, H * (Tp // chunk), chunk, D) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    return out.reshape(B, H, Tp, D)[:, :, :T]


def _residue_causal(q, k, v, block: int, L: int, dropout_p: float) -> torch.Tensor:
    """`strided` B: blocks whose distance is a multiple of L, i.e. blocks of equal index mod L.

    Gathering the blocks of each residue into one sequence (order kept) turns the pattern into
    plain causal attention over L sequences of T / L tokens.
    """
    B, H, T, D = q.shape
    Tp = -(-T // (block * L)) * block * L
    m = Tp // (block * L)

    def group(x):  # (B, H, Tp, D) -> (B, H * L, m * block, D): block r * L + g goes to group g, row r
        return _pad_to(x, Tp).reshape(B, H, m, L, block, D).transpose(2, 3).reshape(B, H * L, m * block, D)

    out = F.scaled_dot_product_attention(group(q), group(k), group(v), dropout_p=dropout_p, is_causal=True)
    return out.reshape(B, H, L, m, block, D).transpose(2, 3).reshape(B, H, Tp, D)[:, :, :T]


@functools.lru_cache(maxsize=16)
def _window_mask(num_blocks: int, block: int, L: int, device: torch.device) -> torch.Tensor:
    """(1, nb, block, L * block) mask of the local windows: causal, and no keys before position 0.

    Four dimensions on purpose: the CPU flash kernel takes 2-D or 4-D masks only (3-D falls back to
    the much slower math kernel).
    """
    w = torch.arange(L * block, device=device)
    r = torch.arange(block, device=device)
    qb = torch.arange(num_blocks, device=device)
    causal = w[None, :] <= (L - 1) * block + r[:, None]
    started = w[None, :] >= ((L - 1 - qb) * block)[:, None]
    return (causal[None] & started[:, None, :])[None]


def _local_window(q, k, v, block: int, L: int, dropout_p: float) -> torch.Tensor:
    """`strided` A: each query block attends to its own and the L - 1 previous key blocks."""
    B, H, T, D = q.shape
    Tp = -(-T // block) * block
    nb = Tp // block
    front = (L - 1) * block

    def windows(x):  # (B, H, T, D) -> (B * H, nb, L * block, D): the key window of every query block
        x = F.pad(_pad_to(x, Tp), (0, 0, front, 0))
        return x.unfold(2, L * block, block).transpose(-1, -2).reshape(B * H, nb, L * block, D)

    queries = _pad_to(q, Tp).reshape(B * H, nb, block, D)
    mask = _window_mask(nb, block, L, q.device)
    out = F.scaled_dot_product_attention(queries, windows(k), windows(v), attn_mask=mask, dropout_p=dropout_p)
    return out.reshape(B, H, Tp, D)[:, :, :T]


@functools.lru_cache(maxsize=16)
def _summary_plan(num_blocks: int, block: int, L: int, cb: int, device: torch.device):
    """Positions of the summary tokens and the (1, nb, block, S + block) mask of `fixed` B."""
    blocks = torch.arange(num_blocks, device=device)
    summary_blocks = blocks[blocks % L >= L - cb]
    positions = (summary_blocks[:, None] * block + torch.arange(block, device=device)).reshape(-1)
    earlier = summary_blocks.repeat_interleave(block)[None, None, :] < blocks[:, None, None]  # (nb, 1, S)
    own = torch.ones(block, block, dtype=torch.bool, device=device).tril()  # causal inside the own block
    mask = torch.cat([earlier.expand(num_blocks, block, -1), own.expand(num_blocks, -1, -1)], dim=-1)
    return positions, mask[None]


def _summary(q, k, v, block: int, L: int, cb: int, dropout_p: float) -> torch.Tensor:
    """`fixed` B: the summary tokens of earlier blocks, plus the own block (causal)."""
    B, H, T, D = q.shape
    Tp = -(-T // block) * block
    nb = Tp // block
    positions, mask = _summary_plan(nb, block, L, cb, q.device)

    def keys(x):  # (B, H, T, D) -> (B * H, nb, S + block, D)
        x = _pad_to(x, Tp)
        summary = x.index_select(2, positions).reshape(B * H, 1, -1, D).expand(-1, nb, -1, -1)
        own = x.reshape(B * H, nb, block, D)
        return torch.cat([summary, own], dim=2)

    queries = _pad_to(q, Tp).reshape(B * H, nb, block, D)
    out = F.scaled_dot_product_attention(queries, keys(k), keys(v), attn_mask=mask, dropout_p=dropout_p)
    return out.reshape(B, H, Tp, D)[:, :, :T]


def structured_attention(layout, pattern: str, q, k, v, dropout_p: float = 0.0) -> torch.Tensor | None:
    """Pattern A or B of a sparse layout computed on its blocks only, or None where that does not apply.

    Exact for a full sequence without padding (q, k, v: (B, H, T, D)); far less work than the dense
    mask, which still computes every pair and, on the CPU, materializes the scores. `layout` is a
    `musenet_hf.model.attention.SparseLayout`.
    """
    bs, L = layout.block_size, layout.stride_blocks
    if layout.kind == "fixed" and pattern == "A":
        return _chunked_causal(q, k, v, layout.stride, dropout_p)
    if layout.kind == "fixed" and pattern == "B":
        return _summary(q, k, v, bs, L, layout.c_blocks, dropout_p)
    if layout.kind == "strided" and pattern == "A":
        return _local_window(q, k, v, bs, L, dropout_p)
    if layout.kind == "strided" and pattern == "B":
        return _residue_causal(q, k, v, bs, L, dropout_p)
    return None


__all__ = ["structured_attention"]
