"""The embedded default corpus: the scores shipped inside ``music21``, as labelled MIDI files.

``music21`` installs a real corpus (Bach chorales, Palestrina masses, Monteverdi madrigals,
string quartets by Haydn, Mozart and Beethoven, and about 13,000 folk tunes). No data set can be
downloaded here, so this is the training set we can always build:

    report = prepare_corpus("data/music21")      # ~30 min on two cores, cached afterwards
    print(report.summary())

writes ``<out>/<label>/<collection>__<work>[__<movement or tune number>].mid``, plus
``metadata.csv`` (one row per file), ``report.json`` (counts, minutes, failures) and
``manifest.jsonl`` (the cache: one record per work, appended as results arrive, so an
interrupted run resumes where it stopped).

How a work becomes a file:
- **Works** come from music21's metadata bundle: one per score file, and one per tune of a
  multi-tune ABC file (an "opus": each Essen or O'Neill tune is its own file). The Josquin ABC
  files are the exception: their tunes are the voices of one piece, so they are merged. Roman
  numeral analyses (``.rntxt``), music21's own test files (``demos``, ``theoryExercises``) and
  its chord-symbol lead sheets are left out, and a work stored in two formats is taken once.
- **Labels** (composer or style) come from the corpus folder: :data:`COLLECTION_LABELS`, with
  the per-file exceptions of :data:`FILE_LABELS`. Where MuseNet's own table has the name, the
  label uses its spelling (``bach``, ``irish``, ``chinese``) so the ``musenet`` preset's id fits.
- **Instruments**: every part gets a General MIDI program chosen so that MuseNet's program
  mapping (docs/musenet.md §1) yields the intended instrument; see :func:`part_program`.
- **Failures** (what music21 cannot parse or export, e.g. badly formed repeats, and Beethoven
  quartet movements that take minutes) are skipped with their reason; one bad work never stops
  a run. music21's most common export error (a time signature object shared by two measures,
  about 10% of the Essen tunes) is repaired instead.

The labels, programs, works and the conversion of one work are :mod:`~musenet_hf.corpus.corpus_works`;
this module is the batch job: worker processes with a timeout, the cache and the report.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..worker_pool import map_with_timeout
from .corpus_works import DEFAULT_VOICE_PROGRAM, CorpusWork, convert_work, list_works, midi_stats


# ----------------------------------------------------------------------------- one work in a worker
def _convert_task(work: CorpusWork, out_dir: Path, voice_program: int) -> dict[str, Any]:
    # What a worker runs for one work: convert, then measure the file it wrote.
    start = time.perf_counter()
    out_path = out_dir / work.relpath
    convert_work(work, out_path, voice_program)
    stats = midi_stats(out_path)
    stats["convert_s"] = round(time.perf_counter() - start, 3)
    return stats


# ----------------------------------------------------------------------------- report


@dataclass
class CorpusReport:
    """What a :func:`prepare_corpus` run left in its folder.

    The counts describe every work recorded in the folder's manifest (a folder filled by
    several runs with different ``collections`` describes them all), the run fields this run.

    Attributes:
        out_dir: the corpus folder.
        files_per_label: MIDI files per label.
        minutes_per_label: minutes of music per label.
        notes_per_label: notes per label.
        tokens_per_label: tokens per label when a token counter was given, else empty.
        failures: ``{"work", "status", "reason"}`` per work that could not be converted.
        converted: works converted by this run.
        cached: works this run skipped because the manifest already had them.
        wall_time_s: this run's wall time in seconds.
        median_convert_s: median seconds a work took to convert (over the folder's files).
    """

    out_dir: Path
    files_per_label: dict[str, int] = field(default_factory=dict)
    minutes_per_label: dict[str, float] = field(default_factory=dict)
    notes_per_label: dict[str, int] = field(default_factory=dict)
    tokens_per_label: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    converted: int = 0
    cached: int = 0
    wall_time_s: float = 0.0
    median_convert_s: float = 0.0

    @property
    def num_files(self) -> int:
        return sum(self.files_per_label.values())

    @property
    def total_minutes(self) -> float:
        return sum(self.minutes_per_label.values())

    def to_dict(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        reasons = Counter(f["status"] for f in self.failures)
        return {
            "files": self.num_files,
            "minutes": round(self.total_minutes, 2),
            "labels": {
                label: {
                    "files": n,
                    "minutes": round(self.minutes_per_label[label], 2),
                    "notes": self.notes_per_label[label],
                    **({"tokens": self.tokens_per_label[label]} if self.tokens_per_label else {}),
                }
                for label, n in sorted(self.files_per_label.items())
            },
            "failures": self.failures,
            "failures_by_status": dict(sorted(reasons.items())),
            "converted": self.converted,
            "cached": self.cached,
            "wall_time_s": round(self.wall_time_s, 2),
            "median_convert_s": self.median_convert_s,
        }

    def summary(self) -> str:
        """A table: files, minutes of music (and tokens when counted) per label, then failures."""
        with_tokens = bool(self.tokens_per_label)
        head = f"{'label':<16}{'files':>8}{'minutes':>10}" + (f"{'tokens':>12}" if with_tokens else "")
        lines = [head, "-" * len(head)]

        def row(name: str, files: int, minutes: float, tokens: int) -> str:
            return f"{name:<16}{files:>8}{minutes:>10.1f}" + (f"{tokens:>12}" if with_tokens else "")

        for label in sorted(self.files_per_label, key=lambda k: (-self.files_per_label[k], k)):
            lines.append(row(label, self.files_per_label[label], self.minutes_per_label[label],
                             self.tokens_per_label.get(label, 0)))
        lines.append("-" * len(head))
        lines.append(row("total", self.num_files, self.total_minutes, sum(self.tokens_per_label.values())))
        by_status = Counter(f["status"] for f in self.failures)
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        lines.append(f"failures: {len(self.failures)}" + (f" ({detail})" if detail else ""))
        lines.append(f"this run: {self.converted} converted, {self.cached} cached, {self.wall_time_s:.1f} s")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- manifest

MANIFEST = "manifest.jsonl"
# Bump when a change to the conversion changes its output: older records are then redone.
CONVERTER_VERSION = 1
METADATA_COLUMNS = ("path", "label", "collection", "source", "number", "title", "seconds", "notes",
                    "instruments", "programs", "tokens")


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """``key -> record`` of a JSON-lines cache (the latest line of a key wins; a line cut short by an
    interrupted run is skipped)."""
    records: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
            records[rec["key"]] = rec  # the latest record of a work wins
    return records


def _is_cached(rec: dict[str, Any] | None, out_dir: Path, voice_program: int, timeout_s: float) -> bool:
    # A success is reused while its file exists; music21's own errors are deterministic and
    # not retried; a timeout is retried with a longer timeout; a crash is always retried.
    if rec is None or rec.get("voice_program") != voice_program or rec.get("version") != CONVERTER_VERSION:
        return False
    if rec["status"] == "ok":
        return (out_dir / rec["path"]).exists()
    if rec["status"] == "timeout":
        return timeout_s <= rec.get("timeout_s", 0)
    return rec["status"] == "error"


# ----------------------------------------------------------------------------- entry point


def prepare_corpus(
    out_dir: str | os.PathLike,
    *,
    num_proc: int = 2,
    collections: list[str] | None = None,
    limit: int | None = None,
    timeout_s: float = 60.0,
    voice_program: int = DEFAULT_VOICE_PROGRAM,
    progress: bool = True,
    count_tokens: Callable[[Path], int] | None = None,
) -> CorpusReport:
    """Convert music21's corpus to labelled MIDI files in ``out_dir`` (cached; see module doc).

    Args:
        out_dir: the corpus folder (created if needed).
        num_proc: worker processes.
        collections: what to convert (collections, paths or work keys; see :func:`list_works`);
            None for the whole corpus.
        limit: convert at most this many works (a round-robin sample across labels).
        timeout_s: per-work limit; a worker past it is killed and the work reported ``timeout``.
        voice_program: GM program for vocal parts (default 52, choir; MuseNet reads it as piano).
        progress: show a progress bar on stderr.
        count_tokens: optional ``path -> number of tokens`` (e.g. a tokenizer's
            ``lambda p: len(tok.encode_midi(p))``), run on every file for the tokens column.

    Returns:
        The :class:`CorpusReport`, also written to ``out_dir/report.json``, with
        ``out_dir/metadata.csv`` listing every file.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    works = list_works(collections)
    if limit is not None:
        works = works[:limit]
    manifest_path = out / MANIFEST
    records = read_records(manifest_path)
    todo = [w for w in works if not _is_cached(records.get(w.key), out, voice_program, timeout_s)]

    task = _WorkTask(out, voice_program)
    with open(manifest_path, "a", encoding="utf-8") as manifest, \
            tqdm(total=len(todo), desc="music21 corpus", unit="work", disable=not progress) as bar:
        for work, status, value in map_with_timeout(task, todo, num_proc, timeout_s):
            rec = {"key": work.key, "status": status, "path": work.relpath, "label": work.label,
                   "collection": work.collection, "source": work.source, "number": work.number,
                   "title": work.title, "voice_program": voice_program, "version": CONVERTER_VERSION}
            if status == "ok":
                rec.update(value)
            else:
                rec.update(reason=value, timeout_s=timeout_s)
                # No file without a success record (a killed worker may leave its .part file).
                target = out / work.relpath
                for stale in [target, *target.parent.glob(glob.escape(target.name) + ".*.part")]:
                    stale.unlink(missing_ok=True)
            records[work.key] = rec
            manifest.write(json.dumps(rec, ensure_ascii=False) + "\n")
            manifest.flush()  # an interrupted run keeps what it did
            bar.update(1)

    # Rewrite the manifest with one line per work (appending leaves superseded lines).
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()), encoding="utf-8")
    os.replace(tmp, manifest_path)

    ok = sorted((r for r in records.values() if r["status"] == "ok"), key=lambda r: r["path"])
    tokens: dict[str, int] = {}
    if count_tokens is not None:
        for r in tqdm(ok, desc="counting tokens", unit="file", disable=not progress):
            tokens[r["key"]] = int(count_tokens(out / r["path"]))

    report = CorpusReport(out_dir=out, converted=len(todo), cached=len(works) - len(todo))
    _fill_report(report, records, ok, tokens if count_tokens is not None else None)
    _write_metadata(out / "metadata.csv", ok, tokens)
    report.wall_time_s = time.perf_counter() - start
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return report


def _fill_report(report: CorpusReport, records: dict[str, dict[str, Any]], ok: list[dict[str, Any]],
                 tokens: dict[str, int] | None) -> None:
    """Per-label files, minutes, notes (and tokens when counted) of the ``ok`` records, the
    failures among all ``records``, and the median conversion time."""
    for r in ok:
        label = r["label"]
        report.files_per_label[label] = report.files_per_label.get(label, 0) + 1
        report.minutes_per_label[label] = report.minutes_per_label.get(label, 0.0) + r["seconds"] / 60
        report.notes_per_label[label] = report.notes_per_label.get(label, 0) + r["notes"]
        if tokens is not None:
            report.tokens_per_label[label] = report.tokens_per_label.get(label, 0) + tokens[r["key"]]
    report.failures = [{"work": r["key"], "status": r["status"], "reason": r.get("reason", "")}
                       for r in sorted(records.values(), key=lambda r: r["key"]) if r["status"] != "ok"]
    times = [r["convert_s"] for r in ok if "convert_s" in r]
    report.median_convert_s = round(statistics.median(times), 3) if times else 0.0


def _write_metadata(path: Path, ok: list[dict[str, Any]], tokens: dict[str, int]) -> None:
    """``metadata.csv``: one row per converted file (what :func:`~musenet_hf.training.data.resolve_labels` reads)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        for r in ok:
            writer.writerow({
                "path": r["path"], "label": r["label"], "collection": r["collection"],
                "source": r["source"], "number": "" if r["number"] is None else r["number"],
                "title": r["title"], "seconds": r["seconds"], "notes": r["notes"],
                "instruments": " ".join(r["instruments"]), "programs": " ".join(map(str, r["programs"])),
                "tokens": tokens.get(r["key"], ""),
            })


@dataclass(frozen=True)
class _WorkTask:
    # A picklable `work -> stats` callable for the workers (a lambda would not survive spawn).
    out_dir: Path
    voice_program: int

    def __call__(self, work: CorpusWork) -> dict[str, Any]:
        return _convert_task(work, self.out_dir, self.voice_program)
