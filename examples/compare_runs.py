"""Compare training runs at one step: validation bits per second of music, as a Markdown table.

The first run is the reference; each other run's row says how much lower (better) or higher its
bits per second are. For runs trained on the same windows, steps and schedule (``musenet train``
with one config and different ``--set`` overrides), this is the MuseNet/GPT-2/ablation table::

    python examples/compare_runs.py runs/cmp-musenet runs/cmp-gpt2 runs/cmp-no-time \
        --labels MuseNet GPT-2 "no time" --step 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plot_curves import read_log


def row_at(run: Path, step: int | None) -> dict:
    """The validation record of ``run`` at ``step`` (default: its last one), with its training speed."""
    log = read_log(run)
    evals = [r for r in log if "val_bits_per_second" in r and (step is None or r["step"] == step)]
    if not evals:
        raise SystemExit(f"{run}: no validation at step {step}")
    speed = [r["tokens_per_second"] for r in log if "tokens_per_second" in r and r["step"] <= evals[-1]["step"]]
    return {**evals[-1], "tokens_per_second": speed[-1] if speed else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders; the first is the reference")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: the folder names)")
    parser.add_argument("--step", type=int, help="the step to compare at (default: each run's last validation)")
    args = parser.parse_args()
    labels = args.labels or [r.name for r in args.runs]
    rows = [row_at(r, args.step) for r in args.runs]
    ref = rows[0]["val_bits_per_second"]
    print("| run | step | val nats/token | val bits/s | vs " + labels[0] + " | training tokens/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in zip(labels, rows):
        rel = r["val_bits_per_second"] / ref - 1
        print(f"| {label} | {r['step']} | {r['val_loss']:.3f} | {r['val_bits_per_second']:.2f} | "
              f"{100 * rel:+.1f}% | {r['tokens_per_second']:.0f} |")


if __name__ == "__main__":
    main()
