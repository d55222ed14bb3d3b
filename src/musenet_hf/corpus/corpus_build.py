"""A broad corpus in one command: sources -> labelled, deduplicated MIDI files, split by piece.

``musenet prepare-corpus --recipe configs/corpus/broad.yaml --fetched /work/.mirror --out corpus``
(or ``--folder my_midi [--labels labels.csv]`` for a user's own music) runs:

1. **List** every source's files with their labels (:mod:`~musenet_hf.corpus.corpus_sources`); the
   music21 corpus, when the recipe asks for it, is converted first by
   :func:`~musenet_hf.corpus.music21_corpus.prepare_corpus` (cached) and read back from its ``metadata.csv``.
2. **Read** each file in worker processes with a time limit (:func:`_read_piece`): notation
   (kern, MusicXML, ABC) is converted through music21 (:mod:`~musenet_hf.corpus.corpus_convert`), every
   MIDI file is read by the package's tolerant reader. A file that cannot be read is rejected with
   its reason; nothing else is lost. Results are cached in ``<out>/.work/pieces.jsonl``.
3. **Deduplicate** by content (:func:`note_fingerprint`: the chords' pitch sets in order,
   transposed to start from 0, timing and instruments ignored): the first copy in recipe order
   is kept; every source's duplicates are counted. A piece whose notes are those of a file under
   the recipe's ``exclude_content_of`` folders (files reserved for evaluation) is left out.
4. **Labels**: a label outside the extended vocabulary's own list gets a token of its own only
   with at least ``min_pieces_new_label`` pieces; below that its pieces are kept unlabelled.
5. **Split** by piece into train / validation / evaluation, per label, by a seeded hash of the
   fingerprint (:func:`assign_splits`): the same corpus and seed give the same split.
6. **Write** the kept files as ``<out>/<label>/<source>__<name>.mid``, ``metadata.csv`` (one row
   per piece with its split), ``report.json`` (sources, rejections, duplicates, pieces and tokens
   per label and split) and ``statistics.json`` (the evaluation pieces' musical statistics per
   label: the targets a model is measured against).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import statistics
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..worker_pool import map_with_timeout
from .corpus_sources import SourceFile, SourceSpec, list_source_files, materialize, spec_names
from .music21_corpus import prepare_corpus, read_records

# Bump when reading changes its results: every cached record is then redone.
READER_VERSION = 1
# Bump when converting notation changes (its failures are then retried; a converted file is reused).
CONVERTER_VERSION = 2
SPLITS = ("train", "validation", "evaluation")
UNLABELLED = "_unlabelled"  # the folder of pieces without a style token
MAX_PIECE_SECONDS = 3 * 3600  # longer "pieces" are damaged time values (a stray note hours later)
STATS_SECONDS = 30.0  # the evaluation statistics describe a piece's first 30 s (what a model is asked for)
STAT_KEYS = ("note_length_median", "notes_per_second", "polyphony_mean", "pitch_class_entropy")
METADATA_COLUMNS = ("path", "label", "split", "source", "source_path", "title", "seconds", "notes", "tokens",
                    "instruments", "fingerprint")


@dataclass
class CorpusRecipe:
    """What to build: the sources in priority order (the first copy of a duplicate wins), the
    music21 corpus or not, the split and the label threshold."""

    sources: list[SourceSpec] = field(default_factory=list)
    music21: bool = False
    music21_exclude: tuple[str, ...] = ()
    music21_limit: int | None = None
    seed: int = 0
    validation: float = 0.05
    evaluation: float = 0.05
    min_pieces_new_label: int = 50
    timeout_s: float = 120.0
    exclude_content_of: list[Path] = field(default_factory=list)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CorpusRecipe":
        """Read a recipe (``configs/corpus/broad.yaml`` documents the keys)."""
        import yaml

        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        m21 = data.get("music21") or {}
        recipe = cls(sources=[SourceSpec.from_dict(d, path.parent) for d in data.get("sources") or []],
                     music21=bool(m21), music21_exclude=tuple(m21.get("exclude", ())) if isinstance(m21, dict) else (),
                     music21_limit=m21.get("limit") if isinstance(m21, dict) else None,
                     seed=int(data.get("seed", 0)), validation=float(data.get("validation", 0.05)),
                     evaluation=float(data.get("evaluation", 0.05)),
                     min_pieces_new_label=int(data.get("min_pieces_new_label", 50)),
                     timeout_s=float(data.get("timeout_s", 120.0)),
                     exclude_content_of=[(path.parent / p).resolve() for p in data.get("exclude_content_of") or ()])
        spec_names(recipe.sources)
        return recipe


# ----------------------------------------------------------------------------- one piece


def note_fingerprint(pitch: np.ndarray, onset: np.ndarray) -> str:
    """A content hash that two copies of one piece share whatever their key, tempo or instruments.

    The notes are grouped into chords by onset (in beats, to 1/24); the chords' pitch sets in
    order, transposed so the first chord's lowest note is 0, are hashed. ``(N,)`` arrays in.
    """
    if len(pitch) == 0:
        return "empty"
    key = np.round(np.asarray(onset, dtype=np.float64) * 24).astype(np.int64)
    order = np.lexsort((pitch, key))
    p, k = np.asarray(pitch)[order], key[order]
    p = p - p[0]
    breaks = np.flatnonzero(np.diff(k)) + 1
    text = ";".join(",".join(map(str, c)) for c in np.split(p, breaks))
    return hashlib.sha1(text.encode()).hexdigest()


def arrays_fingerprint(arrays: Any) -> str:
    """:func:`note_fingerprint` of a piece's pitched notes (of all its notes when it has only drums)."""
    pitched = ~arrays.is_drum
    if not pitched.any():
        pitched = np.ones(len(arrays), dtype=bool)
    return note_fingerprint(arrays.pitch[pitched], arrays.start_beat[pitched])


@dataclass(frozen=True)
class _ReadTask:
    # A worker's job for one file (a frozen dataclass: picklable, unlike a closure).
    work_dir: Path
    realize: frozenset[str]  # sources whose lead sheets get their chord symbols played

    def __call__(self, item: SourceFile) -> dict[str, Any]:
        return _read_piece(item, self.work_dir, item.source in self.realize)


_TOKENIZER = None


def _tokenizer() -> Any:
    global _TOKENIZER  # one per worker process: building the vocabulary takes a moment
    if _TOKENIZER is None:
        from ..tokenizer.tokenization_musenet import MuseNetTokenizer

        _TOKENIZER = MuseNetTokenizer.from_preset("extended")
    return _TOKENIZER


def _read_piece(item: SourceFile, work_dir: Path, realize_chords: bool) -> dict[str, Any]:
    """Convert (notation) and read one file: its fingerprint, length, notes, tokens, instruments
    and the musical statistics of its first :data:`STATS_SECONDS`."""
    from ..evaluation.musical_statistics import clip_notes, piece_statistics
    from ..midi.midi_io import read_midi_arrays
    from .corpus_convert import convert_notation

    midi_path = item.path
    if item.is_score:
        midi_path = work_dir / "converted" / item.source / (item.rel + ".mid")
        if not midi_path.is_file():
            convert_notation(item.path, midi_path, source=item.source, realize_chords=realize_chords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = read_midi_arrays(midi_path)
    if len(arrays) == 0:
        raise ValueError("no notes")
    tok = _tokenizer()
    stats = piece_statistics(clip_notes(arrays.to_notes(), STATS_SECONDS), tok.vocabulary)
    return {
        "midi": str(midi_path),
        "fingerprint": arrays_fingerprint(arrays),
        "seconds": round(float(arrays.end.max() - arrays.start.min()), 3),
        "notes": int(len(arrays)),
        "tokens": len(tok.encode_notes(arrays)[0]),
        "instruments": sorted({str(k) for k in stats["instruments"]}),
        "stats": {k: (None if not np.isfinite(stats[k]) else round(float(stats[k]), 4)) for k in STAT_KEYS},
    }


# ----------------------------------------------------------------------------- the corpus


def assign_splits(pieces: Sequence[dict[str, Any]], seed: int, validation: float, evaluation: float) -> list[str]:
    """The split of each piece: per label, pieces ordered by ``sha1(seed:fingerprint)``; the first
    ``round(n * evaluation)`` (at least 1 from 10 pieces) go to evaluation, the next to validation."""
    out = ["train"] * len(pieces)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pieces):
        by_label[p["label"]].append(i)
    for idx in by_label.values():
        idx.sort(key=lambda i: hashlib.sha1(f"{seed}:{pieces[i]['fingerprint']}".encode()).hexdigest())
        n = len(idx)
        n_eval = max(round(n * evaluation), 1 if n >= 10 and evaluation > 0 else 0)
        n_val = max(round(n * validation), 1 if n >= 10 and validation > 0 else 0)
        for i in idx[:n_eval]:
            out[i] = "evaluation"
        for i in idx[n_eval:n_eval + n_val]:
            out[i] = "validation"
    return out


def _list_all(recipe: CorpusRecipe, fetched: Path | None, work_dir: Path, num_proc: int,
              progress: bool) -> tuple[list[SourceFile], dict[str, dict[str, Any]]]:
    """Every source's files, in recipe order, and each source's description for the report."""
    files: list[SourceFile] = []
    described: dict[str, dict[str, Any]] = {}
    if recipe.music21:
        files += _music21_files(recipe, work_dir, num_proc, progress, described)
    for spec in recipe.sources:
        root, commit = materialize(spec, fetched, work_dir)
        listed = list_source_files(spec, root)
        absent = root / ".absent"
        described[spec.name] = {"repo": spec.repo or "", "commit": commit, "folder": spec.folder,
                                "absent_from_snapshot": int(absent.read_text()) if absent.is_file() else 0,
                                "licence": spec.licence, "what": spec.what, "listed": len(listed),
                                "realize_chords": spec.realize_chords}
        files += listed
    return files, described


def _music21_files(recipe: CorpusRecipe, work_dir: Path, num_proc: int, progress: bool,
                   described: dict[str, dict[str, Any]]) -> list[SourceFile]:
    """The music21 corpus, converted by :func:`~musenet_hf.corpus.music21_corpus.prepare_corpus` (cached)."""
    import music21

    from .corpus_works import list_works

    collections = sorted({w.collection for w in list_works(None)} - set(recipe.music21_exclude))
    folder = work_dir / "music21"
    # prepare_corpus takes the first `limit` works of the same round-robin order as list_works.
    works = list_works(collections)[: recipe.music21_limit]
    report = prepare_corpus(folder, num_proc=num_proc, collections=collections, limit=recipe.music21_limit,
                            progress=progress)
    paths, keys = {w.relpath for w in works}, {w.key for w in works}
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["path"] in paths]
    failures = [f for f in report.failures if f["work"] in keys]
    described["music21"] = {"repo": "music21 corpus", "commit": f"music21 {music21.__version__}", "folder": "",
                            "licence": "music21's corpus (BSD/LGPL package; scores public domain or as marked)",
                            "what": "the corpus shipped inside music21" + (
                                f" (its first {recipe.music21_limit} works, round-robin over labels)"
                                if recipe.music21_limit else ""),
                            "listed": len(rows) + len(failures), "conversion_failures": len(failures),
                            "realize_chords": False}
    return [SourceFile("music21", folder / r["path"], r["path"], r["label"], r["title"] or Path(r["path"]).stem)
            for r in rows]


def _read_all(files: list[SourceFile], work_dir: Path, realize: frozenset[str], num_proc: int, timeout_s: float,
              progress: bool) -> list[dict[str, Any]]:
    """Read every file (cached by path, size and time in ``pieces.jsonl``); the records in file order."""
    from tqdm.auto import tqdm

    cache_path = work_dir / "pieces.jsonl"
    cache = read_records(cache_path)

    def key(f: SourceFile) -> str:
        st = f.path.stat()
        version = f"{READER_VERSION}.{CONVERTER_VERSION}" if f.is_score else str(READER_VERSION)
        return f"{version}|{f.source}|{f.rel}|{st.st_size}|{st.st_mtime_ns}|{int(f.source in realize)}"

    keys = {id(f): key(f) for f in files}
    todo = [f for f in files if keys[id(f)] not in cache]
    with open(cache_path, "a", encoding="utf-8") as out, \
            tqdm(total=len(todo), desc="reading pieces", unit="file", disable=not progress) as bar:
        for item, status, value in map_with_timeout(_ReadTask(work_dir, realize), todo, num_proc, timeout_s):
            rec = {"key": keys[id(item)], "status": status}
            rec.update(value if status == "ok" else {"reason": str(value)[:300]})
            cache[rec["key"]] = rec
            out.write(json.dumps(rec) + "\n")
            out.flush()
            bar.update(1)
    return [cache[keys[id(f)]] for f in files]


def _known_labels() -> set[str]:
    from ..tokenizer.vocabulary import preset_config

    return set(preset_config("extended").composers)


def build_corpus(recipe: CorpusRecipe, out_dir: str | Path, *, fetched: str | Path | None = None,
                 num_proc: int = 2, progress: bool = True) -> dict[str, Any]:
    """Build the corpus of ``recipe`` in ``out_dir`` (see the module docstring); return the report.

    Args:
        recipe: the sources and settings.
        out_dir: the corpus folder; its ``.work`` sub-folder keeps the caches.
        fetched: the folder holding fetched repository snapshots (``<owner>+<name>/repo``).
        num_proc: worker processes.
        progress: progress bars on stderr.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    work_dir = out / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    files, described = _list_all(recipe, Path(fetched) if fetched else None, work_dir, num_proc, progress)
    realize = frozenset(s.name for s in recipe.sources if s.realize_chords)
    records = _read_all(files, work_dir, realize, num_proc, recipe.timeout_s, progress)
    pieces, per_source = _deduplicate(files, records, set(folder_fingerprints(recipe.exclude_content_of)))
    _apply_label_threshold(pieces, recipe.min_pieces_new_label)
    for p, split in zip(pieces, assign_splits(pieces, recipe.seed, recipe.validation, recipe.evaluation)):
        p["split"] = split
    _write_files(pieces, out)
    for name, counts in per_source.items():
        described.setdefault(name, {}).update(counts)
    report = _report(pieces, described, recipe, time.perf_counter() - start)
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "statistics.json").write_text(json.dumps(evaluation_statistics(pieces), indent=1) + "\n", encoding="utf-8")
    return report


def folder_fingerprints(folders: Sequence[Path]) -> dict[str, Path]:
    """Fingerprint -> file of the MIDI files under ``folders`` (files reserved for evaluation or
    tests); unreadable files and missing folders are passed over."""
    from ..errors import MidiReadError
    from ..midi.midi_io import read_midi_arrays
    from ..tokenizer.tokenization_musenet import list_midi_files

    found: dict[str, Path] = {}
    for folder in folders:
        for path in list_midi_files(folder) if Path(folder).is_dir() else ():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arrays = read_midi_arrays(path)
            except MidiReadError:
                continue
            if len(arrays):
                found.setdefault(arrays_fingerprint(arrays), path)
    return found


def _deduplicate(files: list[SourceFile], records: list[dict[str, Any]], reserved: set[str]
                 ) -> tuple[list[dict[str, Any]], dict]:
    """The readable files, first copy of each fingerprint only, none of ``reserved``; per source:
    read, rejected by reason, reserved, duplicates (of an earlier file of the same source / of
    another source), kept."""
    per_source: dict[str, dict[str, Any]] = defaultdict(lambda: {"read": 0, "rejected": Counter(), "reserved": 0,
                                                                 "duplicates_within": 0, "duplicates_across": 0,
                                                                 "kept": 0})
    first: dict[str, str] = {}  # fingerprint -> the source that kept it
    pieces = []
    for f, rec in zip(files, records):
        counts = per_source[f.source]
        if rec["status"] != "ok":
            counts["rejected"][_reason(rec)] += 1
            continue
        counts["read"] += 1
        if rec["seconds"] > MAX_PIECE_SECONDS:
            counts["rejected"][f"longer than {MAX_PIECE_SECONDS // 3600} hours (damaged time values)"] += 1
            continue
        fp = rec["fingerprint"]
        if fp in reserved:
            counts["reserved"] += 1
            continue
        if fp in first:
            counts["duplicates_within" if first[fp] == f.source else "duplicates_across"] += 1
            continue
        first[fp] = f.source
        counts["kept"] += 1
        pieces.append({"file": f, "label": f.label, **{k: rec[k] for k in (
            "midi", "fingerprint", "seconds", "notes", "tokens", "instruments", "stats")}})
    for counts in per_source.values():
        counts["rejected"] = dict(sorted(counts["rejected"].items()))
    return pieces, dict(per_source)


def _reason(rec: dict[str, Any]) -> str:
    """A short reason class for the report: ``timeout``, ``crashed``, or the error's type and message head."""
    if rec["status"] in ("timeout", "crashed"):
        return rec["status"]
    reason = rec.get("reason", "").split(" (starts with")[0]  # the bytes would make every reason unique
    kind, _, msg = reason.partition(":")
    msg = msg.strip()
    # File-specific detail (the path a reader names) would make every reason unique.
    for marker in (": ", " ("):
        if marker in msg and "/" in msg.split(marker)[0]:
            msg = msg.split(marker, 1)[1]
    return f"{kind}: {msg[:60]}".strip(": ")


def _apply_label_threshold(pieces: list[dict[str, Any]], minimum: int) -> None:
    """Labels outside the extended vocabulary's list need ``minimum`` pieces for a token of their own."""
    known = _known_labels()
    counts = Counter(p["label"] for p in pieces)
    for p in pieces:
        if p["label"] and p["label"] not in known and counts[p["label"]] < minimum:
            p["below_threshold"] = p["label"]
            p["label"] = ""


def _write_files(pieces: list[dict[str, Any]], out: Path) -> None:
    """Copy the kept files into ``out/<label>/`` and write ``metadata.csv`` (stale files removed)."""
    import re

    wanted: dict[Path, dict[str, Any]] = {}
    for p in pieces:
        f: SourceFile = p["file"]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f.rel.rsplit(".", 1)[0]).strip("_")[:120]
        target = out / (p["label"] or UNLABELLED) / f"{f.source}__{stem}.mid"
        n = 1
        while target in wanted:
            n += 1
            target = target.with_name(f"{f.source}__{stem}_{n}.mid")
        wanted[target] = p
        p["path"] = target.relative_to(out).as_posix()
    for old in out.rglob("*.mid"):
        if ".work" not in old.relative_to(out).parts and old not in wanted:
            old.unlink()
    for target, p in wanted.items():
        src = Path(p["midi"])
        if not target.is_file() or target.stat().st_size != src.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        for p in sorted(pieces, key=lambda p: p["path"]):
            f = p["file"]
            writer.writerow({"path": p["path"], "label": p["label"], "split": p["split"], "source": f.source,
                             "source_path": f.rel, "title": f.title, "seconds": p["seconds"], "notes": p["notes"],
                             "tokens": p["tokens"], "instruments": " ".join(p["instruments"]),
                             "fingerprint": p["fingerprint"]})


def _report(pieces: list[dict[str, Any]], sources: dict[str, dict[str, Any]], recipe: CorpusRecipe,
            wall_s: float) -> dict[str, Any]:
    """``report.json``: sources, label table (pieces, tokens, minutes per split), settings, time."""
    labels: dict[str, dict[str, Any]] = {}
    for p in pieces:
        row = labels.setdefault(p["label"] or UNLABELLED, {s: {"pieces": 0, "tokens": 0, "minutes": 0.0}
                                                           for s in SPLITS})
        cell = row[p["split"]]
        cell["pieces"] += 1
        cell["tokens"] += p["tokens"]
        cell["minutes"] = round(cell["minutes"] + p["seconds"] / 60, 2)
    below = Counter(p["below_threshold"] for p in pieces if "below_threshold" in p)
    return {
        "pieces": len(pieces), "tokens": sum(p["tokens"] for p in pieces),
        "minutes": round(sum(p["seconds"] for p in pieces) / 60, 1),
        "sources": sources, "labels": dict(sorted(labels.items())),
        "below_threshold": dict(sorted(below.items())),
        "seed": recipe.seed, "fractions": {"validation": recipe.validation, "evaluation": recipe.evaluation},
        "min_pieces_new_label": recipe.min_pieces_new_label, "wall_time_s": round(wall_s, 1),
    }


def evaluation_statistics(pieces: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per label, the medians of :data:`STAT_KEYS` over its evaluation pieces' first
    :data:`STATS_SECONDS`, and the instruments they use (share of pieces)."""
    out: dict[str, dict[str, Any]] = {}
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pieces:
        if p["split"] == "evaluation":
            by_label[p["label"] or UNLABELLED].append(p)
    for label, group in sorted(by_label.items()):
        row: dict[str, Any] = {"pieces": len(group)}
        for k in STAT_KEYS:
            values = [p["stats"][k] for p in group if p["stats"][k] is not None]
            row[k] = round(statistics.median(values), 3) if values else None
        used = Counter(i for p in group for i in p["instruments"])
        row["instruments"] = {i: round(n / len(group), 2) for i, n in used.most_common()}
        out[label] = row
    return out


def format_summary(report: dict[str, Any]) -> str:
    """The report as text: sources (listed, read, rejected, duplicates, kept), then pieces per
    label and split, then the time."""
    lines = [f"{'source':<18}{'listed':>8}{'read':>8}{'rejected':>10}{'dup.':>7}{'kept':>7}", "-" * 58]
    for name, s in report["sources"].items():
        rejected = sum((s.get("rejected") or {}).values()) + s.get("conversion_failures", 0)
        dups = s.get("duplicates_within", 0) + s.get("duplicates_across", 0)
        lines.append(f"{name:<18}{s.get('listed', 0):>8}{s.get('read', 0):>8}{rejected:>10}{dups:>7}{s.get('kept', 0):>7}")
    lines += ["", f"{'label':<18}" + "".join(f"{s:>12}" for s in SPLITS) + f"{'tokens':>12}", "-" * 66]
    for label, row in report["labels"].items():
        tokens = sum(row[s]["tokens"] for s in SPLITS)
        lines.append(f"{label:<18}" + "".join(f"{row[s]['pieces']:>12}" for s in SPLITS) + f"{tokens:>12}")
    if report["below_threshold"]:
        lines.append("kept unlabelled (under {} pieces): {}".format(
            report["min_pieces_new_label"], ", ".join(f"{k} {v}" for k, v in report["below_threshold"].items())))
    lines.append(f"{report['pieces']} pieces, {report['minutes']} minutes, {report['tokens']} tokens "
                 f"in {report['wall_time_s']:.0f} s")
    return "\n".join(lines)
