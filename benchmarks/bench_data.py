"""Is the data pipeline ever the bottleneck? Windows/s it produces vs windows/s training consumes.

Produced: training windows of the small model's context (1024 tokens) with augmentation
(transposition, volume, stretch, re-encoded by the tokenizer), through the DataLoader and the
collator, in this process on one thread: what one DataLoader worker delivers.
Consumed: forward + backward + AdamW step of `configs/musenet-small.json` on batches of those
windows, with `--threads` torch threads (default: all cores).

    python benchmarks/bench_data.py                       # ../shared/midi/valid
    python benchmarks/bench_data.py --data corpus --windows 400

The issue's bar: produced >= 10x consumed. The folder is encoded once (cached under
--cache, default ./runs/bench-data-cache).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from musenet_hf.training.augmentation import AugmentationConfig
from musenet_hf.training.batching import MuseNetCollator, TrainBatches
from musenet_hf.training.data import MuseNetWindows, load_midi_folder
from musenet_hf.training.training_config import TrainConfig, build_model, build_tokenizer

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "midi" / "valid"))
    p.add_argument("--cache", default=str(REPO / "runs" / "bench-data-cache"))
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--windows", type=int, default=200, help="windows to produce for the pipeline timing")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed training steps (at least 1; after one warm-up step)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for the training step")
    args = p.parse_args()

    cfg = TrainConfig(model_config=str(REPO / "configs" / "musenet-small.json"), context_length=args.context)
    tok = build_tokenizer(cfg)
    enc = load_midi_folder(args.data, tok, validation_fraction=0.0, num_proc=2, cache_dir=args.cache)
    train = enc.dataset["train"]
    print(f"data: {args.data}: {len(train)} pieces, {sum(train['num_tokens'])} tokens")
    windows = MuseNetWindows(train, tok, args.context, train=True, seed=0, augmentation=AugmentationConfig())
    collator = MuseNetCollator(tok.vocabulary.pad_id)

    # Produced: one process, one thread, as a DataLoader worker would.
    torch.set_num_threads(1)
    batches = TrainBatches(len(windows), args.batch_size, 1, 0, 1, seed=0, start_step=0,
                           max_steps=args.windows // args.batch_size)
    loader = torch.utils.data.DataLoader(windows, batch_sampler=batches, collate_fn=collator, num_workers=0)
    start = time.perf_counter()
    made = sum(b["input_ids"].shape[0] for b in loader)
    produced = made / (time.perf_counter() - start)

    # Consumed: the small model's training step.
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(cfg, tok).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    example = next(iter(torch.utils.data.DataLoader(windows, batch_sampler=batches, collate_fn=collator)))
    times = []
    for i in range(max(args.steps, 1) + 1):
        t = time.perf_counter()
        model(**example).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t)
    consumed = args.batch_size / (sum(times) / len(times))

    print(f"pipeline (augmentation on, 1 thread):           {produced:8.1f} windows/s "
          f"of {args.context} tokens ({made} windows)")
    print(f"small model training ({params:.1f}M params, {args.threads} threads): {consumed:8.2f} windows/s "
          f"({consumed * args.context:.0f} tokens/s, batch {args.batch_size})")
    print(f"ratio: {produced / consumed:.0f}x (the bar: >= 10x)")


if __name__ == "__main__":
    main()
