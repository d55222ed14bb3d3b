"""MIDI folders -> ``datasets``, and training windows with structural positions.

Three steps, each small:

1. :func:`load_midi_folder` reads a folder of MIDI files (recursively) into a
   ``datasets.DatasetDict`` with ``train`` and ``validation`` splits: one row per piece with its
   conditioning prefix, its body ids, its length in seconds and (for augmentation) its notes.
   Labels (composer/style) come from sub-folder names, a metadata CSV/JSON file, a mapping or a
   function. A folder prepared by ``musenet prepare-corpus --recipe/--folder`` brings its own
   split (train, validation, evaluation) in ``metadata.csv``; then only its listed pieces are read,
   and the ``evaluation`` split is kept apart (the training loop reads ``train`` and ``validation``). Encoding runs in the tokenizer's ``encode_files`` (``num_proc`` worker processes, the
   package's one pool; a file that hangs or crashes its worker is skipped); the result is cached
   under ``cache_dir`` (never ``~/.cache``); unreadable files are reported and skipped. The split
   is decided by a hash of each file's bytes, so it is stable across runs and machines and a
   piece stored twice lands in one split only.
2. :class:`MuseNetWindows` cuts pieces into context-length windows on the fly (numpy slicing):
   every window starts with the piece's prefix (``[composer] [instrumentation] start``), then
   the notes still sounding at the cut, struck again, then a slice of the body
   (:func:`continuation_ids`); only a piece's last window holds ``end``. Each window carries
   ``piece_seconds`` and ``time_offset_seconds``, from which the model derives the part and
   countdown positions of the whole piece. Training windows take random offsets and
   augmentation drawn from ``(seed, epoch, index)``; validation windows tile each piece.
3. :class:`~musenet_hf.training.batching.MuseNetCollator` pads a list of windows into a batch
   (:mod:`~musenet_hf.training.batching`, with the Accelerate loop's sampler).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..midi.midi_notes import NoteArrays
from ..tokenizer.tokenization_musenet import EncodedPiece, MuseNetTokenizer, list_midi_files
from ..tokenizer.sounding import note_key, sounding_note_ons
from ..tokenizer.vocabulary import MuseNetVocabulary
from .augmentation import AugmentationConfig, augment

# Bump when the stored columns or their meaning change: old caches are then not reused.
DATA_FORMAT_VERSION = 1
_ROWS_PER_TABLE = 256  # pieces converted to an Arrow table at a time (see load_midi_folder)
METADATA_FILES = ("metadata.csv", "metadata.json", "metadata.jsonl")
LabelSource = str | os.PathLike | Mapping[str, str] | Callable[[Path], str | None] | None


# ---------------------------------------------------------------------- files and labels
def _read_metadata(path: Path, root: Path) -> dict[str, str]:
    """``relative path -> label`` from a CSV (columns ``path``, ``label``) or JSON file.

    JSON may be a mapping ``{path: label}`` or a list of ``{"path": ..., "label": ...}``; JSON
    lines hold one such object per line. Paths may be absolute or relative to ``root``.
    """
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(r["path"], r["label"]) for r in csv.DictReader(f)]
    elif path.suffix == ".jsonl":
        rows = [(d["path"], d["label"]) for d in map(json.loads, path.read_text("utf-8").splitlines()) if d]
    else:
        data = json.loads(path.read_text("utf-8"))
        rows = list(data.items()) if isinstance(data, dict) else [(d["path"], d["label"]) for d in data]
    out = {}
    for p, label in rows:
        p = Path(p)
        rel = p.relative_to(root) if p.is_absolute() else p
        out[rel.as_posix()] = label
    return out


def resolve_labels(root: str | os.PathLike, files: Sequence[Path], labels: LabelSource = "auto") -> list[str | None]:
    """The composer/style label of each file.

    Args:
        root: the folder the files were found in.
        files: the files (under ``root``).
        labels: ``"auto"`` (a ``metadata.csv``/``.json``/``.jsonl`` in ``root`` if there is one,
            else the first sub-folder name, else no label); ``"folder"`` (sub-folder names only);
            a path to a metadata file; a mapping from relative path (or file name) to label; a
            function of the file path; or ``None`` (no labels).
    """
    root = Path(root)
    rel = [f.relative_to(root).as_posix() for f in files]
    if labels is None:
        return [None] * len(files)
    if callable(labels):
        return [labels(f) for f in files]
    if isinstance(labels, Mapping):
        return [labels.get(r, labels.get(Path(r).name)) for r in rel]
    if labels == "auto":
        meta = next((root / m for m in METADATA_FILES if (root / m).is_file()), None)
        if meta is not None:
            return resolve_labels(root, files, meta)
        labels = "folder"
    if labels == "folder":
        return [r.split("/")[0] if "/" in r else None for r in rel]
    table = _read_metadata(Path(labels), root)
    return [table.get(r, table.get(Path(r).name)) for r in rel]


def read_saved_splits(root: str | os.PathLike) -> dict[str, str] | None:
    """``relative path -> split`` from a ``metadata.csv`` with a ``split`` column (what
    ``musenet prepare-corpus --recipe/--folder`` writes: train, validation or evaluation);
    None when the folder has no such file."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "split" not in (reader.fieldnames or ()):
            return None
        return {Path(r["path"]).as_posix(): r["split"] for r in reader}


def split_of(digest: str, validation_fraction: float) -> str:
    """``"validation"`` or ``"train"`` from a file's SHA-1 hex digest (stable everywhere)."""
    return "validation" if int(digest[:8], 16) / 2**32 < validation_fraction else "train"


# ---------------------------------------------------------------------- encoding
def _piece_row(piece: EncodedPiece, composer: str, split: str | None, validation_fraction: float, keep_notes: bool,
               vocab: MuseNetVocabulary) -> dict[str, Any]:
    """The dataset columns of one encoded piece (see :class:`EncodedFolder`); ``split`` is the
    saved one, or None to decide it by the file's hash."""
    notes = piece.notes
    return {
        "split": split or split_of(piece.sha1, validation_fraction), "composer": composer,
        "instruments": "_".join(piece.instruments), "prefix": piece.prefix, "body": piece.body,
        "num_tokens": len(piece.body), "piece_seconds": vocab.seconds(piece.body),
        "notes": notes.to_matrix().ravel().tolist() if keep_notes else [],
        "tempos": [x for tb in (notes.tempos or [(0.0, 120.0)]) for x in tb] if keep_notes else [],
    }


@dataclass
class EncodedFolder:
    """The result of :func:`load_midi_folder`.

    Attributes:
        dataset: ``DatasetDict`` with ``train`` and ``validation``; columns ``file`` (path
            relative to the folder), ``label``, ``composer`` (the label when it is a composer
            token of the vocabulary, else ``""``), ``instruments``, ``split``, ``prefix``,
            ``body`` (note/wait ids; no prefix, no ``end``), ``num_tokens``, ``piece_seconds``,
            ``notes`` (the flattened ``NoteArrays.to_matrix()``, for augmentation),
            ``tempos`` (flattened ``(seconds, bpm)`` pairs).
        failed: the reason per relative path for every file that was skipped.
        cache_path: where the encoded folder is cached (``None``: not cached).
    """

    dataset: Any
    failed: dict[str, str] = field(default_factory=dict)
    cache_path: str | None = None

    def report(self, show_failed: int = 20) -> str:
        """Pieces, minutes of music and tokens per split and per label, then the skipped files
        (the first ``show_failed`` of them with their reasons)."""
        lines, per_label = [], {}
        for name, ds in self.dataset.items():
            cols = ds.select_columns(["label", "piece_seconds", "num_tokens"]).to_dict()
            lines.append(f"{name}: {len(ds)} pieces, {sum(cols['piece_seconds']) / 60:.1f} min of music, "
                         f"{sum(cols['num_tokens'])} tokens")
            for label, secs, n in zip(cols["label"], cols["piece_seconds"], cols["num_tokens"]):
                c = per_label.setdefault(label or "(no label)", [0, 0.0, 0])
                c[0], c[1], c[2] = c[0] + 1, c[1] + secs, c[2] + n
        lines += [f"  {label}: {c[0]} pieces, {c[1] / 60:.1f} min, {c[2]} tokens"
                  for label, c in sorted(per_label.items())]
        lines.append(f"skipped {len(self.failed)} files")
        failed = sorted(self.failed.items())
        lines += [f"  {p}: {r}" for p, r in failed[:show_failed]]
        if len(failed) > show_failed > 0:
            lines.append(f"  ... and {len(failed) - show_failed} more")
        return "\n".join(lines)


def _piece_features() -> Any:
    """The columns of an encoded folder, in order (see :class:`EncodedFolder`)."""
    from datasets import Features, List, Value

    return Features({
        "file": Value("string"), "label": Value("string"), "composer": Value("string"), "split": Value("string"),
        "instruments": Value("string"), "prefix": List(Value("int32")), "body": List(Value("int32")),
        "num_tokens": Value("int32"), "piece_seconds": Value("float64"), "notes": List(Value("float64")),
        "tempos": List(Value("float64")),
    })


def load_midi_folder(
    folder: str | os.PathLike,
    tokenizer: MuseNetTokenizer,
    *,
    labels: LabelSource = "auto",
    unknown_labels: str = "ignore",
    validation_fraction: float = 0.05,
    num_proc: int = 1,
    cache_dir: str | os.PathLike | None = None,
    keep_notes: bool = True,
    sustain: bool = True,
    progress: bool = True,
    timeout_s: float | None = None,
) -> EncodedFolder:
    """Encode every MIDI file under ``folder`` into a train/validation ``DatasetDict``.

    Args:
        folder: the root folder (searched recursively for .mid/.midi/.kar/.rmi).
        tokenizer: the tokenizer whose vocabulary the ids use.
        labels: where composer/style labels come from (see :func:`resolve_labels`).
        unknown_labels: what to do with a label that is not a composer token of the vocabulary:
            ``"ignore"`` (keep it in the ``label`` column, leave the prefix without a composer),
            ``"add"`` (append it to ``tokenizer.vocabulary``; the model's vocabulary must grow
            with it) or ``"error"``.
        validation_fraction: share of files (by content hash) in the validation split.
        num_proc: worker processes (the tokenizer's :meth:`~MuseNetTokenizer.encode_files`).
        cache_dir: folder for the encoded dataset; a second call with the same files,
            vocabulary and options loads it from there. ``None``: no cache.
        keep_notes: store the note arrays (needed for augmentation).
        sustain: extend notes held by the sustain pedal.
        progress: show a progress bar over the files.
        timeout_s: with ``num_proc`` > 1, a file that takes longer is skipped (``None``: no limit).

    Returns:
        An :class:`EncodedFolder` (the splits, the skipped files and the cache path).
    """
    from datasets import load_from_disk

    root = Path(folder).resolve()
    files, saved = _folder_files(root)
    raw_labels = resolve_labels(root, files, labels)
    vocab = tokenizer.vocabulary
    composers = _composer_tokens(vocab, raw_labels, unknown_labels)
    rel = [f.relative_to(root).as_posix() for f in files]

    cache_path = None
    if cache_dir is not None:
        stats = [(r, f.stat().st_size, f.stat().st_mtime_ns) for r, f in zip(rel, files)]
        key = json.dumps([DATA_FORMAT_VERSION, str(root), stats, raw_labels, composers, saved,
                          json.dumps(vocab.to_dict(), sort_keys=True), validation_fraction, keep_notes, sustain])
        cache_path = Path(cache_dir) / f"midi-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
        if (cache_path / "failed.json").is_file() and (cache_path / "pieces").is_dir():  # failed.json is written last
            failed = json.loads((cache_path / "failed.json").read_text("utf-8"))
            return EncodedFolder(_split(load_from_disk(str(cache_path / "pieces"))), failed, str(cache_path))

    encoded: dict[str, tuple[EncodedPiece | None, str | None]] = {}
    for path, piece, reason in tokenizer.encode_files(files, [c or None for c in composers], num_proc=num_proc,
                                                      sustain=sustain, progress=progress, quiet=True,
                                                      timeout_s=timeout_s):
        encoded[path] = (None, "no notes") if piece is not None and not piece.body else (piece, reason)
    ok, failed = _pieces_dataset(encoded, files, rel, raw_labels, composers, saved,
                                 lambda piece, composer, split: _piece_row(piece, composer, split, validation_fraction,
                                                                           keep_notes, vocab))
    if ok is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:5])
        raise ValueError(f"no readable MIDI file under {root}: {reasons}")
    if cache_path is not None:
        ok.save_to_disk(str(cache_path / "pieces"))
        (cache_path / "failed.json").write_text(json.dumps(failed, indent=1), "utf-8")
        ok = load_from_disk(str(cache_path / "pieces"))  # memory-mapped, like a cache hit
    return EncodedFolder(_split(ok), failed, None if cache_path is None else str(cache_path))


def _pieces_dataset(encoded: dict[str, tuple[EncodedPiece | None, str | None]], files: Sequence[Path],
                    rel: Sequence[str], labels: Sequence[str | None], composers: Sequence[str],
                    saved: dict[str, str] | None, row: Callable[[EncodedPiece, str, str | None], dict[str, Any]]
                    ) -> tuple[Any, dict[str, str]]:
    """The encoded pieces as one ``Dataset`` in file order (None when none was read) and the reason
    per skipped file. Rows become Arrow tables :data:`_ROWS_PER_TABLE` at a time and each piece is
    let go once converted (``encoded`` is emptied): as one list of Python rows, a corpus of 88M
    tokens took over 24 GB."""
    from datasets import Dataset, concatenate_datasets

    rows, tables, failed = [], [], {}
    for f, r, label, composer in zip(files, rel, labels, composers):
        piece, reason = encoded.pop(str(f))
        if piece is None:
            failed[r] = reason or "unknown error"
        else:
            split = saved.get(r) if saved is not None else None
            rows.append({"file": r, "label": label or "", **row(piece, composer, split)})
        if len(rows) == _ROWS_PER_TABLE:
            tables.append(Dataset.from_list(rows, features=_piece_features()))
            rows = []
    if rows:
        tables.append(Dataset.from_list(rows, features=_piece_features()))
    if not tables:
        return None, failed
    return (tables[0] if len(tables) == 1 else concatenate_datasets(tables)), failed


def _folder_files(root: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The MIDI files to encode under ``root`` and the saved split (:func:`read_saved_splits`): for a
    prepared corpus, its listed pieces only (not its duplicates or stray files)."""
    files = list_midi_files(root)
    saved = read_saved_splits(root)
    if saved is not None:
        files = [f for f in files if f.relative_to(root).as_posix() in saved]
    if not files:
        raise FileNotFoundError(f"no MIDI files under {root}")
    return files, saved


def _composer_tokens(vocab: MuseNetVocabulary, labels: Sequence[str | None], unknown_labels: str) -> list[str]:
    """The composer token of each label ("" for none), adding the unknown ones to ``vocab`` with
    ``unknown_labels="add"``, raising on them with ``"error"``, leaving them out with ``"ignore"``."""
    if unknown_labels == "add":
        vocab.add_composers(sorted({lb for lb in labels if lb}))
    composers = []
    for lb in labels:
        try:
            composers.append(vocab.tokens[vocab.composer_id(lb)] if lb else "")
        except KeyError:
            if unknown_labels == "error":
                raise
            composers.append("")
    return composers


def _split(pieces: Any) -> Any:
    """``DatasetDict`` with the ``train`` and ``validation`` rows of ``pieces`` (either may be empty),
    and ``evaluation`` when a prepared corpus saved one (never part of training)."""
    from datasets import DatasetDict

    splits = pieces["split"]
    names = ("train", "validation", "evaluation") if "evaluation" in splits else ("train", "validation")
    return DatasetDict({name: pieces.select([i for i, s in enumerate(splits) if s == name]) for name in names})


# ---------------------------------------------------------------------- windows
def _ragged(table: Any, column: str, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """A list column of an Arrow table as (flat values, offsets ``(P + 1,)``)."""
    col = table.column(column).combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False), col.offsets.to_numpy().astype(np.int64)


class MuseNetWindows(torch.utils.data.Dataset):
    """Context-length windows of encoded pieces, cut on the fly.

    A window is :func:`continuation_ids`: the conditioning prefix, the notes still sounding at
    the cut struck again, then a slice of the piece, so only the piece's last window holds
    ``end`` and no window opens with the note-off of a note it cannot see. Any token boundary
    is a valid cut (as in MuseNet). Training, validation and long-form generation all cut
    windows this way.

    Training (``train=True``): a piece with ``W`` windows' worth of tokens appears ``W`` times
    per epoch; each appearance takes a random offset and (if configured) random augmentation,
    drawn from ``(seed, epoch, index)``. With ``opening_share`` that share of the appearances
    starts at the piece's opening instead (offset 0): generation always starts there, from the
    prefix alone, and a random cut rarely lands on it (the notes a cut window re-strikes are
    given, not predicted), so without it the model seldom learns how each label opens. With
    ``predict_restruck`` the re-struck notes of a cut window are predicted too: every window then
    teaches what sounds together at one moment of a piece of its label, the choice generation
    makes first, from the prefix alone. Validation: the windows tile each piece, no augmentation,
    re-struck notes given.

    Items are dicts: ``input_ids`` ``(T,)`` int64, ``labels`` ``(T,)`` (-100 on the prefix and
    the re-struck notes, which are given, not predicted), ``piece_seconds`` (length of the whole piece, as the model's clock
    counts it) and ``time_offset_seconds`` (the piece time at the window's first body token).

    An index is an ``int`` (uses :attr:`epoch` and :attr:`progress`, set them with
    :meth:`set_epoch`) or a tuple ``(index, epoch, progress)`` as :class:`TrainBatches` yields.
    """

    def __init__(
        self,
        pieces: Any,
        tokenizer: MuseNetTokenizer,
        context_length: int,
        *,
        train: bool,
        seed: int = 0,
        augmentation: AugmentationConfig | None = None,
        max_windows_per_piece: int | None = None,
        opening_share: float = 0.0,
        predict_restruck: bool = False,
    ):
        if not 0.0 <= opening_share <= 1.0:
            raise ValueError(f"opening_share must be in [0, 1], got {opening_share}")
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocabulary
        self.context_length = context_length
        self.train = train
        self.seed = seed
        self.opening_share = opening_share if train else 0.0
        self.predict_restruck = predict_restruck and train
        self.augmentation = augmentation if (train and augmentation is not None and augmentation.enabled) else None
        self.epoch = 0
        self.progress = 0.0
        table = pieces.with_format("arrow")[:]
        self.body, self.body_offsets = _ragged(table, "body", np.int64)
        prefix, prefix_offsets = _ragged(table, "prefix", np.int64)
        self.prefixes = [prefix[a:b] for a, b in zip(prefix_offsets[:-1], prefix_offsets[1:])]
        self.composers = table.column("composer").to_pylist()
        self.instruments = table.column("instruments").to_pylist()
        self.files = table.column("file").to_pylist()
        if self.augmentation is not None:
            if "notes" not in table.column_names or not len(table) or not len(table.column("notes")[0]):
                raise ValueError("augmentation needs the note arrays: load the folder with keep_notes=True")
            notes, off = _ragged(table, "notes", np.float64)
            self.notes, self.notes_offsets = notes, off
            tempos, toff = _ragged(table, "tempos", np.float64)
            self.tempos = [list(zip(tempos[a:b:2].tolist(), tempos[a + 1:b:2].tolist()))
                           for a, b in zip(toff[:-1], toff[1:])]
        lengths = np.diff(self.body_offsets) + 1  # + end
        spans = np.array([context_length - len(p) for p in self.prefixes], dtype=np.int64)
        if len(spans) and spans.min() < 1:
            raise ValueError(f"context_length {context_length} leaves no room after a prefix")
        per_piece = np.maximum(1, -(-lengths // np.maximum(spans, 1))) if len(spans) else np.zeros(0, np.int64)
        self.tile_offsets: list[list[int]] = []
        if not train:  # validation tiles each piece: each window starts where the last one stopped
            for piece in range(len(self.prefixes)):
                body, offsets, offset = self.piece_body(piece), [], 0
                while offset <= len(body):
                    offsets.append(offset)
                    offset = continuation_ids(self.vocab, self.prefixes[piece], body, offset, context_length)[2]
                self.tile_offsets.append(offsets)
            per_piece = np.array([len(o) for o in self.tile_offsets], dtype=np.int64)
        if max_windows_per_piece is not None:
            per_piece = np.minimum(per_piece, max_windows_per_piece)
        self.piece_of = np.repeat(np.arange(len(per_piece)), per_piece)
        self.window_of = np.arange(len(self.piece_of)) - np.repeat(np.cumsum(per_piece) - per_piece, per_piece)

    def __len__(self) -> int:
        return len(self.piece_of)

    @property
    def num_pieces(self) -> int:
        return len(self.prefixes)

    def window_labels(self) -> list[str]:
        """The composer token of each window's piece ("" for none), ``len(self)`` of them: what
        label-balanced sampling groups by."""
        return [self.composers[p] or "" for p in self.piece_of]

    def set_epoch(self, epoch: int, progress: float | None = None) -> None:
        """Choose the epoch (and training progress, for the transposition schedule) of int indices."""
        self.epoch = int(epoch)
        if progress is not None:
            self.progress = float(progress)

    def piece_body(self, piece: int) -> np.ndarray:
        """The stored body ids of a piece ``(N,)`` (no prefix, no ``end``)."""
        return self.body[self.body_offsets[piece]:self.body_offsets[piece + 1]]

    def piece_seconds(self, piece: int) -> float:
        """The length of a piece as the model's clock counts it (its wait tokens)."""
        return self.vocab.seconds(self.piece_body(piece))

    def __getitem__(self, index: int | tuple[int, int, float]) -> dict[str, Any]:
        if isinstance(index, tuple):
            index, epoch, progress = index
        else:
            epoch, progress = self.epoch, self.progress
        index = int(index)
        piece = int(self.piece_of[index])
        prefix, body = self.prefixes[piece], self.piece_body(piece)
        span = self.context_length - len(prefix)
        if not self.train:
            return self.window(prefix, body, self.tile_offsets[piece][int(self.window_of[index])])
        rng = np.random.default_rng([self.seed, int(epoch), index])
        # (the opening draw only when asked: runs without it keep their exact windows)
        opening = self.opening_share > 0 and rng.random() < self.opening_share
        offset = 0 if opening else int(rng.integers(0, max(0, len(body) + 1 - span) + 1))
        if self.augmentation is None:
            return self.window(prefix, body, offset)
        return self._augmented_window(piece, offset, rng, progress, opening)

    def _notes(self, piece: int) -> NoteArrays:
        """The stored notes and tempo changes of a piece."""
        a, b = self.notes_offsets[piece], self.notes_offsets[piece + 1]
        return NoteArrays.from_matrix(self.notes[a:b], self.tempos[piece], source=self.files[piece])

    def _augmented_window(self, piece: int, offset: int, rng: np.random.Generator, progress: float,
                          opening: bool = False) -> dict[str, Any]:
        """The training window at body position ``offset`` of the augmented piece.

        The whole piece's notes are augmented (:func:`~musenet_hf.training.augmentation.augment`) and
        encoded again, so the window is cut by :meth:`window` exactly as a validation window is
        (re-struck sounding notes included); ``offset`` is moved to the same share of the new
        body. A re-voiced piece gets the instrumentation token of its new instruments; a
        ``drop_instrumentation`` share of windows has none, and a ``drop_composer`` share no
        composer/style token.
        """
        v, tok = self.vocab, self.tokenizer
        body = self.piece_body(piece)
        notes, drawn = augment(self._notes(piece), rng, self.augmentation, v, progress, opening)
        drop = bool(rng.random() < self.augmentation.drop_instrumentation)
        # (the label-dropout draw only when asked: runs without it keep their exact windows)
        unlabelled = self.augmentation.drop_composer > 0 and bool(rng.random() < self.augmentation.drop_composer)
        ids, tempo = tok.encode_notes(notes)
        new_body = np.asarray(ids, dtype=np.int64)
        instruments = None if drop else (tok.instruments_of(notes) if drawn["revoice"] else self.instruments[piece])
        composer = None if unlabelled else (self.composers[piece] or None)
        prefix = np.asarray(tok.prefix_ids(composer, instruments or None, tempo), dtype=np.int64)
        span = self.context_length - len(prefix)
        moved = int(round(offset * len(new_body) / max(len(body), 1)))
        return self.window(prefix, new_body, min(moved, max(0, len(new_body) + 1 - span)))

    def window(self, prefix: np.ndarray, body: np.ndarray, offset: int) -> dict[str, Any]:
        """The window of ``body`` (+ ``end``) from body position ``offset``, after ``prefix``.

        Its ids are :func:`continuation_ids`: the prefix, the notes still sounding at ``offset``
        struck again (given, like the prefix: label -100, unless ``predict_restruck``), then the
        body slice.
        """
        v = self.vocab
        ids, given, _ = continuation_ids(v, prefix, body, offset, self.context_length, add_end=True)
        labels = ids.copy()
        labels[:len(prefix) if self.predict_restruck else given] = -100
        waits = v.wait_units
        return {
            "input_ids": ids,
            "labels": labels,
            "piece_seconds": float(waits[body].sum() * v.wait_unit_seconds),
            "time_offset_seconds": float(waits[body[:offset]].sum() * v.wait_unit_seconds),
        }


def continuation_ids(vocabulary: MuseNetVocabulary, prefix: np.ndarray, body: np.ndarray, offset: int,
                     context_length: int, add_end: bool = True,
                     max_again: int | None = None) -> tuple[np.ndarray, int, int]:
    """The one window format of training, validation and generation: ``prefix``, then the notes
    sounding at body position ``offset`` struck again, then ``body[offset:]`` up to
    ``context_length`` ids (with ``end`` when the slice reaches the piece's end and ``add_end``).

    So no window opens with the note-off of a note it cannot see: a note struck before the
    window sounds from the window's first moment, and its note-off closes a note the model saw.
    A sounding note released in the window's first moment (before its first wait) is neither
    struck again nor released. The model tells an opening from a continuation by the part and
    countdown positions (``time_offset_seconds``), not by the tokens.

    More than ``max_again`` sounding notes (default half the room after the prefix) is a wall of
    drones, not music: only the newest ``max_again`` are struck again.

    Returns:
        ``(ids, given, next_offset)``: the window ``(T,)`` int64; how many of its first ids are
        given context (prefix + re-struck notes), not music to predict; and the body position
        where the next window starts (the windows from 0, each at the last one's
        ``next_offset``, cover the body exactly once).
    """
    v = vocabulary
    prefix = np.asarray(prefix, dtype=np.int64)
    body = np.asarray(body, dtype=np.int64)
    again = sounding_note_ons(v, body[:offset]) if offset > 0 else body[:0]
    room = context_length - len(prefix)
    max_again = room // 2 if max_again is None else max_again
    if len(again) > max_again:  # keep the newest struck notes: at least half the window stays music
        again = again[len(again) - max_again:]
    rest = body[offset:offset + room - len(again)]
    skipped = 0  # body ids left out of the window but covered by it (released in its first moment)
    if len(again):
        waits = np.flatnonzero(v.is_wait[rest])
        first = rest[:waits[0] if len(waits) else len(rest)]
        key_again = note_key(v.note_instrument[again], v.note_pitch[again])
        key_first = np.where(v.is_note_off[first], note_key(v.note_instrument[first], v.note_pitch[first]), -1)
        released_now = np.isin(key_again, key_first)
        drop_first = np.isin(key_first, key_again[released_now])
        again, skipped = again[~released_now], int(drop_first.sum())
        rest = body[offset:offset + room - len(again) + skipped]
        keep = np.ones(len(rest), dtype=bool)
        keep[:len(first)] = ~drop_first
        rest = rest[keep]
    next_offset = offset + len(rest) + skipped
    if add_end and next_offset >= len(body) and len(prefix) + len(again) + len(rest) < context_length:
        rest = np.append(rest, v.end_id)
        next_offset += 1  # the end token is position len(body) of body + end
    return np.concatenate([prefix, again, rest]).astype(np.int64), len(prefix) + len(again), next_offset


__all__ = [
    "EncodedFolder", "MuseNetWindows", "continuation_ids", "list_midi_files", "load_midi_folder", "resolve_labels",
    "sounding_note_ons", "split_of",
]
