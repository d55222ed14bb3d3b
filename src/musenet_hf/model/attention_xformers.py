"""The `xformers` backend: the Sparse Transformer patterns as xformers' block-diagonal attention biases.

xformers' `memory_efficient_attention` takes a *varlen* batch: the tokens of many sequences packed
into one `(1, N, H, D)` tensor, and an attention-bias object (`xformers.ops.fmha.attn_bias`) that
says where each sequence's queries and keys start. Its kernels compute the diagonal blocks only, so
a pattern written as "these queries against those keys" runs on its own blocks, and no dense
(T, T) bias exists anywhere. `PackedAttention` is one such call: which tokens of the flattened
batch (B * T positions) become the packed queries and the packed keys/values, and the bias:

- `chunk_plan`: causal attention inside consecutive chunks of a sequence (`fixed` pattern A with
  chunks of one stride; plain causal attention with one chunk): `BlockDiagonalCausalMask`, nothing
  gathered.
- `residue_plan`: `strided` pattern B, causal attention among the blocks of equal index mod L: the
  tokens are reordered so that each residue class is one packed sequence (order kept), then
  `BlockDiagonalCausalMask` over the classes.
- `gathered_plan`: any block pattern given as its (nb, nb) matrix of active blocks (`strided` A's
  local windows, `fixed` B's summary blocks plus the own block, the union of A and B): every query
  block is one packed sequence whose keys are the tokens of its active key blocks, own block last,
  under `BlockDiagonalCausalFromBottomRightMask` (the earlier blocks whole, the own block causal).
  A key block that several query blocks see is copied once for each, as the sdpa path's windows are.

These are the same decompositions the sdpa backend uses (`musenet_hf.model.attention.structured_attention`),
exact for a full sequence without padding; padding and decoding rows use sdpa with the mask rows.
`packed_attention` runs a plan with an engine: xformers' kernel by default, or any function of the
same signature (the tests run sdpa on the materialized biases, which checks the packing on a CPU).

xformers is imported lazily and quietly: a wheel built for another torch logs warnings at import.
`xformers_attention_forward` is the function registered as `"xformers"` in Transformers'
`AttentionInterface` (so `attn_implementation="xformers"` is a valid name); models that dispatch
through that interface get dense xformers attention from it, MuseNet runs its own sparse path.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from dataclasses import dataclass

import torch


@contextlib.contextmanager
def quiet_xformers():
    """Silence xformers' logger and Python warnings: a wheel built for another torch logs warnings."""
    xlogger = logging.getLogger("xformers")
    level = xlogger.level
    xlogger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        xlogger.setLevel(level)


def import_xformers_ops():
    """Import `xformers.ops` quietly (see `quiet_xformers`)."""
    with quiet_xformers():
        import xformers.ops as xops
    return xops


def attn_bias_module():
    """`xformers.ops.fmha.attn_bias`, the bias objects (they import and materialize without the kernels)."""
    return import_xformers_ops().fmha.attn_bias


@functools.lru_cache(maxsize=None)
def xformers_available(device_type: str, dtype: torch.dtype = torch.float16) -> bool:
    """Whether xformers' compiled `memory_efficient_attention` runs on this device type and dtype."""
    if device_type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        xops = import_xformers_ops()
        x = torch.zeros(1, 8, 1, 64, device="cuda", dtype=dtype)
        with quiet_xformers():
            xops.memory_efficient_attention(x, x, x)
        return True
    except Exception:  # no wheel, wrong torch build, no kernel for this GPU or dtype
        return False


@dataclass(frozen=True)
class PackedAttention:
    """One pattern as one varlen xformers call.

    Attributes:
        bias: an xformers `AttentionBias` over the packed queries and keys (never a tensor).
        q_index: (N,) positions in the flattened batch (b * T + t) of the packed queries; None: all
            B * T positions in order.
        k_index: (Nk,) positions of the packed keys and values; None: the same as the queries.
        inverse: (B * T,) where each position's query sits among the packed ones (None with q_index).
    """

    bias: object
    q_index: torch.Tensor | None = None
    k_index: torch.Tensor | None = None
    inverse: torch.Tensor | None = None


def _batched(index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """The positions of one sequence repeated for every sequence of the flattened batch."""
    offsets = torch.arange(batch, device=index.device)[:, None] * length
    return (offsets + index[None, :]).reshape(-1)


def chunk_plan(batch: int, length: int, chunk: int, device) -> PackedAttention:
    """Causal attention inside consecutive chunks of `chunk` tokens (the last one may be shorter)."""
    seqlens = [chunk] * (length // chunk) + ([length % chunk] if length % chunk else [])
    return PackedAttention(attn_bias_module().BlockDiagonalCausalMask.from_seqlens(seqlens * batch, device=device))


def residue_plan(batch: int, length: int, block: int, L: int, device) -> PackedAttention:
    """Causal attention among the blocks whose index is equal mod L, each class one packed sequence."""
    positions = torch.arange(length, device=device)
    residue = (positions // block) % L
    order = torch.argsort(residue * length + positions)  # by class, then by position
    seqlens = [n for n in torch.bincount(residue, minlength=L).tolist() if n > 0]
    q_index = _batched(order, batch, length)
    inverse = torch.empty_like(q_index)
    inverse[q_index] = torch.arange(q_index.numel(), device=device)
    bias = attn_bias_module().BlockDiagonalCausalMask.from_seqlens(seqlens * batch, device=device)
    return PackedAttention(bias, q_index=q_index, inverse=inverse)


def gathered_plan(active: torch.Tensor, batch: int, length: int, block: int, device) -> PackedAttention:
    """Any causal block pattern: every query block against the tokens of its active key blocks.

    Args:
        active: (nb, nb) bool, nb = ceil(length / block): query block i attends to key block j.
            Must hold the diagonal and nothing above it (every Sparse Transformer pattern does).
    """
    active = active.to(device)
    nb = active.shape[0]
    if not bool(active.diagonal().all()) or bool(active.triu(1).any()):
        raise ValueError("a gathered pattern needs every own block and no later block")
    pairs = active.nonzero()  # (P, 2), row-major: per query block its key blocks in order, own block last
    tokens = pairs[:, 1:2] * block + torch.arange(block, device=device)[None, :]  # (P, block)
    real = tokens < length
    k_index = tokens[real]
    k_lens = torch.zeros(nb, dtype=torch.long, device=device).index_add_(0, pairs[:, 0], real.sum(1))
    q_lens = [min(block, length - i * block) for i in range(nb)]
    bias_type = attn_bias_module().BlockDiagonalCausalFromBottomRightMask
    bias = bias_type.from_seqlens(q_lens * batch, k_lens.tolist() * batch, device=device)
    return PackedAttention(bias, k_index=_batched(k_index, batch, length))


def xformers_engine(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias, dropout_p: float) -> torch.Tensor:
    """xformers' kernel on packed (1, N, H, D) tensors."""
    return import_xformers_ops().memory_efficient_attention(q, k, v, attn_bias=bias, p=dropout_p)


def packed_attention(plan: PackedAttention, q, k, v, dropout_p: float = 0.0, engine=None) -> torch.Tensor:
    """Attention of one pattern through its packed form.

    Args:
        q, k, v: (B, H, T, D), a full sequence each (no cache, no padding).
        engine: `f(q, k, v, bias, dropout_p)` on (1, N, H, D) tensors; default `xformers_engine`.
    Returns:
        (B, H, T, D)
    """
    B, H, T, D = q.shape

    def flat(x):  # (B, H, T, D) -> (B * T, H, D), xformers' layout with the batch folded in
        return x.transpose(1, 2).reshape(B * T, H, D)

    queries, keys, values = flat(q), flat(k), flat(v)
    k_index = plan.k_index if plan.k_index is not None else plan.q_index
    if plan.q_index is not None:
        queries = queries.index_select(0, plan.q_index)
    if k_index is not None:
        keys, values = keys.index_select(0, k_index), values.index_select(0, k_index)
    out = (engine or xformers_engine)(queries[None], keys[None], values[None], plan.bias, dropout_p)[0]
    if plan.inverse is not None:
        out = out.index_select(0, plan.inverse)
    return out.reshape(B, T, H, D).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Transformers' AttentionInterface entry, for models that dispatch through it
# ---------------------------------------------------------------------------------------------


def _aligned_bias(mask: torch.Tensor, shape: tuple[int, int, int, int], dtype) -> torch.Tensor:
    """An sdpa-style mask (bool, True = attend, or additive) as the bias tensor xformers takes, its rows
    allocated to a multiple of 16 keys (the alignment the kernels need)."""
    batch, heads, q_len, k_len = shape
    padded = -(-k_len // 16) * 16
    storage = torch.zeros(mask.shape[0], mask.shape[1], q_len, padded, device=mask.device, dtype=dtype)
    bias = storage[..., :k_len]
    if mask.dtype == torch.bool:
        bias.masked_fill_(~mask.expand(-1, -1, q_len, k_len), float("-inf"))
    else:
        bias.copy_(mask.expand(-1, -1, q_len, k_len))
    return bias.expand(batch, heads, q_len, k_len)


def xformers_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                               **kwargs):
    """`attn_implementation="xformers"` for a model that calls `ALL_ATTENTION_FUNCTIONS` (not MuseNet).

    query (B, H, Tq, D), key/value (B, Hkv, Tk, D), `attention_mask` the sdpa-style mask (bool or
    additive, or None for plain causal attention); returns ((B, Tq, H, D), None) like Transformers'
    sdpa function, which computes it instead where xformers' kernels do not run (CPU, dtype).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not xformers_available(query.device.type, query.dtype):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if key.shape[1] != query.shape[1]:  # grouped-query attention: one key/value head per query head
        key, value = (x.repeat_interleave(query.shape[1] // x.shape[1], dim=1) for x in (key, value))
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    ab = attn_bias_module()
    if attention_mask is None:
        bias = ab.LowerTriangularFromBottomRightMask() if causal and query.shape[2] > 1 else None
    else:
        shape = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        bias = _aligned_bias(attention_mask, shape, query.dtype)
    with quiet_xformers():
        out = import_xformers_ops().memory_efficient_attention(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), attn_bias=bias, p=dropout, scale=scaling
        )
    return out, None


def register_xformers_attention() -> None:
    """Make `"xformers"` a valid `attn_implementation` (Transformers' AttentionInterface; safe to call twice)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("xformers", xformers_attention_forward)
    AttentionMaskInterface.register("xformers", sdpa_mask)  # models that build masks get the sdpa kind


__all__ = [
    "PackedAttention",
    "chunk_plan",
    "gathered_plan",
    "packed_attention",
    "register_xformers_attention",
    "residue_plan",
    "xformers_attention_forward",
    "xformers_available",
    "xformers_engine",
]
