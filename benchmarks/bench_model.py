"""MuseNetForCausalLM against transformers' GPT2LMHeadModel: training and generate() speed, sparse attention.

Four measurements, one run:

1. Training tokens/s (forward, backward, AdamW step) of MuseNet with every structural embedding
   and the critic on (`full` layout, and the config's sparse layout) against a GPT-2 of the same
   depth, width, heads, vocabulary, context and batch. The models take turns, step by step, so a
   change in the machine's load hits all of them alike.
2. `generate()` tokens/s with the KV cache (greedy, batch 1), same models.
3. Attention alone at `--attention-tokens` tokens (default 4096), 8 heads x 64, `--attention-dtype`
   (default float32): time of forward + backward and the peak memory it adds, for every layout and
   every backend that runs on the device (FlexAttention has no CPU backward: forward only there;
   xformers' kernels run on CUDA only, a row says so where they do not load), and each sparse
   layout's time as a share of the same backend's `full` (dense causal) time. Each case runs in a
   fresh process so its peak memory is its own.
4. float32 against bfloat16 autocast (`torch.autocast(device, dtype=torch.bfloat16)`, what
   `accelerate` does with `mixed_precision="bf16"`): training tokens/s of the model
   `configs/experiments/small-cpu.yaml` trains (musenet-small with the extended vocabulary, 512-token
   context, full attention, batch 8), built by `musenet_hf.training.training_config.build_model` from that YAML,
   one training step as the trainer takes it (forward and backward under autocast, gradient
   clipping, AdamW with the YAML's settings). The two precisions take turns (fp32, bf16, bf16,
   fp32, ...; `--steps` steps a turn, `--dtype-rounds` turns each, after `--warmup` steps each), so
   the load of other processes hits both alike; the report gives the ratio bf16/fp32 and whether the
   CPU has bf16 instructions (`/proc/cpuinfo` flags `amx_bf16`, `avx512_bf16`).

On the CPU the speeds are CPU seconds of this process (`time.process_time`), which other
processes on a shared machine disturb far less than wall time; wall-clock numbers are printed too.
The model size of sections 1-3 is `configs/musenet-small.json` (8 layers, 384 wide, 6 heads, 1024 context).

    python benchmarks/bench_model.py [--threads 1] [--device cpu] [--batch 1] [--steps 3]
    python benchmarks/bench_model.py --dtype-compare [--threads 1] [--steps 3]   # section 4 only
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "configs" / "musenet-small.json"
SMALL_CPU = REPO / "configs" / "experiments" / "small-cpu.yaml"
LAYOUTS_4096 = {
    "full": dict(kind="full"),
    "strided": dict(kind="strided", block_size=64, stride=512, combine="split_heads"),
    "fixed": dict(kind="fixed", block_size=64, stride=512, c=64, combine="split_heads"),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def build_models(device: torch.device):
    from transformers import GPT2LMHeadModel

    from musenet_hf.model.baseline import gpt2_config_for
    from musenet_hf.model.configuration_musenet import MuseNetConfig
    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

    sparse = MuseNetConfig.from_json_file(SMALL)
    full = MuseNetConfig.from_json_file(SMALL)
    full.attention_layout = "full"
    gpt2 = gpt2_config_for(sparse)  # same depth, width, heads, MLP, dropout, vocabulary, context
    torch.manual_seed(0)
    models = {
        "GPT2LMHeadModel": GPT2LMHeadModel(gpt2),
        "MuseNet (full attention)": MuseNetForCausalLM(full),
        f"MuseNet ({sparse.attention_layout}, {sparse.attention_combine})": MuseNetForCausalLM(sparse),
    }
    return {name: model.to(device) for name, model in models.items()}, sparse


def musenet_kwargs(name: str, batch: int, device: torch.device, training: bool) -> dict:
    if not name.startswith("MuseNet"):
        return {}
    kwargs = {"piece_seconds": torch.full((batch,), 120.0, device=device)}
    if training:
        kwargs["time_offset_seconds"] = torch.full((batch,), 30.0, device=device)
        kwargs["critic_labels"] = torch.ones(batch, device=device)
    return kwargs


def bench_training(models, config, batch: int, steps: int, device: torch.device) -> dict:
    length = config.max_position_embeddings
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator).to(device)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}

    def step(name):
        model = models[name]
        out = model(ids, labels=ids, use_cache=False, **musenet_kwargs(name, batch, device, True))
        out.loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    times = {name: [] for name in models}
    for model in models.values():
        model.train()
    for name in models:  # warm-up: allocator, mask caches, first-call dispatch
        step(name)
    for _ in range(steps):
        for name in models:
            times[name].append(timed(lambda: step(name), device))
    return summarize(times, batch * length)


def bench_generate(models, prompt_len: int, new_tokens: int, rounds: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 3968, (1, prompt_len), generator=generator).to(device)
    for model in models.values():
        model.eval()

    def run(name, n):
        kwargs = musenet_kwargs(name, 1, device, False)
        models[name].generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, **kwargs)

    for name in models:
        run(name, 8)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name in models:
            times[name].append(timed(lambda: run(name, new_tokens), device))
    return summarize(times, new_tokens)


def summarize(times: dict, tokens: int) -> dict:
    """tokens/s from the median wall and CPU time of each model."""
    out = {}
    for name, samples in times.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        out[name] = {"wall_tok_s": tokens / wall, "cpu_tok_s": tokens / cpu}
    return out


def print_speed_table(title: str, results: dict, device: torch.device) -> None:
    key = "cpu_tok_s" if device.type == "cpu" else "wall_tok_s"
    base = results["GPT2LMHeadModel"][key]
    print(f"\n### {title}\n")
    print("| model | tokens/s | ratio to GPT-2 | wall-clock tokens/s |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r[key]:,.0f} | {r[key] / base:.2f} | {r['wall_tok_s']:,.0f} |")


def proc_status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> int:
    """Reset the peak resident size to the current one (Linux `clear_refs` 5); return the current size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return proc_status_bytes("VmRSS")
    except OSError:  # without the reset, the peak so far is the best baseline there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def attention_case(layout_name: str, backend: str, tokens: int, device: torch.device, repeats: int,
                   dtype: torch.dtype = torch.float32) -> dict:
    """One attention measurement (run in its own process): time and added peak memory."""
    from musenet_hf.model.attention import AttentionPlan, SparseLayout, layout_density

    layout = SparseLayout(**LAYOUTS_4096[layout_name])
    heads, dim = 8, 64
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, dim, generator=generator).to(device, dtype) for _ in range(3))
    backward = not (backend == "flex" and device.type == "cpu")  # no FlexAttention backward on the CPU
    for x in (q, k, v):
        x.requires_grad_(backward)

    def run():
        with torch.set_grad_enabled(backward):
            out = AttentionPlan(layout, backend, tokens, tokens, None, device).attend(q, k, v, 0)
            if backward:
                out.sum().backward()

    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = reset_peak_rss()
    run()  # the first call builds (and caches) the masks: its peak counts, its time does not
    synchronize(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = proc_status_bytes("VmHWM") - base
    if not backward:
        repeats = 1  # eager FlexAttention on the CPU takes seconds a call: one timed call is enough
    seconds = min(timed(run, device)[0] for _ in range(repeats))
    return {
        "layout": layout_name,
        "backend": backend,
        "pass": "forward+backward" if backward else "forward",
        "density": layout_density(layout, 0, heads, tokens),
        "seconds": seconds,
        "peak_mib": max(peak, 0) / 2**20,
    }


def bench_attention(tokens: int, device: torch.device, threads: int, repeats: int, dtype_name: str) -> list[dict]:
    from musenet_hf.model.attention import flex_available, xformers_available

    backends = ["sdpa"]
    if flex_available(device.type):
        backends.append("flex")
    rows = []
    if xformers_available(device.type, getattr(torch, dtype_name)):
        backends.append("xformers")  # block-sparse through its varlen bias objects, `full` as plain causal
    elif device.type == "cuda":
        rows.append({"layout": "all", "backend": "xformers", "error": f"its kernels do not load here ({dtype_name})"})
    for layout_name in LAYOUTS_4096:
        for backend in backends:
            if layout_name == "full" and backend == "flex":
                continue  # plain causal attention: the flex backend runs flash sdpa itself
            cmd = [
                sys.executable,
                __file__,
                "--attention-case",
                f"{layout_name},{backend}",
                "--attention-tokens",
                str(tokens),
                "--device",
                device.type,
                "--threads",
                str(threads),
                "--repeats",
                str(repeats),
                "--attention-dtype",
                dtype_name,
            ]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                rows.append({"layout": layout_name, "backend": backend, "error": result.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def print_attention_table(rows: list[dict], tokens: int, dtype_name: str) -> None:
    print(f"\n### Attention at {tokens} tokens (1 x 8 heads x 64, {dtype_name})\n")
    print("| layout | density (of causal) | backend | pass | time (s) | time / same backend's full "
          "| added peak memory (MiB) |")
    print("|---|---:|---|---|---:|---:|---:|")
    dense = {(r["backend"], r["pass"]): r["seconds"] for r in rows if r["layout"] == "full" and "error" not in r}
    for r in rows:
        if "error" in r:
            print(f"| {r['layout']} | | {r['backend']} | failed: {r['error']} | | | |")
            continue
        base = dense.get((r["backend"], r["pass"])) or dense.get(("sdpa", r["pass"]))
        share = f"{r['seconds'] / base:.2f}" if base else ""
        print(
            f"| {r['layout']} | {r['density']:.3f} | {r['backend']} | {r['pass']} | {r['seconds']:.3f} | {share} "
            f"| {r['peak_mib']:,.0f} |"
        )


def cpu_bf16_flags() -> dict[str, bool]:
    """Which bf16 instructions the CPU announces (`/proc/cpuinfo` flags; all False where unreadable)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {name: name in flags for name in ("amx_bf16", "avx512_bf16")}


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def build_train_model(device: torch.device):
    """The model `configs/experiments/small-cpu.yaml` trains, built the way `musenet train` builds it."""
    from musenet_hf.training.training_config import TrainConfig, build_model, build_tokenizer

    cfg = TrainConfig.from_yaml(SMALL_CPU)
    torch.manual_seed(cfg.seed)
    return build_model(cfg, build_tokenizer(cfg)).to(device), cfg


def bench_dtypes(model, cfg, device: torch.device, steps: int, rounds: int, warmup: int) -> dict:
    """fp32 and bf16-autocast training steps taking turns; tokens/s from the median step."""
    batch, length = cfg.per_device_batch_size, cfg.context_length
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator).to(device)
    inputs = {  # what MuseNetCollator gives the trainer: full windows, no padding
        "input_ids": ids,
        "labels": ids,
        "attention_mask": torch.ones_like(ids),
        "piece_seconds": torch.full((batch,), 120.0, device=device),
        "time_offset_seconds": torch.full((batch,), 30.0, device=device),
    }
    models = {"fp32": model, "bf16": copy.deepcopy(model)}  # same initial weights
    contexts = {
        "fp32": contextlib.nullcontext,
        "bf16": lambda: torch.autocast(device.type, dtype=torch.bfloat16),
    }
    optimizers = {}
    for name, m in models.items():
        m.train()
        decay = [p for p in m.parameters() if p.dim() >= 2]
        no_decay = [p for p in m.parameters() if p.dim() < 2]
        optimizers[name] = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
            betas=tuple(cfg.adam_betas),
        )
    losses = {name: [] for name in models}

    def step(name):
        m = models[name]
        with contexts[name]():  # the trainer runs backward inside accelerator.autocast() too
            loss = m(**inputs).loss
            loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.max_grad_norm)
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        losses[name].append(loss.item())

    for _ in range(warmup):  # allocator, oneDNN primitives, mask caches, first-call dispatch
        for name in models:
            step(name)
    times = {name: [] for name in models}
    turns = {name: [] for name in models}
    order = list(models)
    key = 1 if device.type == "cpu" else 0  # CPU seconds on the CPU, wall seconds on a GPU
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:  # fp32 bf16 | bf16 fp32 | ...
            samples = [timed(lambda: step(name), device) for _ in range(steps)]
            times[name] += samples
            turns[name].append(batch * length * len(samples) / sum(s[key] for s in samples))
    results = summarize(times, batch * length)
    for name in models:
        results[name]["turns"] = turns[name]
        results[name]["loss"] = losses[name][-1]
        results[name]["steps"] = len(losses[name])
    return results


def print_dtype_table(results: dict, cfg, model, device: torch.device, steps: int, rounds: int, warmup: int) -> None:
    key = "cpu_tok_s" if device.type == "cpu" else "wall_tok_s"
    fp32 = results["fp32"]
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    print(
        f"\n### Training precision: fp32 against bf16 autocast (batch {cfg.per_device_batch_size} x "
        f"{cfg.context_length} tokens, forward + backward + clip + AdamW)\n"
    )
    print(
        f"model: {SMALL_CPU.relative_to(REPO)} ({c.num_hidden_layers} layers, {c.hidden_size} wide, "
        f"vocab {c.vocab_size}, context {c.max_position_embeddings}, {c.attention_layout} attention, "
        f"{params / 1e6:.1f}M parameters); {warmup} warm-up step(s) each, then {rounds} turns each of "
        f"{steps} step(s), alternating; medians of the steps\n"
    )
    print("| precision | tokens/s | ratio to fp32 | wall-clock tokens/s | wall-clock ratio | tokens/s per turn | loss after last step |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, r in results.items():
        per_turn = ", ".join(f"{t:,.0f}" for t in r["turns"])
        print(
            f"| {name} | {r[key]:,.0f} | {r[key] / fp32[key]:.2f} | {r['wall_tok_s']:,.0f} | "
            f"{r['wall_tok_s'] / fp32['wall_tok_s']:.2f} | {per_turn} | {r['loss']:.3f} |"
        )
    basis = "CPU time of the process" if device.type == "cpu" else "wall clock"
    bf16 = results["bf16"]
    print(
        f"\nbf16/fp32 tokens/s: {bf16[key] / fp32[key]:.2f} ({basis}), "
        f"{bf16['wall_tok_s'] / fp32['wall_tok_s']:.2f} (wall clock)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared 2-core machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1, help="training batch (sequences of the full context)")
    parser.add_argument(
        "--steps", type=int, default=3, help="measured training steps per model (per turn in the fp32/bf16 section)"
    )
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per generate() call")
    parser.add_argument("--rounds", type=int, default=3, help="measured generate() calls per model")
    parser.add_argument("--attention-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2, help="timed attention calls per case (best counts)")
    parser.add_argument("--attention-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the attention section (xformers' and flash kernels are fastest in 16 bits)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["training", "generate", "attention", "dtype"])
    parser.add_argument(
        "--dtype-compare",
        action="store_true",
        help="run only the fp32 / bf16-autocast training comparison (section 4)",
    )
    parser.add_argument("--dtype-rounds", type=int, default=2, help="measured turns per precision (fp32/bf16 alternate)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured training steps per precision first")
    parser.add_argument("--attention-case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.attention_case:
        layout_name, backend = args.attention_case.split(",")
        dtype = getattr(torch, args.attention_dtype)
        print(json.dumps(attention_case(layout_name, backend, args.attention_tokens, device, args.repeats, dtype)))
        return

    from transformers.utils import logging

    logging.set_verbosity_error()
    import transformers

    skip = set(args.skip)
    if args.dtype_compare:
        skip |= {"training", "generate", "attention"}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({cpu_model_name()}, {os.cpu_count()} cores)"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {name}, torch threads {torch.get_num_threads()}")
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        try:
            onednn = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):
            onednn = "unknown"
        print(
            "CPU bf16: "
            + ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in flags.items())
            + f" (/proc/cpuinfo); oneDNN bf16 supported: {onednn}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
        )
    print(f"load average (1, 5, 15 min) at start: {load_average()}")
    models = None
    if not {"training", "generate"} <= skip:
        models, config = build_models(device)
        counts = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
        print(
            f"models: {config.num_hidden_layers} layers, {config.hidden_size} wide, {config.num_attention_heads} heads, "
            f"vocab {config.vocab_size}, context {config.max_position_embeddings}; parameters "
            + ", ".join(f"{n}: {c / 1e6:.1f}M" for n, c in counts.items())
        )
    if "training" not in skip:
        results = bench_training(models, config, args.batch, args.steps, device)
        print_speed_table(
            f"Training (batch {args.batch} x {config.max_position_embeddings} tokens, forward + backward + AdamW)",
            results,
            device,
        )
    if "generate" not in skip:
        results = bench_generate(models, 16, args.new_tokens, args.rounds, device)
        print_speed_table(f"generate() with the KV cache (greedy, batch 1, 16-token prompt, {args.new_tokens} new tokens)", results, device)
    del models
    if "dtype" not in skip:
        model, cfg = build_train_model(device)
        results = bench_dtypes(model, cfg, device, args.steps, args.dtype_rounds, args.warmup)
        print_dtype_table(results, cfg, model, device, args.steps, args.dtype_rounds, args.warmup)
        del model, results
    if "attention" not in skip:
        rows = bench_attention(args.attention_tokens, device, args.threads, args.repeats, args.attention_dtype)
        print_attention_table(rows, args.attention_tokens, args.attention_dtype)
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")


if __name__ == "__main__":
    main()
