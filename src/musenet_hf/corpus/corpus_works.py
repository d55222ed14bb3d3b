"""What the music21 corpus holds and how one of its works becomes a labelled MIDI file.

The labels of its collections (:data:`COLLECTION_LABELS`, :data:`FILE_LABELS`), the General MIDI
program each part gets (:func:`part_program`), the works (:func:`list_works`) and the conversion
of one work (:func:`convert_work`, :func:`midi_stats`). The batch job over all of them, its
worker processes, cache and report, is :mod:`~musenet_hf.corpus.music21_corpus` (``musenet prepare-corpus``).
"""


from __future__ import annotations

import copy
import functools
import os
import re
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..midi.midi_notes import DRUM_CHANNEL
from ..tokenizer.vocabulary import MUSENET_INSTRUMENT_NAMES, gm_instrument_name

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
# music21's realization of chord symbols rather than the composer's. Also music21's two reels of
# the Nottingham dataset, which is reserved for evaluation and never trained on.
EXCLUDED_COLLECTIONS = frozenset({"demos", "theoryExercises", "leadSheet", "nottingham-dataset"})

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
    vocabulary's map (:func:`~musenet_hf.tokenizer.vocabulary.gm_instrument_name`)."""
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
    score = load_score(work)
    _unshare_elements(score)
    programs = assign_programs(score, work.collection, voice_program)
    write_score_midi(score, out_path)
    return programs


def write_score_midi(score: Any, out_path: Path) -> None:
    """Write a music21 score as MIDI, atomically: under a temporary name, then renamed, so a killed
    worker never leaves a truncated ``.mid`` behind."""
    from music21.midi import translate

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".{os.getpid()}.part")
    midi_file = translate.streamToMidiFile(score)
    midi_file.open(str(tmp), "wb")
    try:
        midi_file.write()
    finally:
        midi_file.close()
    os.replace(tmp, out_path)


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
