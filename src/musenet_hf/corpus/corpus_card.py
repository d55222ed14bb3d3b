"""The tables of a data card, from what ``musenet prepare-corpus --recipe`` wrote.

``docs/data.md`` is prose around these tables; :func:`render_tables` makes them from a corpus
folder's ``report.json`` and ``statistics.json`` so the card states what the command measured:

    python -m musenet_hf.corpus.corpus_card corpus/broad > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..tokenizer.vocabulary import DEMO_STYLES
from .corpus_build import SPLITS, UNLABELLED


def _sources_table(report: dict[str, Any]) -> list[str]:
    lines = ["| source | repository @ commit | licence as stated | listed | read | rejected (why) | reserved | duplicates (same source / earlier source) | kept |",
             "|---|---|---|---:|---:|---|---:|---:|---:|"]
    for name, s in report["sources"].items():
        commit = s.get("commit") or ""
        commit = commit[:10] if len(commit) == 40 else commit
        where = f"{s['repo']} @ `{commit}`" if s.get("repo") and commit else (s.get("repo") or "a local folder")
        rejected = dict(s.get("rejected") or {})
        if s.get("conversion_failures"):
            rejected["music21 could not convert"] = s["conversion_failures"]
        why = "; ".join(f"{n} {r}" for r, n in sorted(rejected.items(), key=lambda kv: -kv[1])) or "0"
        lines.append(f"| {name} | {where} | {s.get('licence', '')} | {s.get('listed', 0)} | {s.get('read', 0)} | "
                     f"{why} | {s.get('reserved', 0)} | {s.get('duplicates_within', 0)} / {s.get('duplicates_across', 0)} | "
                     f"{s.get('kept', 0)} |")
    return lines


def _labels_table(report: dict[str, Any]) -> list[str]:
    head = "| label | " + " | ".join(f"{s} pieces" for s in SPLITS) + " | " + " | ".join(f"{s} tokens" for s in SPLITS) + " | minutes |"
    lines = [head, "|---|" + "---:|" * (2 * len(SPLITS) + 1)]
    rows = sorted(report["labels"].items(), key=lambda kv: -sum(kv[1][s]["pieces"] for s in SPLITS))
    for label, row in rows:
        minutes = sum(row[s]["minutes"] for s in SPLITS)
        lines.append(f"| {label} | " + " | ".join(str(row[s]["pieces"]) for s in SPLITS) + " | "
                     + " | ".join(f"{row[s]['tokens']:,}" for s in SPLITS) + f" | {minutes:,.0f} |")
    return lines


def _statistics_table(stats: dict[str, Any]) -> list[str]:
    lines = ["| label | evaluation pieces | median note length (s) | notes per second | notes at once | pitch-class entropy (bits) | instruments (share of pieces) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for label, row in stats.items():
        inst = ", ".join(f"{k} {v:.0%}" for k, v in list(row["instruments"].items())[:4])

        def fmt(key: str) -> str:
            return "" if row[key] is None else f"{row[key]:.2f}"

        lines.append(f"| {label} | {row['pieces']} | {fmt('note_length_median')} | {fmt('notes_per_second')} | "
                     f"{fmt('polyphony_mean')} | {fmt('pitch_class_entropy')} | {inst} |")
    return lines


def demo_style_coverage(report: dict[str, Any]) -> dict[str, int]:
    """Training pieces of each of the demo's 16 styles (0 where none)."""
    return {s: report["labels"].get(s, {}).get("train", {}).get("pieces", 0) for s in DEMO_STYLES}


def render_tables(folder: str | Path) -> str:
    """The data card's tables (Markdown) of a prepared corpus folder."""
    folder = Path(folder)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    stats = json.loads((folder / "statistics.json").read_text(encoding="utf-8"))
    coverage = demo_style_coverage(report)
    covered = sum(n >= 50 for n in coverage.values())
    parts = [
        f"Corpus: {report['pieces']:,} pieces, {report['minutes']:,.0f} minutes, {report['tokens']:,} tokens "
        f"(extended vocabulary); split seed {report['seed']}, validation {report['fractions']['validation']:.0%}, "
        f"evaluation {report['fractions']['evaluation']:.0%} of each label.",
        "", "### Sources", "", *_sources_table(report),
        "", "### Pieces and tokens per label and split", "",
        f"`{UNLABELLED}`: pieces kept for their music without a style token.", "", *_labels_table(report),
    ]
    if report.get("below_threshold"):
        parts += ["", f"Labels with fewer than {report['min_pieces_new_label']} pieces, kept unlabelled: "
                  + ", ".join(f"{k} ({v})" for k, v in report["below_threshold"].items()) + "."]
    parts += ["", f"### The demo's 16 styles ({covered} with at least 50 training pieces)", "",
              "| style | training pieces |", "|---|---:|", *[f"| {k} | {v} |" for k, v in coverage.items()],
              "", "### Statistics of the evaluation pieces (first 30 s of each; medians over pieces)", "",
              *_statistics_table(stats)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_tables(sys.argv[1] if len(sys.argv) > 1 else "corpus"))
