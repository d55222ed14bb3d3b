"""Plot validation curves of training runs (``log.jsonl`` of ``musenet train``) into one PNG.

    python examples/plot_curves.py runs/small-cpu runs/small-cpu-gpt2 --labels MuseNet GPT-2 \
        -o checkpoints/musenet-small-music21/curve.png

A log whose records carry a ``stage`` (the bundled model's ``training_log.jsonl``: one run
warm-started from the last) is drawn with ``--by-stage``: one series per stage, each stage's steps
counted on from where the previous stage ended.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_log(run: Path) -> list[dict]:
    """The records of a run folder's ``log.jsonl`` (or of the file itself)."""
    path = run / "log.jsonl" if run.is_dir() else run
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def split_stages(log: list[dict]) -> list[tuple[list[dict], str]]:
    """``(records, stage)`` per stage of ``log`` in order (the stage named by its words before
    `` (``), each stage's steps moved on by the steps of the stages before it (a warm start
    restarts its step count at 0)."""
    stages: dict[str, list[dict]] = {}
    for r in log:
        stages.setdefault(str(r.get("stage", "")), []).append(r)
    out, offset = [], 0
    for name, records in stages.items():
        short = name.split(" (")[0]  # "step 2 (the recipe ...)" -> "step 2": the card says the rest
        out.append(([{**r, "step": r["step"] + offset} for r in records if "step" in r], short))
        offset += max((r["step"] for r in records if "step" in r), default=0)
    return out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (or log.jsonl files)")
    parser.add_argument("--labels", nargs="+", help="one legend label per run (default: the folder names)")
    parser.add_argument("--by-stage", action="store_true",
                        help="one series per `stage` of each log, steps counted on across stages")
    parser.add_argument("-o", "--output", default="curve.png")
    args = parser.parse_args()
    labels = args.labels or [r.name for r in args.runs]
    series = [(read_log(run), label) for run, label in zip(args.runs, labels)]
    if args.by_stage:
        series = [part for log, _ in series for part in split_stages(log)]
    fig, (ax_loss, ax_bps) = plt.subplots(1, 2, figsize=(11, 4))
    # one colour per run or stage: tab10 repeats after ten, so more take tab20's
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20").colors
    for (log, label), colour in zip(series, colours * (len(series) // len(colours) + 1)):
        ev = [r for r in log if "val_loss" in r]
        train = [r for r in log if "loss" in r and "val_loss" not in r]
        ax_loss.plot([r["step"] for r in ev], [r["val_loss"] for r in ev], marker="o", color=colour,
                     label=f"{label} validation")
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], alpha=0.35, color=colour,
                     label=f"{label} training")
        ax_bps.plot([r["step"] for r in ev], [r["val_bits_per_second"] for r in ev], marker="o", color=colour,
                    label=label)
    many = len(series) > 4  # then one legend (the right panel's) names the colours for both panels
    ax_loss.set(xlabel="optimizer step", ylabel="nats per token", ylim=(None, None),
                title="loss (dots: validation, faint: training)" if many else "loss")
    ax_bps.set(xlabel="optimizer step", ylabel="bits per second of music", title="validation bits per second")
    for ax in (ax_loss, ax_bps):
        ax.grid(alpha=0.3)
    ax_bps.legend(fontsize="small", ncol=2 if many else 1)
    if not many:
        ax_loss.legend()
    ax_loss.set_yscale("log")
    ax_bps.set_yscale("log")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"{args.output}: {len(args.runs)} runs")


if __name__ == "__main__":
    main()
