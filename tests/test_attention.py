"""Sparse attention layouts and backends against the paper's definitions and a dense reference."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from musenet_hf.model import attention_xformers
from musenet_hf.model.attention import (
    AttentionPlan,
    SparseLayout,
    block_layout,
    dense_mask,
    layout_density,
    pattern_mask,
    reference_attention,
    requested_backend,
    resolve_backend,
    xformers_pattern_plan,
)
from musenet_hf.model.attention_xformers import packed_attention

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
    from musenet_hf.model.attention import pattern_mask

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
    from musenet_hf.model.attention import pattern_mask, structured_attention

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


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_decoding_rows_apply_the_same_layout(layout, backend):
    B, H, T, D = 2, 4, 70, 16
    q, k, v = _qkv(B, H, T, D, seed=5)
    key_valid = _padding(B, T)
    for layer in (0, 1):
        full = AttentionPlan(layout, "sdpa", T, T, None, "cpu").attend(q, k, v, layer)
        padded_full = AttentionPlan(layout, "sdpa", T, T, key_valid, "cpu").attend(q, k, v, layer)
        for start, stop in [(69, 70), (40, 41), (33, 45)]:  # one new token, and a chunk of new tokens
            rows = AttentionPlan(layout, backend, stop - start, stop, None, "cpu")
            out = rows.attend(q[:, :, start:stop], k[:, :, :stop], v[:, :, :stop], layer)
            assert (out - full[:, :, start:stop]).abs().max().item() < 1e-5
            rows = AttentionPlan(layout, backend, stop - start, stop, key_valid[:, :stop], "cpu")
            out = rows.attend(q[:, :, start:stop], k[:, :, :stop], v[:, :, :stop], layer)
            assert (out - padded_full[:, :, start:stop]).abs().max().item() < 1e-5


def test_resolve_backend_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_backend("eager", "strided", cpu, torch.float32) == "eager"
    assert resolve_backend("auto", "strided", cpu, torch.float32) == "sdpa"
    assert resolve_backend("auto", "full", cpu, torch.float32) == "sdpa"
    assert resolve_backend("sdpa", "fixed", cpu, torch.float32) == "sdpa"
    assert resolve_backend("flex", "fixed", cpu, torch.float32) == "flex"
    assert resolve_backend("xformers", "fixed", cpu, torch.float32) == "sdpa"  # its kernels are CUDA-only
    with pytest.raises(ValueError):
        resolve_backend("triton", "full", cpu, torch.float32)


def test_attn_implementation_names_select_backends():
    assert requested_backend(None, "auto") == "auto"  # nothing requested: the config's attention_backend
    assert requested_backend(None, "flex") == "flex"
    expected = {"sdpa": "sdpa", "flex_attention": "flex", "xformers": "xformers", "eager": "eager"}
    for name, backend in expected.items():
        assert requested_backend(name, "auto") == backend == requested_backend(name, "flex")
    with pytest.raises(ValueError):
        requested_backend("flash_attention_2", "auto")


@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_eager_backend_is_the_reference_with_dropout(layout, padded):
    B, H, T, D = 2, 4, 45, 16
    key_valid = _padding(B, T) if padded else None
    q, k, v = _qkv(B, H, T, D, seed=4)
    for layer in (0, 1):
        out = AttentionPlan(layout, "eager", T, T, key_valid, "cpu").attend(q, k, v, layer)
        ref = reference_attention(q, k, v, _reference_mask(layout, layer, H, T, key_valid))
        assert (out - ref).abs().max().item() < 1e-6
    plain = AttentionPlan(layout, "eager", T, T, key_valid, "cpu").attend(q, k, v, 0)
    torch.manual_seed(0)
    dropped = AttentionPlan(layout, "eager", T, T, key_valid, "cpu").attend(q, k, v, 0, dropout_p=0.5)
    assert (dropped - plain).abs().max().item() > 1e-3  # dropout reaches the probabilities


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
        "from musenet_hf.model.attention import AttentionPlan, SparseLayout, resolve_backend\n"
        "for requested in ('auto', 'xformers'):\n"
        "    backend = resolve_backend(requested, 'fixed', torch.device('cpu'), torch.float32)\n"
        "    q = torch.randn(1, 2, 20, 8)\n"
        "    AttentionPlan(SparseLayout('fixed', 4, 8, 4), backend, 20, 20, None, 'cpu').attend(q, q, q, 0)\n"
        "assert 'xformers' not in sys.modules, 'xformers imported eagerly'\n"
        "from musenet_hf.model.attention_xformers import import_xformers_ops\n"
        "try:\n"
        "    import_xformers_ops()\n"
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


# ------------------------------------------------------------------------------------- xformers


def _attn_bias_module():
    try:
        return attention_xformers.attn_bias_module()
    except ImportError as error:
        pytest.skip(f"xformers is not importable: {error}")


def materialized_sdpa_engine(q, k, v, bias, dropout_p):
    """What the xformers backend does, with sdpa on the materialized bias as the kernel.

    q: (1, Nq, H, D), k, v: (1, Nk, H, D) packed as the xformers path packs them; returns (1, Nq, H, D).
    """
    mask = bias.materialize((q.shape[1], k.shape[1]), dtype=q.dtype, device=q.device)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                         dropout_p=dropout_p)
    return out.transpose(1, 2)


def _packed_area(bias, batch: int) -> int:
    """(query, key) pairs of the rectangles the bias puts on the diagonal, per sequence of the batch."""
    pairs = zip(bias.q_seqinfo.intervals(), bias.k_seqinfo.intervals())
    return sum((q1 - q0) * (k1 - k0) for (q0, q1), (k0, k1) in pairs) // batch


XFORMERS_BIAS = {("fixed", "A"): "BlockDiagonalCausalMask", ("strided", "B"): "BlockDiagonalCausalMask",
                 ("fixed", "causal"): "BlockDiagonalCausalMask", ("strided", "causal"): "BlockDiagonalCausalMask"}


@pytest.mark.parametrize("pattern", ["A", "B", "AB", "causal"])
@pytest.mark.parametrize("kind", ["strided", "fixed"])
@pytest.mark.parametrize("block,stride,c", [(4, 12, 8), (8, 16, 8)], ids=["b4-s12", "b8-s16"])
def test_xformers_bias_objects_compute_the_layout_exactly(kind, pattern, block, stride, c):
    """The xformers backend's packing and bias objects, run with sdpa on the materialized biases,
    equal the dense reference (forward and gradients), also at lengths that do not divide into
    blocks or strides; every bias is an xformers bias object, never a layout-sized tensor."""
    ab = _attn_bias_module()
    layout = SparseLayout(kind, block_size=block, stride=stride, c=c, combine="union")
    expected_bias = getattr(ab, XFORMERS_BIAS.get((kind, pattern), "BlockDiagonalCausalFromBottomRightMask"))
    for T in (1, 3, block, block + 1, stride, 2 * stride + 3, 50):
        plan = xformers_pattern_plan(layout, pattern, 2, T, torch.device("cpu"))
        assert isinstance(plan.bias, ab.AttentionBias) and not isinstance(plan.bias, torch.Tensor)
        assert type(plan.bias) is expected_bias
        for index in (plan.q_index, plan.k_index, plan.inverse):
            assert index is None or index.dim() == 1
        q, k, v = _qkv(2, 3, T, 8, seed=T, requires_grad=True)
        out = packed_attention(plan, q, k, v, engine=materialized_sdpa_engine)
        ref = reference_attention(q, k, v, pattern_mask(layout, pattern, torch.arange(T), T))
        assert (out - ref).abs().max().item() < 1e-5, (T, pattern)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, 8)).sum(), (q, k, v))
        ref_grads = torch.autograd.grad((ref * torch.linspace(-1, 1, 8)).sum(), (q, k, v))
        for g, r in zip(grads, ref_grads):
            assert (g - r).abs().max().item() < 1e-5, (T, pattern)


@pytest.mark.parametrize("kind", ["strided", "fixed"])
def test_xformers_packing_skips_the_empty_blocks(kind):
    """At 512 tokens the rectangles xformers computes for a sparse pattern cover a fraction of T^2
    (a dense bias would cover all of it); plain causal attention is one T x T rectangle per sequence."""
    _attn_bias_module()
    layout = SparseLayout(kind, block_size=16, stride=64, c=16, combine="union")
    T = 512
    for pattern in ("A", "B", "AB"):
        plan = xformers_pattern_plan(layout, pattern, 2, T, torch.device("cpu"))
        area = _packed_area(plan.bias, 2)
        assert area <= 0.3 * T * T, (pattern, area / T / T)
    assert _packed_area(xformers_pattern_plan(layout, "causal", 2, T, torch.device("cpu")).bias, 2) == T * T


@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_xformers_backend_matches_reference_with_sdpa_as_its_kernel(layout, padded, monkeypatch):
    """The whole `xformers` backend of AttentionPlan (head groups, padding fallback) with xformers'
    kernel swapped for sdpa on the materialized bias, which runs on a CPU."""
    ab = _attn_bias_module()
    biases = []

    def engine(q, k, v, bias, dropout_p):
        biases.append(bias)
        return materialized_sdpa_engine(q, k, v, bias, dropout_p)

    monkeypatch.setattr(attention_xformers, "xformers_engine", engine)
    B, H, T, D = 2, 4, 45, 16
    key_valid = _padding(B, T) if padded else None
    for layer in (0, 1):
        q, k, v = _qkv(B, H, T, D, seed=layer, requires_grad=True)
        out = AttentionPlan(layout, "xformers", T, T, key_valid, "cpu").attend(q, k, v, layer)
        ref = reference_attention(q, k, v, _reference_mask(layout, layer, H, T, key_valid))
        assert (out - ref).abs().max().item() < 1e-5
        grads = torch.autograd.grad(out.sum(), (q, k, v))
        ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
        for g, r in zip(grads, ref_grads):
            assert (g - r).abs().max().item() < 1e-5
    # without padding every head group ran through the packed xformers call; padding uses sdpa rows
    groups = sum(len(layout.head_patterns(layer, H)) for layer in (0, 1))
    assert len(biases) == (0 if padded else groups)
    assert all(isinstance(b, ab.AttentionBias) for b in biases)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["flex", "xformers", "sdpa"])
def test_gpu_backends_match_reference(backend):
    for layout in LAYOUTS:
        for padded in (False, True):
            _check_gpu_backend(layout, padded, backend)


def _check_gpu_backend(layout, padded, backend):
    from musenet_hf.model.attention import xformers_available

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


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["strided", "fixed"])
def test_xformers_kernel_runs_the_packed_patterns_on_cuda(kind):
    """xformers' own kernel on the packed patterns against the float32 reference, at a length that
    is not a multiple of the block or the stride."""
    from musenet_hf.model.attention import xformers_available

    dtype = torch.bfloat16
    if not xformers_available("cuda", dtype):
        pytest.skip("xformers kernels do not load with this torch")
    layout = SparseLayout(kind, block_size=64, stride=256, c=64, combine="union")
    for T in (1000, 1024):
        for pattern in ("A", "B", "AB", "causal"):
            plan = xformers_pattern_plan(layout, pattern, 2, T, torch.device("cuda"))
            q, k, v = (x.cuda().to(dtype).requires_grad_(True) for x in _qkv(2, 4, T, 64, seed=T))
            out = packed_attention(plan, q, k, v)
            grads = torch.autograd.grad(out.float().sum(), (q, k, v))
            q2, k2, v2 = (x.detach().float().clone().requires_grad_(True) for x in (q, k, v))
            ref = reference_attention(q2, k2, v2, pattern_mask(layout, pattern, torch.arange(T, device="cuda"), T))
            ref_grads = torch.autograd.grad(ref.sum(), (q2, k2, v2))
            assert (out.float() - ref).abs().max().item() < 3e-2, (T, pattern)
            for g, r in zip(grads, ref_grads):
                assert (g.float() - r).abs().max().item() < 3e-1, (T, pattern)
