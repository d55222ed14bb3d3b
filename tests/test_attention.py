"""Sparse attention layouts and backends against the paper's definitions and a dense reference."""

import subprocess
import sys

import pytest
import torch

from musenet_hf.attention import (
    AttentionPlan,
    SparseLayout,
    block_layout,
    dense_mask,
    layout_density,
    reference_attention,
    resolve_backend,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


LAYOUTS = [
    SparseLayout("full"),
    *[SparseLayout("strided", block_size=8, stride=32, combine=c) for c in ("alternate", "split_heads", "union")],
    *[SparseLayout("fixed", block_size=8, stride=32, c=16, combine=c) for c in ("alternate", "split_heads", "union")],
]
LAYOUT_IDS = [f"{lay.kind}-{lay.combine}" for lay in LAYOUTS]
CUDA = torch.cuda.is_available()


def brute_force_allowed(kind: str, pattern: str, i: int, j: int, block: int, stride: int, c: int) -> bool:
    """The Sparse Transformer patterns written out per token pair, block granular (Child et al. 2019)."""
    if j > i:
        return False
    if pattern == "causal":
        return True
    qb, kb, L, cb = i // block, j // block, stride // block, c // block
    if kind == "strided":
        a = qb - L < kb <= qb
        b = (qb - kb) % L == 0
    else:
        a = qb // L == kb // L
        b = kb % L >= L - cb or kb == qb
    return {"A": a, "B": b, "AB": a or b}[pattern]


@pytest.mark.parametrize("kind", ["strided", "fixed"])
@pytest.mark.parametrize("pattern", ["A", "B", "AB"])
def test_dense_masks_follow_the_paper_definitions(kind, pattern):
    layout = SparseLayout(kind, block_size=4, stride=12, c=8, combine="union")
    T = 50
    from musenet_hf.attention import pattern_mask

    mask = pattern_mask(layout, pattern, torch.arange(T), T)
    expected = torch.tensor(
        [[brute_force_allowed(kind, pattern, i, j, 4, 12, 8) for j in range(T)] for i in range(T)]
    )
    assert torch.equal(mask, expected)
    assert mask.diagonal().all()  # no query row is ever empty


def test_combine_modes_assign_patterns_to_layers_and_heads():
    strided = dict(kind="strided", block_size=8, stride=32)
    assert SparseLayout(**strided, combine="alternate").head_patterns(0, 6) == [(0, 6, "A")]
    assert SparseLayout(**strided, combine="alternate").head_patterns(3, 6) == [(0, 6, "B")]
    assert SparseLayout(**strided, combine="split_heads").head_patterns(1, 6) == [(0, 3, "A"), (3, 6, "B")]
    assert SparseLayout(**strided, combine="split_heads").head_patterns(0, 5) == [(0, 3, "A"), (3, 5, "B")]
    assert SparseLayout(**strided, combine="union").head_patterns(0, 4) == [(0, 4, "AB")]
    assert SparseLayout("full").head_patterns(7, 4) == [(0, 4, "causal")]

    layout = SparseLayout(**strided, combine="split_heads")
    masks = dense_mask(layout, 0, 4, torch.arange(100), 100)
    assert masks.shape == (4, 100, 100)
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[2], masks[3])
    assert not torch.equal(masks[0], masks[2])
    # the union is exactly A or B
    union = dense_mask(SparseLayout(**strided, combine="union"), 0, 1, torch.arange(100), 100)[0]
    assert torch.equal(union, masks[0] | masks[2])


@pytest.mark.parametrize("layout", LAYOUTS[1:], ids=LAYOUT_IDS[1:])
def test_block_layout_covers_exactly_the_dense_mask(layout):
    T, bs = 96, layout.block_size
    for layer in (0, 1):
        dense = dense_mask(layout, layer, 4, torch.arange(T), T)
        blocks = block_layout(layout, layer, 4, T // bs)
        # a block is active iff some token pair inside it is attended
        pooled = dense.view(4, T // bs, bs, T // bs, bs).any(dim=4).any(dim=2)
        assert torch.equal(blocks, pooled)


def test_density_at_4096_tokens():
    full = SparseLayout("full")
    strided = SparseLayout("strided", block_size=64, stride=512, combine="split_heads")
    fixed = SparseLayout("fixed", block_size=64, stride=512, c=64, combine="split_heads")
    assert layout_density(full, 0, 2, 4096) == pytest.approx(1.0)
    d_strided, d_fixed = layout_density(strided, 0, 2, 4096), layout_density(fixed, 0, 2, 4096)
    print(f"density at 4096 (of causal): strided {d_strided:.3f}, fixed {d_fixed:.3f}")
    assert 0.05 < d_strided < 0.25 and 0.05 < d_fixed < 0.25


def _qkv(B, H, T, D, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g).requires_grad_(requires_grad) for _ in range(3)]


def _reference_mask(layout, layer, H, T, key_valid=None, q_start=0):
    mask = dense_mask(layout, layer, H, torch.arange(q_start, T), T)[None]
    if key_valid is not None:
        diagonal = torch.arange(T)[None, :] == torch.arange(q_start, T)[:, None]
        mask = mask & (key_valid[:, None, None, :] | diagonal)
    return mask


def _padding(B, T):
    key_valid = torch.ones(B, T, dtype=torch.bool)
    key_valid[0, :11] = False  # left padding
    key_valid[1, -5:] = False  # right padding
    return key_valid


@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_sdpa_matches_reference_forward_and_gradients(layout, padded):
    B, H, T, D = 2, 4, 77, 16
    key_valid = _padding(B, T) if padded else None
    for layer in (0, 1):
        q, k, v = _qkv(B, H, T, D, seed=layer, requires_grad=True)
        out = AttentionPlan(layout, "sdpa", T, T, key_valid, "cpu").attend(q, k, v, layer)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, D)).sum(), (q, k, v))

        q2, k2, v2 = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
        ref = reference_attention(q2, k2, v2, _reference_mask(layout, layer, H, T, key_valid))
        ref_grads = torch.autograd.grad((ref * torch.linspace(-1, 1, D)).sum(), (q2, k2, v2))

        assert (out - ref).abs().max().item() < 1e-5
        for g, r in zip(grads, ref_grads):
            assert (g - r).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", ["strided", "fixed"])
def test_block_structured_patterns_match_reference_at_every_length(kind):
    """The sdpa backend computes patterns A and B on their blocks only; shapes that do not divide
    into blocks or strides are padded inside, which must never change a real row."""
    from musenet_hf.attention import pattern_mask, structured_attention

    layout = SparseLayout(kind, block_size=4, stride=12, c=8)
    for T in (1, 3, 4, 11, 12, 13, 25, 48, 50):
        q, k, v = _qkv(2, 3, T, 8, seed=T, requires_grad=True)
        for pattern in ("A", "B"):
            out = structured_attention(layout, pattern, q, k, v)
            ref = reference_attention(q, k, v, pattern_mask(layout, pattern, torch.arange(T), T))
            assert (out - ref).abs().max().item() < 1e-5, (T, pattern)
            grads = torch.autograd.grad(out.sum(), (q, k, v))
            ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
            for g, r in zip(grads, ref_grads):
                assert (g - r).abs().max().item() < 1e-5, (T, pattern)


@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_flex_matches_reference_forward_on_cpu(layout, padded):
    # PyTorch has no FlexAttention backward on the CPU: the forward is checked here, gradients on CUDA.
    B, H, T, D = 2, 4, 45, 16
    key_valid = _padding(B, T) if padded else None
    q, k, v = _qkv(B, H, T, D, seed=3)
    for layer in (0, 1):
        with torch.no_grad():
            out = AttentionPlan(layout, "flex", T, T, key_valid, "cpu").attend(q, k, v, layer)
        ref = reference_attention(q, k, v, _reference_mask(layout, layer, H, T, key_valid))
        assert (out - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_decoding_rows_apply_the_same_layout(layout):
    B, H, T, D = 2, 4, 70, 16
    q, k, v = _qkv(B, H, T, D, seed=5)
    key_valid = _padding(B, T)
    for layer in (0, 1):
        full = AttentionPlan(layout, "sdpa", T, T, None, "cpu").attend(q, k, v, layer)
        padded_full = AttentionPlan(layout, "sdpa", T, T, key_valid, "cpu").attend(q, k, v, layer)
        for start, stop in [(69, 70), (40, 41), (33, 45)]:  # one new token, and a chunk of new tokens
            rows = AttentionPlan(layout, "sdpa", stop - start, stop, None, "cpu")
            out = rows.attend(q[:, :, start:stop], k[:, :, :stop], v[:, :, :stop], layer)
            assert (out - full[:, :, start:stop]).abs().max().item() < 1e-5
            rows = AttentionPlan(layout, "sdpa", stop - start, stop, key_valid[:, :stop], "cpu")
            out = rows.attend(q[:, :, start:stop], k[:, :, :stop], v[:, :, :stop], layer)
            assert (out - padded_full[:, :, start:stop]).abs().max().item() < 1e-5


def test_resolve_backend_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", "strided", cpu, torch.float32) == "sdpa"
    assert resolve_backend("auto", "full", cpu, torch.float32) == "sdpa"
    assert resolve_backend("sdpa", "fixed", cpu, torch.float32) == "sdpa"
    assert resolve_backend("flex", "fixed", cpu, torch.float32) == "flex"
    assert resolve_backend("xformers", "fixed", cpu, torch.float32) == "sdpa"  # its kernels are CUDA-only
    with pytest.raises(ValueError):
        resolve_backend("triton", "full", cpu, torch.float32)


def test_flex_falls_back_to_sdpa_for_cpu_training():
    layout = LAYOUTS[2]
    q, k, v = _qkv(1, 4, 40, 8, requires_grad=True)
    out = AttentionPlan(layout, "flex", 40, 40, None, "cpu").attend(q, k, v, 0)
    out.sum().backward()  # would raise inside FlexAttention on the CPU
    ref = reference_attention(q, k, v, _reference_mask(layout, 0, 4, 40))
    assert (out - ref).abs().max().item() < 1e-5


def test_xformers_is_lazy_and_silent():
    """Resolving and running attention never imports xformers on the CPU; importing it prints nothing."""
    script = (
        "import sys, torch\n"
        "from musenet_hf.attention import AttentionPlan, SparseLayout, resolve_backend\n"
        "for requested in ('auto', 'xformers'):\n"
        "    backend = resolve_backend(requested, 'fixed', torch.device('cpu'), torch.float32)\n"
        "    q = torch.randn(1, 2, 20, 8)\n"
        "    AttentionPlan(SparseLayout('fixed', 4, 8, 4), backend, 20, 20, None, 'cpu').attend(q, q, q, 0)\n"
        "assert 'xformers' not in sys.modules, 'xformers imported eagerly'\n"
        "from musenet_hf.attention import _import_xformers_ops\n"
        "try:\n"
        "    _import_xformers_ops()\n"
        "except ImportError:\n"
        "    pass\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    # the only line on stderr is our own one-time note about the explicit request falling back
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["xformers' kernels do not run on cpu (torch.float32): using sdpa"], result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["flex", "xformers", "sdpa"])
def test_gpu_backends_match_reference(backend):
    for layout in LAYOUTS:
        for padded in (False, True):
            _check_gpu_backend(layout, padded, backend)


def _check_gpu_backend(layout, padded, backend):
    from musenet_hf.attention import xformers_available

    dtype = torch.float32
    if backend == "xformers":
        dtype = torch.bfloat16
        if not xformers_available("cuda", dtype):
            pytest.skip("xformers kernels do not load with this torch")
    # float32 as on the CPU; xformers' kernels take bfloat16, compared at bfloat16 precision
    tol, grad_tol = (1e-5, 1e-4) if dtype == torch.float32 else (3e-2, 3e-1)
    torch.backends.cuda.matmul.allow_tf32 = False
    B, H, T, D = 2, 4, 256, 64
    key_valid = _padding(B, T).cuda() if padded else None
    for layer in (0, 1):
        q, k, v = (x.cuda().to(dtype).requires_grad_(True) for x in _qkv(B, H, T, D, seed=layer))
        out = AttentionPlan(layout, backend, T, T, key_valid, "cuda").attend(q, k, v, layer)
        grads = torch.autograd.grad(out.float().sum(), (q, k, v))
        q2, k2, v2 = (x.detach().float().clone().requires_grad_(True) for x in (q, k, v))
        mask = _reference_mask(layout, layer, H, T, key_valid.cpu() if padded else None).cuda()
        ref = reference_attention(q2, k2, v2, mask)
        ref_grads = torch.autograd.grad(ref.sum(), (q2, k2, v2))
        assert (out.float() - ref).abs().max().item() < tol
        for g, r in zip(grads, ref_grads):
            assert (g.float() - r).abs().max().item() < grad_tol
