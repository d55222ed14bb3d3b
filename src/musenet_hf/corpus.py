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
  mapping (DESIGN.md §1) yields the intended instrument; see :func:`part_program`.
- **Failures** (what music21 cannot parse or export, e.g. badly formed repeats, and Beethoven
  quartet movements that take minutes) are skipped with their reason; one bad work never stops
  a run. music21's most common export error (a time signature object shared by two measures,
  about 10% of the Essen tunes) is repaired instead.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import glob
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_connections
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .midi_notes import DRUM_CHANNEL
from .vocabulary import MUSENET_INSTRUMENT_NAMES, gm_instrument_name

# ----------------------------------------------------------------------------- labels

# Corpus folder -> composer/style label. Folk collections become styles; a composer's folder
# keeps the composer's name. Names in MuseNet's token table keep its spelling.
COLLECTION_LABELS: dict[str, str] = {
    "airdsAirs": "scottish",        # James Aird, Selection of Scotch, English, Irish and Foreign Airs
    "bach": "bach",                  # J. S. Bach: the 371 chorales and more
    "beach": "beach",                # Amy Beach
    "beethoven": "beethoven",        # string quartets
    "chopin": "chopin",
    "ciconia": "ciconia",            # Johannes Ciconia
    "corelli": "corelli",
    "cpebach": "cpebach",            # C. P. E. Bach (MuseNet's "bach" is Johann Sebastian)
    "essenFolksong": "folk",         # the Essen folk song collection (mostly German songs)
    "handel": "handel",
    "haydn": "haydn",                # string quartets
    "johnson_j_r": "johnson",        # J. Rosamond Johnson
    "joplin": "joplin",
    "josquin": "josquin",            # Josquin des Prez (MuseNet's table may spell him "prez")
    "liliuokalani": "liliuokalani",
    "luca": "luca",                  # Gasparo de Luca
    "lusitano": "lusitano",          # Vicente Lusitano
    "miscFolk": "folk",              # American fife tunes, Northumbrian minstrelsy
    "monteverdi": "monteverdi",      # madrigals
    "mozart": "mozart",              # string quartets
    "nottingham-dataset": "folk",    # reels from the Nottingham folk music database
    "oneills1850": "irish",          # O'Neill's Music of Ireland
    "palestrina": "palestrina",      # masses
    "ryansMammoth": "irish",         # Ryan's Mammoth Collection (Irish and Scottish fiddle tunes)
    "schoenberg": "schoenberg",
    "schubert": "schubert",
    "schumann_clara": "claraschumann",
    "schumann_robert": "schumann",
    "trecento": "trecento",          # Italian 14th-century songs
    "verdi": "verdi",
    "weber": "weber",
    "webern": "webern",
}

# Per-file exceptions to COLLECTION_LABELS (source path inside the corpus -> label).
FILE_LABELS: dict[str, str] = {
    "essenFolksong/han1.abc": "chinese",  # Essen's Han Chinese folk songs (O: China, ...)
    "essenFolksong/han2.abc": "chinese",
    "essenFolksong/irl.abc": "irish",     # Essen's Irish songs (O: Irland)
}

# Not repertoire: music21's test files, exercises, and lead sheets whose accompaniment would be
# music21's realization of chord symbols rather than the composer's.
EXCLUDED_COLLECTIONS = frozenset({"demos", "theoryExercises", "leadSheet"})

# ABC files whose numbered tunes are the voices of one piece, not separate pieces.
MERGED_PARTS_COLLECTIONS = frozenset({"josquin"})

# Vocal repertoire: a part whose name names no instrument is a voice here (elsewhere: piano).
# Essen tunes are songs; the Irish and Scottish collections are fiddle and pipe tunes.
VOCAL_COLLECTIONS = frozenset(
    {"palestrina", "monteverdi", "josquin", "trecento", "ciconia", "luca", "lusitano", "essenFolksong"}
)

# When a work is stored in several formats, the first of these is converted.
FORMAT_PREFERENCE = (".mxl", ".musicxml", ".xml", ".krn", ".abc")

# GM 52 "Choir Aahs": MuseNet has no voice class, so 52 maps to piano in its vocabulary, as
# every unlisted program does, while the MIDI files themselves still sound like voices.
DEFAULT_VOICE_PROGRAM = 52

# ----------------------------------------------------------------------------- instruments

def musenet_instrument(program: int, channel: int = 0) -> str:
    """MuseNet's instrument for a GM program (0-127) on a MIDI channel (0-15; 9 is drums): the
    vocabulary's map (:func:`~musenet_hf.vocabulary.gm_instrument_name`)."""
    return gm_instrument_name(program, is_drum=channel == DRUM_CHANNEL)


# Voice-part names of early music that music21's instrument.fromString does not know.
_VOICE_WORDS = re.compile(
    r"\b(cantus|quint[ou]s?|sext[ou]s?|superius|altus|bassus|discantus|contra ?tenor|triplum|"
    r"motetus|duplum|gesang|singstimme|voce|vox|choir|chorus)\b",
    re.IGNORECASE,
)
# Keyboard words it misses or misreads ("basso continuo" would read as a bass voice).
_KEYBOARD_WORDS = re.compile(r"\b(continuo|cembalo|clavier|klavier|keyboard)\b", re.IGNORECASE)


def program_from_name(name: str | None, voice_program: int) -> int | None:
    """The GM program a part or instrument name implies, or None when it names nothing known.

    ``"Violin II"`` -> 40, ``"Viola"`` -> 41, ``"Violoncello."`` -> 42, ``"Horn 2"`` -> 60,
    ``"Piano"``/``"Organ"``/``"Continuo"`` -> 0 (keyboards become piano), ``"Soprano"``,
    ``"Basso"``, ``"Cantus"`` -> ``voice_program``.
    """
    from music21 import instrument

    if not name or not name.strip():
        return None
    if _KEYBOARD_WORDS.search(name):
        return 0
    if _VOICE_WORDS.search(name):
        return voice_program
    try:
        inst = instrument.fromString(name)
    except Exception:  # music21 raises InstrumentException for unknown names
        return None
    if isinstance(inst, instrument.Vocalist):
        return voice_program
    if isinstance(inst, instrument.KeyboardInstrument):
        return 0
    return inst.midiProgram


def part_program(part: Any, collection: str, voice_program: int = DEFAULT_VOICE_PROGRAM) -> int:
    """The GM program to write for one music21 part.

    In order: (1) the part's name, because music21's instrument objects are often wrong
    (Haydn quartet parts named "Violin 1" that carry a Piano, Mozart cellos that carry "String
    Ensemble 1"); (2) in a vocal collection, a voice; (3) the instruments music21 read: voices
    to ``voice_program``, keyboards to piano (0), a specific instrument to its own program, a
    generic one by its instrument name; (4) piano.

    The viola has no MuseNet class: it keeps GM 41 (viola), which MuseNet reads as violin;
    violoncello is 42 and double bass 43, both MuseNet's cello.
    """
    from music21 import instrument

    program = program_from_name(part.partName, voice_program)
    if program is not None:
        return program
    if collection in VOCAL_COLLECTIONS:
        return voice_program
    for inst in part.recurse().getElementsByClass(instrument.Instrument):
        if isinstance(inst, instrument.Vocalist):
            return voice_program
        if isinstance(inst, instrument.KeyboardInstrument):
            return 0
        if type(inst) is not instrument.Instrument and inst.midiProgram is not None:
            return inst.midiProgram
        program = program_from_name(inst.instrumentName, voice_program)
        if program is not None:
            return program
    return 0


def assign_programs(score: Any, collection: str, voice_program: int = DEFAULT_VOICE_PROGRAM) -> list[int]:
    """Set the GM program of every part of a music21 score in place; return them in part order.

    The program goes on every instrument object of the part (a part may change instrument
    mid-way; music21 writes each as a program change), or on a new one at offset 0.
    """
    from music21 import instrument

    programs = []
    for part in list(score.parts) or [score]:
        program = part_program(part, collection, voice_program)
        insts = list(part.recurse().getElementsByClass(instrument.Instrument))
        if not insts:
            insts = [instrument.Instrument()]
            part.insert(0, insts[0])
        for inst in insts:
            inst.midiProgram = program
        programs.append(program)
    return programs


# ----------------------------------------------------------------------------- works


@dataclass(frozen=True)
class CorpusWork:
    """One piece of the music21 corpus.

    Attributes:
        collection: the corpus folder (``"essenFolksong"``).
        source: the score file inside the corpus (``"essenFolksong/kinder0.abc"``).
        number: the tune number inside a multi-tune ABC file; None for a whole file.
        title: the title music21's metadata gives (may be empty).
        label: the composer/style label.
    """

    collection: str
    source: str
    number: int | None
    title: str
    label: str

    @property
    def key(self) -> str:
        """A unique id: ``"essenFolksong/kinder0.abc#50"`` or ``"bach/bwv1.6.mxl"``."""
        return self.source if self.number is None else f"{self.source}#{self.number}"

    @property
    def relpath(self) -> str:
        """Output path inside the corpus folder: ``"folk/essenFolksong__kinder0__50.mid"``."""
        stem = "__".join(_sanitize(p) for p in _strip_suffix(self.source).split("/"))
        if self.number is not None:
            stem += f"__{self.number}"
        return f"{self.label}/{stem}.mid"


def _strip_suffix(source: str) -> str:
    return source[: -len(Path(source).suffix)] if Path(source).suffix else source


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def label_for(collection: str, source: str) -> str:
    """The label of a work: FILE_LABELS, then COLLECTION_LABELS, else the folder's name."""
    if source in FILE_LABELS:
        return FILE_LABELS[source]
    return COLLECTION_LABELS.get(collection) or re.sub(r"[^a-z0-9]", "", collection.lower())


def _matches(work: CorpusWork, selectors: Sequence[str]) -> bool:
    # A selector is a collection, a folder or file inside it (with or without extension), or a key.
    stem = _strip_suffix(work.source)
    for sel in selectors:
        sel = sel.strip("/")
        if sel in (work.collection, work.source, stem, work.key) or work.source.startswith(sel + "/"):
            return True
    return False


def list_works(collections: Sequence[str] | None = None) -> list[CorpusWork]:
    """Every convertible work of the installed music21 corpus, ordered round-robin by label.

    Args:
        collections: keep only works matching one of these: a collection (``"bach"``), a path
            inside it (``"beethoven/opus18no1"``, ``"bach/bwv1.6"``) or a work key
            (``"essenFolksong/kinder0.abc#50"``). None keeps every collection except
            :data:`EXCLUDED_COLLECTIONS` (which can still be named explicitly).

    The round-robin order (first work of each label, then the second, ...) makes a ``limit``
    a sample of every label, and a larger limit a superset of a smaller one.
    """
    if collections is None:
        works = [w for w in _corpus_works() if w.collection not in EXCLUDED_COLLECTIONS]
    else:
        works = [w for w in _corpus_works() if _matches(w, collections)]
    by_label: dict[str, list[CorpusWork]] = defaultdict(list)
    for work in works:
        by_label[work.label].append(work)
    queues = [deque(by_label[label]) for label in sorted(by_label)]
    ordered = []
    while queues:
        ordered.extend(q.popleft() for q in queues)
        queues = [q for q in queues if q]
    return ordered


@functools.lru_cache(maxsize=1)
def _corpus_works() -> tuple[CorpusWork, ...]:
    # Every work of music21's metadata bundle, one format per work, sorted by source and number.
    # Cached: reading the bundle takes seconds, and the installed corpus does not change.
    from music21 import corpus

    # bundle[:] is one list; iterating the bundle rebuilds that list for every entry (O(n^2)).
    entries = list(corpus.corpora.CoreCorpus().metadataBundle[:])
    if not entries:
        raise RuntimeError("music21's corpus metadata bundle is empty; is the corpus installed?")
    by_file: dict[str, list[Any]] = defaultdict(list)
    for entry in entries:
        by_file[Path(entry.sourcePath).as_posix()].append(entry)

    def preference(source: str) -> tuple[int, str]:
        suffix = Path(source).suffix
        return (FORMAT_PREFERENCE.index(suffix) if suffix in FORMAT_PREFERENCE else 99, source)

    chosen: dict[tuple[str, int | None], CorpusWork] = {}  # (path without suffix, number) -> work
    for source in sorted(by_file, key=preference):
        suffix = Path(source).suffix
        collection = source.split("/")[0]
        if suffix not in FORMAT_PREFERENCE or source.endswith("_old" + suffix):
            continue  # .rntxt analyses; an older copy of a Monteverdi madrigal
        file_entries = by_file[source]
        numbered = [e for e in file_entries if e.number is not None]
        if collection in MERGED_PARTS_COLLECTIONS or not numbered:
            picks = [(None, file_entries[0])]  # one work for the whole file
        else:
            picks = [(int(e.number), e) for e in numbered]  # the opus entry itself is dropped
        label = label_for(collection, source)
        for number, entry in picks:
            md = entry.metadata
            title = str(md.title) if md is not None and md.title else ""
            # setdefault: the preferred format of a work stored twice comes first.
            chosen.setdefault((_strip_suffix(source), number), CorpusWork(collection, source, number, title, label))
    return tuple(sorted(chosen.values(), key=lambda w: (w.source, w.number or 0)))


# ----------------------------------------------------------------------------- one conversion


def load_score(work: CorpusWork) -> Any:
    """Parse a work with music21 (bypassing its pickle cache) into one ``Score``."""
    from music21 import common, converter, stream

    path = Path(common.getCorpusFilePath()) / work.source
    if work.number is not None:
        parsed = converter.parse(path, number=work.number, forceSource=True)
    else:
        parsed = converter.parse(path, forceSource=True)
    if isinstance(parsed, stream.Opus):
        if work.collection in MERGED_PARTS_COLLECTIONS or len(parsed.scores) == 1:
            parsed = parsed.mergeScores() if len(parsed.scores) > 1 else parsed.scores[0]
        else:
            raise ValueError(f"an opus of {len(parsed.scores)} pieces where one piece was expected")
    return parsed


def convert_work(work: CorpusWork, out_path: Path, voice_program: int = DEFAULT_VOICE_PROGRAM) -> list[int]:
    """Parse one work, set its parts' programs, write it as MIDI to ``out_path``; return the programs.

    The file appears atomically (written under a temporary name, then renamed), so a killed
    worker never leaves a truncated ``.mid`` behind. Tempo marks are kept: music21 writes its
    metronome marks (ABC ``Q:``, MusicXML tempo) as MIDI tempo events.
    """
    from music21.midi import translate

    score = load_score(work)
    _unshare_elements(score)
    programs = assign_programs(score, work.collection, voice_program)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".{os.getpid()}.part")
    midi_file = translate.streamToMidiFile(score)
    midi_file.open(str(tmp), "wb")
    try:
        midi_file.write()
    finally:
        midi_file.close()
    os.replace(tmp, out_path)
    return programs


def _unshare_elements(score: Any) -> None:
    # music21's ABC reader sometimes puts one TimeSignature object into two measures; its MIDI
    # export then stops with "the object ... is already found in this Stream" (about 10% of the
    # Essen tunes). A second occurrence of any object becomes a copy of it.
    seen: set[int] = set()
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for el in list(container.elements):
            if id(el) in seen:
                container.replace(el, copy.deepcopy(el))
            else:
                seen.add(id(el))


def midi_stats(path: Path) -> dict[str, Any]:
    """Seconds, note count, GM programs and MuseNet instruments of a written MIDI file (mido)."""
    import mido

    mid = mido.MidiFile(str(path))
    notes = 0
    program_of = defaultdict(int)  # channel -> current program (GM default 0)
    used: set[tuple[int, int]] = set()  # (channel, program) that play notes
    for msg in mido.merge_tracks(mid.tracks):
        if msg.type == "program_change":
            program_of[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            notes += 1
            used.add((msg.channel, program_of[msg.channel]))
    instruments = {musenet_instrument(p, ch) for ch, p in used}
    return {
        "seconds": round(float(mid.length), 3),
        "notes": notes,
        "programs": sorted({p for ch, p in used if ch != 9}),
        "instruments": [i for i in MUSENET_INSTRUMENT_NAMES if i in instruments],
    }


def _convert_task(work: CorpusWork, out_dir: Path, voice_program: int) -> dict[str, Any]:
    # What a worker runs for one work: convert, then measure the file it wrote.
    start = time.perf_counter()
    out_path = out_dir / work.relpath
    convert_work(work, out_path, voice_program)
    stats = midi_stats(out_path)
    stats["convert_s"] = round(time.perf_counter() - start, 3)
    return stats


# ----------------------------------------------------------------------------- worker pool

_TASKS_PER_WORKER = 200  # restart workers now and then: music21 keeps growing caches


def _worker_loop(conn: Any, fn: Callable[[Any], Any]) -> None:
    warnings.simplefilter("ignore")  # music21 warns freely about the scores it reads
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            conn.send(("ok", fn(item)))
        except Exception as err:  # any failure of one work is that work's result
            reason = f"{type(err).__name__}: {err}".strip()
            conn.send(("error", reason[:500]))


def _mp_context() -> Any:
    # fork: workers inherit the imported music21 (no 1 s re-import each) and the caller's
    # functions; spawn elsewhere (then `fn` must be importable).
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)


def map_with_timeout(
    fn: Callable[[Any], Any], items: Iterable[Any], num_proc: int, timeout_s: float
) -> Iterator[tuple[Any, str, Any]]:
    """Run ``fn`` on each item in ``num_proc`` worker processes; yield ``(item, status, value)``.

    ``status`` is ``"ok"`` (value: the result), ``"error"`` (value: the exception as text),
    ``"timeout"`` (the worker ran past ``timeout_s`` on it and was killed) or ``"crashed"``
    (the worker died). A killed or dead worker is replaced, so one item never stops the rest.
    Results come in completion order.
    """
    ctx = _mp_context()
    pending = deque(items)
    workers: list[dict[str, Any]] = []

    def start_worker() -> dict[str, Any]:
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=_worker_loop, args=(child_conn, fn), daemon=True)
        proc.start()
        child_conn.close()  # only the child holds its end: its death then reads as EOF here
        return {"proc": proc, "conn": parent_conn, "item": None, "started": 0.0, "done": 0}

    def stop_worker(w: dict[str, Any], kill: bool) -> None:
        if kill:
            w["proc"].kill()
        else:
            try:
                w["conn"].send(None)
            except OSError:
                pass
        w["proc"].join(timeout=5)
        if w["proc"].is_alive():
            w["proc"].kill()
            w["proc"].join()
        w["conn"].close()

    def give_work(w: dict[str, Any]) -> None:
        w["item"], w["started"] = pending.popleft(), time.monotonic()
        w["conn"].send(w["item"])

    try:
        for _ in range(min(max(1, num_proc), len(pending))):
            workers.append(start_worker())
            give_work(workers[-1])
        while workers:
            deadline = min(w["started"] for w in workers) + timeout_s
            ready = wait_for_connections([w["conn"] for w in workers], max(0.0, deadline - time.monotonic()))
            finished: list[tuple[dict[str, Any], str, Any]] = []
            for w in workers:
                if w["conn"] in ready:
                    try:
                        status, value = w["conn"].recv()
                    except (EOFError, OSError):
                        w["proc"].join(timeout=5)
                        status, value = "crashed", f"worker died (exit code {w['proc'].exitcode})"
                    finished.append((w, status, value))
                elif time.monotonic() - w["started"] > timeout_s:
                    finished.append((w, "timeout", f"took longer than {timeout_s:g} s"))
            for w, status, value in finished:
                yield w["item"], status, value
                w["done"] += 1
                healthy = status in ("ok", "error")
                workers.remove(w)
                if healthy and pending and w["done"] < _TASKS_PER_WORKER:
                    workers.append(w)
                else:
                    stop_worker(w, kill=not healthy)
                    if pending:
                        workers.append(start_worker())
                if pending:
                    give_work(workers[-1])
    finally:
        for w in workers:
            stop_worker(w, kill=True)


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


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
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
    records = _read_manifest(manifest_path)
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
    for r in ok:
        label = r["label"]
        report.files_per_label[label] = report.files_per_label.get(label, 0) + 1
        report.minutes_per_label[label] = report.minutes_per_label.get(label, 0.0) + r["seconds"] / 60
        report.notes_per_label[label] = report.notes_per_label.get(label, 0) + r["notes"]
        if count_tokens is not None:
            report.tokens_per_label[label] = report.tokens_per_label.get(label, 0) + tokens[r["key"]]
    report.failures = [{"work": r["key"], "status": r["status"], "reason": r.get("reason", "")}
                       for r in sorted(records.values(), key=lambda r: r["key"]) if r["status"] != "ok"]
    times = [r["convert_s"] for r in ok if "convert_s" in r]
    report.median_convert_s = round(statistics.median(times), 3) if times else 0.0

    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
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
    report.wall_time_s = time.perf_counter() - start
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return report


@dataclass(frozen=True)
class _WorkTask:
    # A picklable `work -> stats` callable for the workers (a lambda would not survive spawn).
    out_dir: Path
    voice_program: int

    def __call__(self, work: CorpusWork) -> dict[str, Any]:
        return _convert_task(work, self.out_dir, self.voice_program)


# ----------------------------------------------------------------------------- CLI hooks


def add_prepare_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``musenet prepare-corpus``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write (cached)")
    parser.add_argument("--num-proc", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--collections", nargs="+", metavar="NAME",
                        help="collections or paths inside the corpus, e.g. bach beethoven/opus18no1")
    parser.add_argument("--limit", type=int, help="convert at most N works (a sample across labels)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per work (default 60)")
    parser.add_argument("--voice-program", type=int, default=DEFAULT_VOICE_PROGRAM,
                        help=f"GM program for vocal parts (default {DEFAULT_VOICE_PROGRAM}, choir)")
    parser.add_argument("--tokens", metavar="PRESET", choices=("musenet", "extended"),
                        help="also count tokens per label with this tokenizer preset")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_prepare_corpus(args: argparse.Namespace) -> int:
    """Run ``musenet prepare-corpus``: convert, print the summary; exit code 0 (1 on bad input)."""
    try:
        import music21  # noqa: F401
    except ImportError:
        print("prepare-corpus needs music21: pip install 'musenet-hf[corpus]'", file=sys.stderr)
        return 1
    count_tokens = None
    if args.tokens:
        from .tokenization_musenet import MuseNetTokenizer

        tokenizer = MuseNetTokenizer.from_preset(args.tokens)

        def count_tokens(path: Path) -> int:
            return len(tokenizer.encode_midi(path))

    report = prepare_corpus(args.out, num_proc=args.num_proc, collections=args.collections, limit=args.limit,
                            timeout_s=args.timeout, voice_program=args.voice_program,
                            progress=not args.no_progress, count_tokens=count_tokens)
    print(report.summary())
    print(f"wrote {Path(args.out) / 'metadata.csv'} and {Path(args.out) / 'report.json'}")
    return 0
