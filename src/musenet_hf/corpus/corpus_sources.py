"""Where the files of a broad corpus come from, and the label each one gets.

A corpus recipe (``configs/corpus/broad.yaml``) names its sources: public repositories brought
onto the machine (the search tool's ``fetch`` leaves a bare git snapshot per repository under one
folder, ``/work/.mirror/<owner>+<name>/repo``), a user's own folders, and a labels CSV. Each
source says which files to take and how to label them:

- ``label: video``: one label for the whole source (game music, a jazz collection);
- ``label_from: folder``: the first sub-folder's name (``chopin/ballade1.mid``);
- ``label_from: filename`` with a ``pattern`` whose group ``name`` captures the composer
  (``"Chopin, Frederic - Ballade No.1.mid"``), then ``composers`` (label -> regex over that name)
  decide the label; a name no rule matches is unlabelled (kept as music, without a style token);
- ``label_from: leadsheet``: the Wikifonia naming (``"Composers - Title"``) with the rules of a
  labels file (:func:`leadsheet_label`), judged per song;
- ``label_from: csv``: a ``path,label[,instruments]`` table (paths inside the source).

Labels stay honest: a style token is given only where the source is that style. Everything here
is pure listing; reading and converting the files is :mod:`~musenet_hf.corpus.corpus_build`.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

# Collections reserved for evaluation: never trained on (docs/data.md). A source whose
# repository or folder names one of them is refused.
RESERVED_SOURCES = ("pop909", "nottingham", "drywetmidi", "piano-e-competition", "maestro",
                    "asap-dataset", "e-competition")
# File names that betray MAESTRO / Piano-e-Competition performances (their own naming).
RESERVED_FILE_PATTERN = re.compile(r"MIDI-Unprocessed|ORIG-MIDI|MIDI-UNPROCESSED|_mid--AUDIO|"
                                   r"^\d{4}/.*_wav--\d", re.IGNORECASE)

MIDI_FORMATS = (".mid", ".midi", ".kar", ".rmi")
SCORE_FORMATS = (".krn", ".mxl", ".musicxml", ".xml", ".abc", ".hum")


@dataclass(frozen=True)
class SourceFile:
    """One input file of a corpus.

    Attributes:
        source: the source's name (``"midiplayers"``).
        path: where the file is on this machine.
        rel: its path inside the source (``"audio/Chopin - Ballade No.1.mid"``).
        label: the composer/style label, or ``""`` for none.
        title: a readable title (the file name without its suffix).
        instruments: MuseNet instrument names to play it on (from a labels CSV), or empty.
    """

    source: str
    path: Path
    rel: str
    label: str
    title: str
    instruments: tuple[str, ...] = ()

    @property
    def is_score(self) -> bool:
        """A notation file (kern, MusicXML, ABC) that music21 converts, not a MIDI file."""
        return self.path.suffix.lower() in SCORE_FORMATS


@dataclass
class SourceSpec:
    """One source of a corpus recipe (see the module docstring for the label rules).

    Attributes:
        name: a short name, unique in the recipe (file names and reports use it).
        repo: ``owner/name`` of a fetched repository, or None for a local ``folder``.
        commit: the commit to read (None: the snapshot's HEAD, or ``ref``).
        ref: a branch of the snapshot to read when no commit is given.
        folder: the folder inside the repository (or a local folder when ``repo`` is None).
        formats: file suffixes to take.
        exclude: regexes over the path inside the source; a matching file is skipped.
        label: a fixed label for every file, or None.
        label_from: ``"folder"``, ``"filename"``, ``"leadsheet"``, ``"csv"``, or None.
        pattern: with ``label_from: filename``: a regex over the file name with a group ``name``.
        composers: with ``filename``: label -> regex over the captured name (first match wins).
        rules: with ``leadsheet``: the path of a labels YAML (relative to the recipe).
        table: with ``csv``: the path of the table (relative to the recipe).
        unlabelled: ``"keep"`` (train without a style token) or ``"skip"`` files no rule labels.
        realize_chords: lead sheets: also play the chord symbols on the piano
            (:func:`~musenet_hf.corpus.corpus_convert.realize_chord_symbols`).
        licence: the licence as the source states it (for the data card).
        what: one line on what the source is.
    """

    name: str
    repo: str | None = None
    commit: str | None = None
    ref: str | None = None
    folder: str = ""
    formats: tuple[str, ...] = MIDI_FORMATS
    exclude: tuple[str, ...] = ()
    label: str | None = None
    label_from: str | None = None
    pattern: str | None = None
    composers: dict[str, str] = field(default_factory=dict)
    rules: str | None = None
    table: str | None = None
    unlabelled: str = "keep"
    realize_chords: bool = False
    licence: str = "none stated"
    what: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path) -> "SourceSpec":
        """A spec from one ``sources:`` entry; paths (rules, table, a local folder) resolve against ``base``."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"source {d.get('name', '?')!r}: unknown keys {unknown} (known: {sorted(known)})")
        spec = cls(**{**d, "formats": tuple(s.lower() for s in d.get("formats", MIDI_FORMATS)),
                      "exclude": tuple(d.get("exclude", ()))})
        if spec.label is None and spec.label_from not in ("folder", "filename", "leadsheet", "csv"):
            raise ValueError(f"source {spec.name!r}: give a label or label_from (folder, filename, leadsheet, csv)")
        if spec.label_from == "filename" and (not spec.pattern or "(?P<name>" not in spec.pattern):
            raise ValueError(f"source {spec.name!r}: label_from filename needs a pattern with a group 'name'")
        if spec.unlabelled not in ("keep", "skip"):
            raise ValueError(f"source {spec.name!r}: unlabelled must be keep or skip, not {spec.unlabelled!r}")
        for attr in ("rules", "table"):
            if getattr(spec, attr):
                setattr(spec, attr, str((base / getattr(spec, attr)).resolve()))
        if spec.repo is None:
            spec.folder = str((base / spec.folder).resolve()) if spec.folder else ""
        check_not_reserved(spec)
        return spec


def check_not_reserved(spec: SourceSpec) -> None:
    """Refuse a source that is one of the collections reserved for evaluation."""
    where = f"{spec.repo or ''}/{spec.folder}/{spec.name}".lower()
    for reserved in RESERVED_SOURCES:
        if reserved in where.replace("_", "-"):
            raise ValueError(f"source {spec.name!r} ({spec.repo or spec.folder}) is {reserved}, "
                             "reserved for evaluation: it is never trained on")


# ----------------------------------------------------------------------------- files on disk


def snapshot_dir(fetched: Path, repo: str) -> Path:
    """The fetched snapshot of ``owner/name`` under ``fetched``: a bare git dir or a work tree."""
    base = fetched / repo.replace("/", "+")
    for candidate in (base / "repo", base):
        if (candidate / "HEAD").is_file() or (candidate / ".git").exists():
            return candidate
    raise FileNotFoundError(f"{repo}: no snapshot at {base} (fetch it with the search tool's fetch, "
                            f"or pass --fetched with the folder that holds {base.name})")


def materialize(spec: SourceSpec, fetched: Path | None, work_dir: Path) -> tuple[Path, str]:
    """The folder holding the source's files, and the commit read (``""`` for a local folder).

    A snapshot's files of the source's formats under ``spec.folder`` are written once into
    ``work_dir/sources/<name>`` (``git cat-file --batch``); a later call with the same commit
    reuses them. A snapshot may lack large files (the fetch leaves out files of 4 MB and more):
    those are skipped and their number is written to ``.absent`` beside the files.
    """
    if spec.repo is None:
        folder = Path(spec.folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"source {spec.name!r}: folder not found: {folder}")
        return folder, ""
    if fetched is None:
        raise ValueError(f"source {spec.name!r} is the repository {spec.repo}: pass --fetched DIR")
    snap = snapshot_dir(fetched, spec.repo)
    git = ["git", f"--git-dir={snap if (snap / 'HEAD').is_file() else snap / '.git'}"]
    rev = spec.commit or spec.ref or "HEAD"
    commit = subprocess.run([*git, "rev-parse", f"{rev}^{{commit}}"], capture_output=True, text=True)
    if commit.returncode != 0:
        raise ValueError(f"source {spec.name!r}: {spec.repo} has no commit {rev!r}: {commit.stderr.strip()}")
    sha = commit.stdout.strip()
    out = work_dir / "sources" / spec.name
    stamp = out / ".commit"
    if not (stamp.is_file() and stamp.read_text().strip() == sha):
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        absent = _export_files(git, sha, spec, out)
        (out / ".absent").write_text(f"{absent}\n")
        stamp.write_text(sha + "\n")
    return out, sha


def _export_files(git: list[str], sha: str, spec: SourceSpec, out: Path) -> int:
    """Write the blobs of ``spec``'s formats under its folder at commit ``sha`` into ``out``;
    return how many the snapshot lacks."""
    listing = subprocess.run([*git, "ls-tree", "-r", "-z", sha, "--", spec.folder or "."],
                             capture_output=True, check=True).stdout.decode("utf-8", "surrogateescape")
    wanted = []  # (blob id, path)
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        if meta.split()[1] == "blob" and _suffix(Path(path)) in spec.formats:
            wanted.append((meta.split()[2], path))
    batch = subprocess.run([*git, "cat-file", "--batch"], input="".join(f"{b}\n" for b, _ in wanted).encode(),
                           capture_output=True, check=True).stdout
    pos, absent = 0, 0
    for _, path in wanted:
        header_end = batch.index(b"\n", pos)
        header = batch[pos:header_end].split()
        if header[-1] == b"missing":
            absent, pos = absent + 1, header_end + 1
            continue
        size = int(header[2])
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(batch[header_end + 1: header_end + 1 + size])
        pos = header_end + 1 + size + 1  # the blob, then a newline
    return absent


def list_source_files(spec: SourceSpec, root: Path) -> list[SourceFile]:
    """The files of one source (under ``root``, the materialized folder), labelled, sorted by path."""
    base = root / spec.folder if spec.repo is not None and spec.folder else root
    excluded = [re.compile(x) for x in spec.exclude]
    table = _read_table(Path(spec.table)) if spec.label_from == "csv" else {}
    rules = load_leadsheet_rules(Path(spec.rules)) if spec.label_from == "leadsheet" else None
    out = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or _suffix(path) not in spec.formats:
            continue
        if any(x.search(rel) for x in excluded):
            continue
        if RESERVED_FILE_PATTERN.search(rel):
            raise ValueError(f"source {spec.name!r}: {rel} looks like a MAESTRO / Piano-e-Competition "
                             "performance, reserved for evaluation")
        instruments: tuple[str, ...] = ()
        if spec.label is not None:
            label = spec.label
        elif spec.label_from == "folder":
            label = rel.split("/")[0] if "/" in rel else ""
        elif spec.label_from == "filename":
            label = filename_label(path.name, spec.pattern or "", spec.composers)
        elif spec.label_from == "leadsheet":
            label = leadsheet_label(rel, rules or {})
        else:
            row = table.get(rel)
            if row is None:
                continue  # the table lists what to take
            label, instruments = row
        if not label and spec.unlabelled == "skip":
            continue
        out.append(SourceFile(spec.name, path, rel, normalize_label(label) if label else "",
                              _title(path), instruments))
    return out


def _suffix(path: Path) -> str:
    # ".mxl.1" (a second copy a crawler saved) is not a format: such files are skipped.
    return path.suffix.lower()


def _title(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def normalize_label(name: str) -> str:
    """A label as a token name: lower case ASCII letters and digits (``"Rachmaninov" -> "rachmaninov"``)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", text.lower())


def filename_label(filename: str, pattern: str, composers: dict[str, str]) -> str:
    """The label of ``"Chopin, Frederic - Ballade.mid"``: the ``name`` the pattern captures,
    matched against ``composers`` (label -> regex, first match wins); ``""`` when nothing matches."""
    m = re.search(pattern, filename)
    if not m:
        return ""
    name = m.group("name").strip()
    for label, regex in composers.items():
        if re.search(regex, name, re.IGNORECASE):
            return label
    return ""


def _read_table(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """A labels CSV: ``path,label[,instruments]`` -> {path: (label, instruments)}."""
    if not path.is_file():
        raise FileNotFoundError(f"labels table not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: the labels CSV needs the columns path and label (missing {sorted(missing)})")
        rows = {}
        for r in reader:
            inst = tuple(x for x in re.split(r"[\s,;_]+", r.get("instruments") or "") if x)
            rows[Path(r["path"]).as_posix()] = ((r["label"] or "").strip(), inst)
    return rows


# ----------------------------------------------------------------------------- lead sheets


def load_leadsheet_rules(path: Path) -> dict[str, Any]:
    """The label rules of a lead-sheet collection (``configs/corpus/leadsheet_labels.yaml``)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    labels = data.get("labels") or {}
    order = data.get("order") or list(labels)
    compiled = []
    for label in order:
        rule = labels[label]
        compiled.append((label,
                         [re.compile(r, re.IGNORECASE) for r in rule.get("composers") or ()],
                         {_norm_title(t) for t in rule.get("titles") or ()},
                         {_norm_title(t) for t in rule.get("exclude_titles") or ()}))
    return {"rules": compiled}


def _norm_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def split_leadsheet_name(rel: str) -> tuple[str, str]:
    """``(composers, title)`` of a lead sheet: ``"Composers - Title.mxl"`` (Wikifonia) or
    ``"Composer_A-Composer_B/Title/Title.mxl"`` (OpenEWLD's folders)."""
    parts = rel.split("/")
    if len(parts) >= 3:
        return parts[-3].replace("_", " ").replace("-", ", "), parts[-2].replace("_", " ")
    stem = _title(Path(parts[-1]))
    composers, sep, title = stem.partition(" - ")
    return (composers, title) if sep else ("", stem)


def leadsheet_label(rel: str, rules: dict[str, Any]) -> str:
    """The label of one lead sheet by the rules (first label whose title list or composer regexes
    match, unless its exclusions name the title); ``""`` when none does. Titles compare in lower
    case with punctuation ignored."""
    composers, title = split_leadsheet_name(rel)
    # The title after the last " - " too: "John Lennon - Paul McCartney - Yesterday".
    names = {_norm_title(title), _norm_title(title.rsplit(" - ", 1)[-1])}
    for label, regexes, titles, excluded in rules.get("rules", ()):
        if names & excluded:
            continue
        if names & titles or any(r.search(composers) for r in regexes):
            return label
    return ""


def user_folder_spec(folder: str | os.PathLike, labels_csv: str | os.PathLike | None = None,
                     name: str | None = None) -> SourceSpec:
    """A source for a user's folder: labels from the sub-folder names, or from a labels CSV."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    spec = SourceSpec(name=name or normalize_label(folder.name) or "folder", folder=str(folder),
                      formats=MIDI_FORMATS + SCORE_FORMATS, licence="the user's own")
    if labels_csv is not None:
        spec.label_from, spec.table = "csv", str(Path(labels_csv).resolve())
    else:
        spec.label_from = "folder"
    return spec


def spec_names(specs: Iterable[SourceSpec]) -> list[str]:
    """The names of ``specs``, checked unique."""
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two sources share the name(s) {dup}")
    return names


__all__: Sequence[str] = ("SourceFile", "SourceSpec", "materialize", "list_source_files", "user_folder_spec",
                          "leadsheet_label", "filename_label", "RESERVED_SOURCES")
