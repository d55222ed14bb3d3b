"""Context and attention layout of the next model, by measurement: training and generate() speed,
peak memory, at 512 to 4,096 tokens with full and sparse attention (issue 32, build item 1).

Cases: 512 full, 2,048 full, 2,048 strided, 2,048 fixed, 4,096 strided, 4,096 fixed. Each is the
model `configs/experiments/small-cpu.yaml` trains (musenet-small: 8 layers, 384 wide, 6 heads, with the
extended vocabulary, built by `musenet_hf.training.training_config.build_model` with that YAML's overrides),
with `max_position_embeddings` and `attention_layout` set to the case's, and the layout parameters
of `configs/musenet-small.json` (block 64, stride 256, `c` 64, patterns split across heads).

1. Training: the same tokens per optimizer step in every case (`--step-tokens`, default 8,192:
   batch 16 x 512, 4 x 2,048, 2 x 4,096), random token windows, one step as the trainer takes it
   (forward and backward under `torch.autocast(device, dtype=torch.bfloat16)`, gradient clipping,
   AdamW with the YAML's parameter groups and settings). tokens/s from the median step after
   `--warmup` unmeasured steps; peak resident memory of the process, and its rise over the built
   model (`/proc/self/status` VmHWM after a reset).
2. `generate()` with the KV cache, greedy, batch 1, in float32 (as `musenet generate` runs): a
   prompt of context - `--new-tokens` note tokens, then `--new-tokens` new tokens, i.e. decoding
   with the cache nearly full; and a 16-token prompt for comparison. A streamer stamps every token,
   so the prompt's prefill (up to the first new token) and the decoding speed are told apart.

Each case and each part runs in a fresh process, so its peak memory is its own. Before measuring,
one forward counts which attention path ran (the `sdpa` backend's block-structured path that skips
empty blocks, causal sdpa, or sdpa with a dense mask): the table says it, so a sparse case that
fell back to dense masks shows. On the CPU, tokens/s are from the CPU time of the process
(`time.process_time`, all its threads: with 2 threads it is throughput per CPU second, not the
speed-up); wall-clock numbers are given too.

    OMP_NUM_THREADS=1 python benchmarks/bench_context.py --threads 1 --json out-1.json
    OMP_NUM_THREADS=2 python benchmarks/bench_context.py --threads 2 --json out-2.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import subprocess
import sys
import time

import torch

from bench_model import (
    REPO,
    SMALL_CPU,
    cpu_bf16_flags,
    cpu_model_name,
    load_average,
    proc_status_bytes,
    reset_peak_rss,
    timed,
)

CASES = [(512, "full"), (2048, "full"), (2048, "strided"), (2048, "fixed"), (4096, "strided"), (4096, "fixed")]
SHORT_PROMPT = 16


def build_case_model(context: int, layout: str, step_tokens: int):
    """The small-cpu.yaml model at `context` tokens with `layout`, and its config (batch: step_tokens / context)."""
    from musenet_hf.training.training_config import TrainConfig, build_model, build_tokenizer

    cfg = TrainConfig.from_yaml(SMALL_CPU)
    overrides = {**cfg.model_overrides, "max_position_embeddings": context, "attention_layout": layout}
    batch = max(1, step_tokens // context)
    cfg = dataclasses.replace(cfg, context_length=context, per_device_batch_size=batch, model_overrides=overrides)
    torch.manual_seed(cfg.seed)
    return build_model(cfg, build_tokenizer(cfg)), cfg


@contextlib.contextmanager
def count_attention_paths(counts: dict):
    """Count the attention calls by path while the block runs: `block-structured` (the `sdpa` backend's
    path that skips empty blocks), `causal` (is_causal sdpa), `no mask` (one query over every key) and
    `dense mask` (sdpa with a boolean mask over all keys). `F` is torch.nn.functional itself, so the
    patch is process-wide and undone after the block."""
    from musenet_hf.model import attention

    structured, sdpa = attention.structured_attention, attention.F.scaled_dot_product_attention

    inside = []  # the block-structured path's own sdpa calls (on its blocks) are not counted again

    def count_structured(*args, **kwargs):
        counts["block-structured"] = counts.get("block-structured", 0) + 1
        inside.append(True)
        try:
            return structured(*args, **kwargs)
        finally:
            inside.pop()

    def count_sdpa(*args, **kwargs):
        if not inside:
            key = "dense mask" if kwargs.get("attn_mask") is not None else ("causal" if kwargs.get("is_causal") else "no mask")
            counts[key] = counts.get(key, 0) + 1
        return sdpa(*args, **kwargs)

    attention.structured_attention = count_structured
    attention.F.scaled_dot_product_attention = count_sdpa
    try:
        yield counts
    finally:
        attention.structured_attention, attention.F.scaled_dot_product_attention = structured, sdpa


def describe_paths(counts: dict) -> str:
    return ", ".join(f"{name} x{n}" for name, n in sorted(counts.items())) or "none"


def train_inputs(model, batch: int, length: int) -> dict:
    """What MuseNetCollator gives the trainer: full random windows, no padding."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
    return {
        "input_ids": ids,
        "labels": ids,
        "attention_mask": torch.ones_like(ids),
        "piece_seconds": torch.full((batch,), 120.0),
        "time_offset_seconds": torch.full((batch,), 30.0),
    }


def train_case(context: int, layout: str, step_tokens: int, warmup: int, steps: int) -> dict:
    """One training case (its own process): attention path, tokens/s, peak memory, loss."""
    from musenet_hf.training.training_config import parameter_groups

    model, cfg = build_case_model(context, layout, step_tokens)
    device = torch.device("cpu")
    backend = model.resolved_attention_backend(device, torch.bfloat16)
    batch = cfg.per_device_batch_size
    inputs = train_inputs(model, batch, context)
    paths: dict = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), count_attention_paths(paths):
        model.train()
        model(**{k: v[:1] for k, v in inputs.items()})  # one sequence: which path each layer takes
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.learning_rate, betas=tuple(cfg.adam_betas))
    losses = []

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the trainer runs backward inside autocast too
            loss = model(**inputs).loss
            loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())

    base = reset_peak_rss()  # the built model and its inputs; optimizer state, gradients, activations come after
    samples = [timed(step, device) for _ in range(warmup + steps)][warmup:]
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    peak = proc_status_bytes("VmHWM")
    return {
        "part": "train", "context": context, "layout": layout, "backend": backend, "paths": describe_paths(paths),
        "batch": batch, "tokens_per_step": batch * context, "steps": steps, "warmup": warmup,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "cpu_tok_s": batch * context / cpu, "wall_tok_s": batch * context / wall,
        "step_cpu_s": [s[1] for s in samples], "step_wall_s": [s[0] for s in samples],
        "peak_mib": peak / 2**20, "added_peak_mib": max(peak - base, 0) / 2**20, "loss": losses[-1],
    }


class TokenClock:
    """A generate() streamer that stamps (wall, CPU) times: the prompt, then every new token."""

    def __init__(self):
        self.stamps: list[tuple[float, float]] = []

    def put(self, value) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def end(self) -> None:
        pass


def timed_generate(model, prompt: torch.Tensor, new_tokens: int) -> dict:
    """One greedy generate(): prefill seconds (start to first new token) and decoding tokens/s after it."""
    clock = TokenClock()
    start = (time.perf_counter(), time.process_time())
    model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                   piece_seconds=torch.full((1,), 120.0), streamer=clock)
    first, last = clock.stamps[1], clock.stamps[-1]  # stamps[0]: the prompt, put before any forward
    decoded = len(clock.stamps) - 2  # tokens after the first new one
    return {
        "prefill_wall_s": first[0] - start[0], "prefill_cpu_s": first[1] - start[1],
        "decode_wall_tok_s": decoded / (last[0] - first[0]), "decode_cpu_tok_s": decoded / (last[1] - first[1]),
    }


def generate_case(context: int, layout: str, new_tokens: int, rounds: int) -> dict:
    """One generation case (its own process, float32): the near-full prompt and a short one."""
    model, _ = build_case_model(context, layout, context)
    model.eval()
    generator = torch.Generator().manual_seed(1)
    num_notes = model.config.num_note_tokens
    long_prompt = torch.randint(0, num_notes, (1, context - new_tokens), generator=generator)
    short_prompt = torch.randint(0, num_notes, (1, SHORT_PROMPT), generator=generator)
    paths: dict = {}
    base = reset_peak_rss()
    with count_attention_paths(paths):
        timed_generate(model, long_prompt, 2)  # warm-up (masks of this size); counts prefill + one decoding step
    timed_generate(model, short_prompt, 4)
    runs = {"long": [], "short": []}
    for _ in range(rounds):
        runs["long"].append(timed_generate(model, long_prompt, new_tokens))
        runs["short"].append(timed_generate(model, short_prompt, new_tokens))
    peak = proc_status_bytes("VmHWM")
    out = {"part": "generate", "context": context, "layout": layout, "backend": model.resolved_attention_backend(),
           "paths": describe_paths(paths), "new_tokens": new_tokens, "rounds": rounds,
           "peak_mib": peak / 2**20, "added_peak_mib": max(peak - base, 0) / 2**20}
    for name, samples in runs.items():
        for key in samples[0]:
            out[f"{name}_{key}"] = statistics.median(s[key] for s in samples)
    out["long_prompt_tokens"], out["short_prompt_tokens"] = long_prompt.shape[1], SHORT_PROMPT
    return out


def run_child(part: str, context: int, layout: str, args) -> dict:
    """Run one part of one case in a fresh process; its last stdout line is the JSON result."""
    cmd = [sys.executable, __file__, "--case", f"{part},{context},{layout}", "--threads", str(args.threads),
           "--step-tokens", str(args.step_tokens), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--new-tokens", str(args.new_tokens), "--rounds", str(args.rounds)]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        return {"part": part, "context": context, "layout": layout, "error": lines[-1]}
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = time.perf_counter() - start
    print(f"  {part} {context} {layout}: done in {row['process_wall_s']:.0f} s (load average {load_average()})",
          file=sys.stderr, flush=True)
    return row


def densities(heads: int) -> dict:
    """Share of the causal (query, key) pairs each case attends to (every layer alike with split_heads)."""
    from musenet_hf.model.attention import SparseLayout, layout_density
    from musenet_hf.model.configuration_musenet import MuseNetConfig

    small = MuseNetConfig.from_json_file(REPO / "configs" / "musenet-small.json")
    out = {}
    for context, layout in CASES:
        sparse = dataclasses.replace(SparseLayout.from_config(small), kind=layout)
        out[(context, layout)] = layout_density(sparse, 0, heads, context)
    return out


def fmt(value, spec: str = ",.0f") -> str:
    return "" if value is None else format(value, spec)


def print_table(rows: list[dict], density: dict, threads: int) -> None:
    train = {(r["context"], r["layout"]): r for r in rows if r["part"] == "train"}
    gen = {(r["context"], r["layout"]): r for r in rows if r["part"] == "generate"}
    print(f"\n### Context and layout, {threads} thread(s): training (bf16 autocast) and generate() (float32, KV cache)\n")
    print("| context | layout | density (of causal) | attention path (training forward) | batch | "
          "train tokens/s (CPU) | train tokens/s (wall) | train peak RSS (MiB) | train added peak (MiB) | "
          "prefill of context-64 (CPU s) | decode tokens/s, cache near full (CPU) | (wall) | "
          "decode tokens/s, 16-token prompt (CPU) | generate peak RSS (MiB) |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in CASES:
        t, g = train.get(key, {}), gen.get(key, {})
        error = t.get("error") or g.get("error")
        if error:
            print(f"| {key[0]} | {key[1]} | {density[key]:.3f} | failed: {error} |" + " |" * 10)
            continue
        print(
            f"| {key[0]:,} | {key[1]} | {density[key]:.3f} | {t.get('backend', '')}: {t.get('paths', 'not run')} | "
            f"{t.get('batch', '')} | {fmt(t.get('cpu_tok_s'))} | {fmt(t.get('wall_tok_s'))} | {fmt(t.get('peak_mib'))} | "
            f"{fmt(t.get('added_peak_mib'))} | "
            f"{fmt(g.get('long_prefill_cpu_s'), '.2f')} | {fmt(g.get('long_decode_cpu_tok_s'), '.1f')} | "
            f"{fmt(g.get('long_decode_wall_tok_s'), '.1f')} | {fmt(g.get('short_decode_cpu_tok_s'), '.1f')} | "
            f"{fmt(g.get('peak_mib'))} |"
        )
    paths = {f"{k[0]} {k[1]}": g["paths"] for k, g in gen.items() if "paths" in g}
    print("\ngenerate() attention paths (prefill of the warm-up call and its one decoding step): "
          + "; ".join(f"{k}: {v}" for k, v in paths.items()))


def header(args) -> dict:
    import transformers

    flags = cpu_bf16_flags()
    info = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "cpu": cpu_model_name(), "threads": args.threads, "bf16_flags": flags,
        "load_average_start": load_average(), "step_tokens": args.step_tokens, "warmup": args.warmup,
        "steps": args.steps, "new_tokens": args.new_tokens, "rounds": args.rounds,
    }
    print(f"torch {info['torch']}, transformers {info['transformers']}, CPU {info['cpu']}, torch threads {args.threads}; "
          + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()))
    print(f"{args.step_tokens:,} tokens per optimizer step; {args.warmup} warm-up + {args.steps} measured steps a case; "
          f"generate(): {args.rounds} round(s) of {args.new_tokens} new tokens per prompt")
    print(f"load average (1, 5, 15 min) at start: {info['load_average_start']}", flush=True)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every case")
    parser.add_argument("--step-tokens", type=int, default=8192, help="tokens per optimizer step (batch = this / context)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured training steps per case")
    parser.add_argument("--steps", type=int, default=3, help="measured training steps per case (median counts)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per generate() call")
    parser.add_argument("--rounds", type=int, default=2, help="generate() calls per prompt (median counts)")
    parser.add_argument("--only", nargs="*", default=None, help="cases to run, e.g. 2048,full 4096,strided")
    parser.add_argument("--parts", nargs="*", default=["train", "generate"], choices=["train", "generate"])
    parser.add_argument("--json", help="write the header and every row here")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:
        part, context, layout = args.case.split(",")
        if part == "train":
            row = train_case(int(context), layout, args.step_tokens, args.warmup, args.steps)
        else:
            row = generate_case(int(context), layout, args.new_tokens, args.rounds)
        print(json.dumps(row))
        return

    global CASES
    if args.only:
        wanted = {(int(c), layout) for c, layout in (s.split(",") for s in args.only)}
        CASES = [case for case in CASES if case in wanted]
    info = header(args)
    rows = [run_child(part, context, layout, args) for context, layout in CASES for part in args.parts]
    density = densities(heads=6)
    info["load_average_end"] = load_average()
    if args.json:  # first, so a failure in printing loses nothing
        for row in rows:
            row["density"] = density[(row["context"], row["layout"])]
        with open(args.json, "w") as f:
            json.dump({"header": info, "rows": rows}, f, indent=1)
    print_table(rows, density, args.threads)
    print(f"\nload average (1, 5, 15 min) at end: {info['load_average_end']}")


if __name__ == "__main__":
    main()
