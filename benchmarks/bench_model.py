"""MuseNetForCausalLM against transformers' GPT2LMHeadModel: training and generate() speed, sparse attention.

Three measurements, one run:

1. Training tokens/s (forward, backward, AdamW step) of MuseNet with every structural embedding
   and the critic on (`full` layout, and the config's sparse layout) against a GPT-2 of the same
   depth, width, heads, vocabulary, context and batch. The models take turns, step by step, so a
   change in the machine's load hits all of them alike.
2. `generate()` tokens/s with the KV cache (greedy, batch 1), same models.
3. Attention alone at `--attention-tokens` tokens (default 4096), 8 heads x 64, float32: time of
   forward + backward and the peak memory it adds, for every layout and every backend that runs
   on the device (FlexAttention has no CPU backward: forward only there). Each case runs in a
   fresh process so its peak memory is its own.

On the CPU the speeds are CPU seconds of this process (`time.process_time`), which other
processes on a shared machine disturb far less than wall time; wall-clock numbers are printed too.
The model size is `configs/musenet-small.json` (8 layers, 384 wide, 6 heads, 1024 context).

    python benchmarks/bench_model.py [--threads 1] [--device cpu] [--batch 1] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "configs" / "musenet-small.json"
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

    from musenet_hf.baseline import gpt2_config_for
    from musenet_hf.configuration_musenet import MuseNetConfig
    from musenet_hf.modeling_musenet import MuseNetForCausalLM

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


def attention_case(layout_name: str, backend: str, tokens: int, device: torch.device, repeats: int) -> dict:
    """One attention measurement (run in its own process): time and added peak memory."""
    from musenet_hf.attention import AttentionPlan, SparseLayout, layout_density

    layout = SparseLayout(**LAYOUTS_4096[layout_name])
    heads, dim = 8, 64
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, dim, generator=generator).to(device) for _ in range(3))
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


def bench_attention(tokens: int, device: torch.device, threads: int, repeats: int) -> list[dict]:
    from musenet_hf.attention import flex_available, xformers_available

    backends = ["sdpa"]
    if flex_available(device.type):
        backends.append("flex")
    if xformers_available(device.type, torch.float32):
        backends.append("xformers")
    rows = []
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
            ]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                rows.append({"layout": layout_name, "backend": backend, "error": result.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def print_attention_table(rows: list[dict], tokens: int) -> None:
    print(f"\n### Attention at {tokens} tokens (1 x 8 heads x 64, float32)\n")
    print("| layout | density (of causal) | backend | pass | time (s) | added peak memory (MiB) |")
    print("|---|---:|---|---|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['layout']} | | {r['backend']} | failed: {r['error']} | | |")
        else:
            print(
                f"| {r['layout']} | {r['density']:.3f} | {r['backend']} | {r['pass']} | {r['seconds']:.3f} | {r['peak_mib']:,.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared 2-core machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1, help="training batch (sequences of the full context)")
    parser.add_argument("--steps", type=int, default=3, help="measured training steps per model")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per generate() call")
    parser.add_argument("--rounds", type=int, default=3, help="measured generate() calls per model")
    parser.add_argument("--attention-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2, help="timed attention calls per case (best counts)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["training", "generate", "attention"])
    parser.add_argument("--attention-case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.attention_case:
        layout_name, backend = args.attention_case.split(",")
        print(json.dumps(attention_case(layout_name, backend, args.attention_tokens, device, args.repeats)))
        return

    from transformers.utils import logging

    logging.set_verbosity_error()
    import transformers

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {name}, torch threads {torch.get_num_threads()}")
    models, config = build_models(device)
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(
        f"models: {config.num_hidden_layers} layers, {config.hidden_size} wide, {config.num_attention_heads} heads, "
        f"vocab {config.vocab_size}, context {config.max_position_embeddings}; parameters "
        + ", ".join(f"{n}: {c / 1e6:.1f}M" for n, c in counts.items())
    )
    if "training" not in args.skip:
        results = bench_training(models, config, args.batch, args.steps, device)
        print_speed_table(
            f"Training (batch {args.batch} x {config.max_position_embeddings} tokens, forward + backward + AdamW)",
            results,
            device,
        )
    if "generate" not in args.skip:
        results = bench_generate(models, 16, args.new_tokens, args.rounds, device)
        print_speed_table(f"generate() with the KV cache (greedy, batch 1, 16-token prompt, {args.new_tokens} new tokens)", results, device)
    if "attention" not in args.skip:
        del models
        print_attention_table(bench_attention(args.attention_tokens, device, args.threads, args.repeats), args.attention_tokens)


if __name__ == "__main__":
    main()
