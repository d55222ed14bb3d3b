"""The MuseNet vocabulary: instruments, volumes, pitches, waits and conditioning tokens.

One :class:`MuseNetVocabulary` answers every question the tokenizer, the model, the logits
processors and the data pipeline ask about ids (is it a note, which instrument, on or off, how
long a wait), from tables computed once. Two presets share one token grammar:

* ``musenet``: the public MuseNet layout, id for id (docs/musenet.md §1), so an id sequence produced
  by MuseNet decodes to the notes it meant. Only piano has dynamics; one wait unit is 10 ms.
* ``extended``: volume levels for every instrument, configurable instrument classes and a
  configurable clock (``seconds``, or ``beats`` with ``tempoNN`` tokens).

Layout (both presets)::

    notes       id = slot * 128 + pitch; a slot is (instrument, volume), volume 0 = note-off
    waits       wait:1 .. wait:max_wait
    tempos      tempoNN (beats clock only)
    specials    start, end, end_sample
    instrumentation   127 subsets of {piano, strings, bass, guitar, harp, winds, drums}
    composers   the preset's composer/style list
    pad
    added composers   appended later with add_composers(); existing ids never move

Token text follows the blog: ``piano:v72:G4``, ``violin:v0:G4`` (note-off), ``drums:v80:C2``,
``wait:12``, ``start``, ``bach``, ``piano_strings``, ``tempo90``. Middle C (MIDI 60) is ``C4``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Iterable, Sequence

import numpy as np

# Instrumentation groups in MuseNet's bit order (most significant first): the id of an
# instrumentation token in the musenet preset is 4098 + mask.
GROUPS = ("piano", "strings", "bass", "guitar", "harp", "winds", "drums")
GROUP_BITS = {name: 1 << (len(GROUPS) - 1 - i) for i, name in enumerate(GROUPS)}

PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NUM_PITCHES = 128

# The demo's 16 composer/style tokens (docs/musenet.md §1), first in the extended preset's list.
DEMO_STYLES = (
    "chopin", "mozart", "rachmaninoff", "ladygaga", "country", "disney", "jazz", "bach",
    "beethoven", "journey", "thebeatles", "video", "broadway", "franksinatra", "bluegrass",
    "tchaikovsky",
)
# Labels of the embedded music21 corpus (musenet_hf.corpus.music21_corpus) that are not among the demo's 16.
CORPUS_STYLES = (
    "palestrina", "monteverdi", "josquin", "haydn", "handel", "schumann", "trecento", "folk",
    "irish", "scottish",
)


@dataclass(frozen=True)
class InstrumentClass:
    """One instrument of the vocabulary and the General MIDI programs that map to it.

    Attributes:
        name: token name (``piano``).
        programs: GM programs (0-127) read as this instrument; empty for drums.
        program: the GM program written when decoding.
        group: the instrumentation group it belongs to (one of :data:`GROUPS`).
        is_drum: True for the channel-10 kit (note-on only, no note-off token).
        volumes: the note-on volume levels; a velocity takes the nearest one.
    """

    name: str
    programs: tuple[int, ...]
    program: int
    group: str
    is_drum: bool = False
    volumes: tuple[int, ...] = (80,)


def _musenet_instruments(volumes_for: dict[str, tuple[int, ...]] | None = None) -> list[InstrumentClass]:
    """MuseNet's 10 instruments with the General MIDI mapping of docs/musenet.md §1."""
    v = volumes_for or {}
    spec = [
        ("piano", (), 0, "piano"),  # every program not claimed below (filled in by the vocabulary)
        ("violin", (40, 41, 44, 45, 48, 49, 50, 51), 40, "strings"),
        ("cello", (42, 43), 42, "strings"),
        ("bass", tuple(range(32, 40)), 32, "bass"),
        ("guitar", tuple(range(24, 32)), 24, "guitar"),
        ("flute", tuple(range(72, 80)), 73, "winds"),
        ("clarinet", tuple(range(64, 72)), 71, "winds"),
        ("trumpet", tuple(range(56, 64)), 56, "winds"),
        ("harp", (46,), 46, "harp"),
    ]
    out = [InstrumentClass(n, p, prog, g, False, v.get(n, (80,))) for n, p, prog, g in spec]
    out.append(InstrumentClass("drums", (), 0, "drums", True, v.get("drums", (80,))))
    return out


# The one General MIDI program -> MuseNet instrument map for code without a vocabulary object
# (the corpus builder, statistics of bare notes): the musenet preset's, every program not
# claimed by another instrument is piano. A vocabulary's own table is ``program_to_instrument``.
MUSENET_INSTRUMENT_NAMES = tuple(inst.name for inst in _musenet_instruments())
_GM_PROGRAM_NAMES = ["piano"] * 128
for _inst in _musenet_instruments():
    for _p in _inst.programs:
        _GM_PROGRAM_NAMES[_p] = _inst.name


def gm_instrument_name(program: int, is_drum: bool = False) -> str:
    """MuseNet's instrument name for a General MIDI ``program`` (0-127); ``'drums'`` for the
    channel-10 kit whatever its program."""
    return "drums" if is_drum else _GM_PROGRAM_NAMES[program]


@dataclass
class VocabularyConfig:
    """Everything that defines a vocabulary; saved as JSON next to the tokenizer.

    Attributes:
        preset: ``"musenet"`` or ``"extended"`` (the token layout).
        instruments: the instrument classes, in slot order; exactly one may be a drum kit.
        clock: ``"seconds"`` (a wait unit is ``wait_unit`` seconds) or ``"beats"`` (a wait unit
            is ``1 / beat_resolution`` of a quarter note, with ``tempoNN`` tokens).
        wait_unit: seconds per wait unit for the seconds clock (musenet: 0.01).
        beat_resolution: wait units per quarter note for the beats clock.
        max_wait: the longest single wait token, in units (longer gaps take several).
        tempos: the bpm values of the tempo tokens (beats clock only).
        drum_note_units: length given to decoded drum hits (drums have no note-off token).
        composers: the composer/style token names (blank entries keep an id reserved).
        added_composers: names appended after ``pad`` by :meth:`MuseNetVocabulary.add_composers`.
    """

    preset: str = "extended"
    instruments: list[InstrumentClass] = field(default_factory=list)
    clock: str = "seconds"
    wait_unit: float = 0.01
    beat_resolution: int = 12
    max_wait: int = 128
    tempos: list[int] = field(default_factory=list)
    drum_note_units: int = 10
    composers: list[str] = field(default_factory=list)
    added_composers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["instruments"] = [asdict(i) for i in self.instruments]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VocabularyConfig":
        d = dict(d)
        d["instruments"] = [
            InstrumentClass(**{**i, "programs": tuple(i["programs"]), "volumes": tuple(i["volumes"])})
            for i in d.get("instruments", [])
        ]
        return cls(**d)


def musenet_styles() -> list[str]:
    """MuseNet's 610 public composer/style names for ids 4226-4835 (5 blanks never answered)."""
    text = resources.files("musenet_hf").joinpath("resources/musenet_styles.json").read_text("utf-8")
    return list(json.loads(text)["composers"])


def preset_config(name: str, **overrides: Any) -> VocabularyConfig:
    """The :class:`VocabularyConfig` of a preset, with fields overridden by keyword.

    ``extended`` also accepts ``volumes`` (a tuple of levels given to every pitched instrument
    and the drums) as a shortcut.
    """
    if name == "musenet":
        piano_volumes = tuple(range(24, 121, 8))  # 13 levels; slot 0 is piano off
        instruments = _musenet_instruments({"piano": piano_volumes})
        cfg = VocabularyConfig(
            preset="musenet", instruments=instruments, clock="seconds", wait_unit=0.01,
            max_wait=128, composers=musenet_styles(),
        )
    elif name == "extended":
        volumes = tuple(overrides.pop("volumes", (16, 32, 48, 64, 80, 96, 112, 127)))
        instruments = _musenet_instruments({n: volumes for n in (
            "piano", "violin", "cello", "bass", "guitar", "flute", "clarinet", "trumpet", "harp", "drums")})
        cfg = VocabularyConfig(
            preset="extended", instruments=instruments, clock="seconds", wait_unit=0.01,
            max_wait=128, tempos=list(range(30, 301, 5)),
            composers=list(DEMO_STYLES) + [s for s in CORPUS_STYLES if s not in DEMO_STYLES],
        )
    else:
        raise ValueError(f"unknown vocabulary preset {name!r}: expected 'musenet' or 'extended'")
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise TypeError(f"unknown vocabulary option {key!r}")
        setattr(cfg, key, value)
    if name == "musenet" and (cfg.clock != "seconds" or cfg.max_wait != 128 or len(cfg.instruments) != 10):
        raise ValueError("the musenet preset's layout is fixed: use the extended preset to change the clock or instruments")
    return cfg


def pitch_name(pitch: int) -> str:
    """``60 -> 'C4'``, ``61 -> 'C#4'``, ``0 -> 'C-1'``."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


_PITCH_RE = re.compile(r"^([A-G]#?)(-?\d+)$")


def parse_pitch(text: str) -> int:
    """Inverse of :func:`pitch_name` (also accepts a bare MIDI number)."""
    if text.isdigit():
        return int(text)
    m = _PITCH_RE.match(text)
    if not m:
        raise ValueError(f"not a pitch: {text!r}")
    return PITCH_NAMES.index(m.group(1)) + 12 * (int(m.group(2)) + 1)


def style_token(name: str, token_id: int) -> str:
    """A whitespace-free token for a composer/style name (``kool & the gang -> kool_&_the_gang``)."""
    name = "_".join(name.strip().lower().split())
    return name if name else f"style{token_id}"


def instrumentation_name(mask: int) -> str:
    """``0b1100000 -> 'piano_strings'``: the member groups in MuseNet's order."""
    return "_".join(g for g in GROUPS if mask & GROUP_BITS[g])


class MuseNetVocabulary:
    """Token ids <-> meaning, with every per-id property precomputed as numpy arrays.

    Build one with :meth:`from_preset` (``"musenet"`` or ``"extended"``) or from a saved
    :class:`VocabularyConfig`. The arrays (length ``len(vocab)``) are what hot paths use:
    ``is_note``, ``is_note_on``, ``is_note_off``, ``note_instrument`` (-1 off notes),
    ``note_pitch``, ``note_volume`` (0 = off), ``wait_units`` (0 for non-waits),
    ``tempo_bpm``, ``is_composer``, ``is_instrumentation``, ``is_prefix``, ``is_special``.
    """

    def __init__(self, config: VocabularyConfig):
        self.config = config
        self.instruments = list(config.instruments)
        drums = [i for i, inst in enumerate(self.instruments) if inst.is_drum]
        if len(drums) > 1:
            raise ValueError("at most one instrument may be the drum kit")
        self.drum_index: int | None = drums[0] if drums else None
        self.instrument_index = {inst.name: i for i, inst in enumerate(self.instruments)}
        self._build_slots()
        self._build_tokens()
        self._build_tables()
        self._torch_cache: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str = "extended", **overrides: Any) -> "MuseNetVocabulary":
        """A vocabulary from the ``musenet`` or ``extended`` preset (see :func:`preset_config`)."""
        return cls(preset_config(name, **overrides))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MuseNetVocabulary":
        return cls(VocabularyConfig.from_dict(d))

    def to_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def _build_slots(self) -> None:
        """Assign note slots: (instrument, volume) pairs; volume 0 is the note-off slot."""
        slots: list[tuple[int, int]] = []
        if self.config.preset == "musenet":
            # Piano: off, then 13 volumes; others: on (v80) then off; drums last, on only.
            piano = self.instrument_index["piano"]
            slots.append((piano, 0))
            slots += [(piano, v) for v in self.instruments[piano].volumes]
            for i, inst in enumerate(self.instruments):
                if i != piano and not inst.is_drum:
                    slots += [(i, inst.volumes[0]), (i, 0)]
        else:
            for i, inst in enumerate(self.instruments):
                if not inst.is_drum:
                    slots.append((i, 0))
                    slots += [(i, v) for v in inst.volumes]
        if self.drum_index is not None:
            slots += [(self.drum_index, v) for v in self.instruments[self.drum_index].volumes]
        self.slots = slots
        # (instrument, velocity 0..127) -> slot: nearest volume level; velocity 0 -> off slot.
        table = np.full((len(self.instruments), 128), -1, dtype=np.int64)
        for i, inst in enumerate(self.instruments):
            levels = np.array(inst.volumes)
            on_slots = np.array([slots.index((i, v)) for v in inst.volumes])
            nearest = np.abs(np.arange(128)[:, None] - levels[None, :]).argmin(axis=1)
            table[i] = on_slots[nearest]
            table[i, 0] = -1 if inst.is_drum else slots.index((i, 0))
        self.slot_table = table

    def _build_tokens(self) -> None:
        cfg = self.config
        tokens: list[str] = []
        for inst, vol in self.slots:
            name = self.instruments[inst].name
            tokens += [f"{name}:v{vol}:{pitch_name(p)}" for p in range(NUM_PITCHES)]
        self.num_note_tokens = len(tokens)
        self.first_wait_id = len(tokens)
        tokens += [f"wait:{n}" for n in range(1, cfg.max_wait + 1)]
        self.first_tempo_id = len(tokens)
        tempos = cfg.tempos if cfg.clock == "beats" else []
        tokens += [f"tempo{t}" for t in tempos]
        self.start_id = len(tokens)
        self.end_id = self.start_id + 1
        self.end_sample_id = self.start_id + 2
        tokens += ["start", "end", "end_sample"]
        self.first_instrumentation_id = len(tokens)
        tokens += [instrumentation_name(mask) for mask in range(1, 2 ** len(GROUPS))]
        self.first_composer_id = len(tokens)
        tokens += [style_token(c, self.first_composer_id + k) for k, c in enumerate(cfg.composers)]
        self.pad_id = len(tokens)
        tokens.append("pad")
        tokens += [style_token(c, len(tokens) + k) for k, c in enumerate(cfg.added_composers)]
        self.tokens = tokens
        self.token_to_id_map = {t: i for i, t in enumerate(tokens)}
        if len(self.token_to_id_map) != len(tokens):
            dup = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ValueError(f"duplicate token names in the vocabulary: {dup[:5]}")
        for alias, target in (("<start>", "start"), ("<end>", "end"), ("<end_sample>", "end_sample"), ("<pad>", "pad")):
            self.token_to_id_map.setdefault(alias, self.token_to_id_map[target])

    def _build_tables(self) -> None:
        n = len(self.tokens)
        ids = np.arange(n)
        self.is_note = ids < self.num_note_tokens
        slot_of = np.where(self.is_note, ids // NUM_PITCHES, 0)
        slot_inst = np.array([s[0] for s in self.slots])
        slot_vol = np.array([s[1] for s in self.slots])
        self.note_instrument = np.where(self.is_note, slot_inst[slot_of], -1)
        self.note_volume = np.where(self.is_note, slot_vol[slot_of], -1)
        self.note_pitch = np.where(self.is_note, ids % NUM_PITCHES, -1)
        self.is_note_on = self.is_note & (self.note_volume > 0)
        self.is_note_off = self.is_note & (self.note_volume == 0)
        self.wait_units = np.zeros(n, dtype=np.int64)
        self.wait_units[self.first_wait_id:self.first_wait_id + self.config.max_wait] = np.arange(1, self.config.max_wait + 1)
        self.is_wait = self.wait_units > 0
        self.tempo_bpm = np.zeros(n, dtype=np.int64)
        nt = self.start_id - self.first_tempo_id
        self.tempo_bpm[self.first_tempo_id:self.start_id] = np.array(self.config.tempos[:nt], dtype=np.int64)
        self.is_tempo = self.tempo_bpm > 0
        self.is_instrumentation = (ids >= self.first_instrumentation_id) & (ids < self.first_composer_id)
        self.is_composer = (ids >= self.first_composer_id) & (ids != self.pad_id)
        self.is_prefix = self.is_instrumentation | self.is_composer | (ids == self.start_id)
        self.is_special = np.isin(ids, [self.start_id, self.end_id, self.end_sample_id, self.pad_id])
        # GM program -> instrument index (drums are selected by channel, not program).
        prog = np.full(128, self.instrument_index.get("piano", 0), dtype=np.int64)
        for i, inst in enumerate(self.instruments):
            for p in inst.programs:
                prog[p] = i
        self.program_to_instrument = prog

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def wait_unit_seconds(self) -> float:
        """Seconds per wait unit (for the beats clock: at 120 bpm, the decoding default)."""
        if self.config.clock == "seconds":
            return self.config.wait_unit
        return 0.5 / self.config.beat_resolution

    def seconds(self, ids: Sequence[int] | np.ndarray) -> float:
        """Seconds of music ``ids`` cover: their wait tokens up to the first ``end``, on this
        vocabulary's clock. The one place that turns ids into a length (a batch of windows with
        -100 labels is :func:`~musenet_hf.training.batching.window_seconds`, the same sum as a tensor)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        stop = np.flatnonzero(ids == self.end_id)
        if len(stop):
            ids = ids[:stop[0]]
        return float(self.wait_units[ids].sum()) * self.wait_unit_seconds

    def token_to_id(self, token: str) -> int:
        try:
            return self.token_to_id_map[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a token of this {self.config.preset} vocabulary") from None

    def id_to_token(self, token_id: int) -> str:
        return self.tokens[token_id]

    def note_id(self, instrument: int | str, velocity: int, pitch: int) -> int:
        """The id of a note-on (``velocity > 0``, nearest volume level) or note-off (0)."""
        inst = self.instrument_index[instrument] if isinstance(instrument, str) else instrument
        slot = self.slot_table[inst, velocity]
        if slot < 0:
            raise ValueError(f"{self.instruments[inst].name} has no note-off token")
        return int(slot * NUM_PITCHES + pitch)

    def wait_ids(self, units: int) -> list[int]:
        """Wait tokens that move time on by ``units`` (the longest first)."""
        out = [self.first_wait_id + self.config.max_wait - 1] * (units // self.config.max_wait)
        if units % self.config.max_wait:
            out.append(self.first_wait_id + units % self.config.max_wait - 1)
        return out

    def tempo_id(self, bpm: float) -> int:
        """The tempo token nearest ``bpm`` (beats clock only)."""
        if self.config.clock != "beats":
            raise ValueError("tempo tokens exist only with the beats clock")
        k = int(np.abs(np.array(self.config.tempos) - bpm).argmin())
        return self.first_tempo_id + k

    def instrument_of_program(self, program: int, is_drum: bool = False) -> int:
        if is_drum:
            if self.drum_index is None:
                raise ValueError("this vocabulary has no drum kit")
            return self.drum_index
        return int(self.program_to_instrument[program])

    def prefix_ids(self, composer: str | Sequence[str] | None = None, instruments: Iterable[str] | str | None = None,
                   tempo: float | None = None) -> list[int]:
        """The conditioning prefix ``[composer...] [instrumentation] start [tempoNN]``: the one place
        it is built (tokenizer, data, prompts and the pipeline all come here).

        Args:
            composer: a composer/style name, several (each token goes in, the blend of
                :func:`~musenet_hf.generation.generate.build_prompt`), or None.
            instruments: instrument or group names (``["piano", "violin"]``) or an
                instrumentation token's name (``"piano_strings"``); None: no instrumentation token.
            tempo: the tempo token's bpm (beats clock only; ignored on the seconds clock).
        """
        composers = ([composer] if composer else []) if isinstance(composer, str) else list(composer or [])
        out = [self.composer_id(c) for c in composers]
        if instruments:
            names = instruments.split("_") if isinstance(instruments, str) else list(instruments)
            out.append(self.instrumentation_id(names))
        out.append(self.start_id)
        if tempo is not None and self.config.clock == "beats":
            out.append(self.tempo_id(tempo))
        return out

    def instrumentation_id(self, members: Iterable[str]) -> int:
        """The instrumentation token for instrument or group names (``["piano", "violin"]``, any case)."""
        mask = 0
        for name in members:
            key = name.strip().lower()
            group = self.instruments[self.instrument_index[key]].group if key in self.instrument_index else key
            if group not in GROUP_BITS:
                raise ValueError(f"unknown instrument or group {name!r}; groups are {', '.join(GROUPS)}")
            mask |= GROUP_BITS[group]
        if mask == 0:
            raise ValueError("an instrumentation needs at least one instrument")
        return self.first_instrumentation_id + mask - 1

    def instrumentation_groups(self, token_id: int) -> list[str]:
        mask = token_id - self.first_instrumentation_id + 1
        return [g for g in GROUPS if mask & GROUP_BITS[g]]

    def composer_id(self, name: str) -> int:
        """The id of a composer/style token (names are matched case- and space-insensitively)."""
        token = style_token(name, -1)
        tid = self.token_to_id_map.get(token)
        if tid is None or not (self.is_composer[tid]):
            raise KeyError(self.unknown_composer_message(name))
        return tid

    def unknown_composer_message(self, name: str, trained: dict[str, int] | Sequence[str] = (),
                                 untrained: Sequence[str] = ()) -> str:
        """The error for a name that is no composer/style token, on one line: close matches (those in
        ``untrained``, styles a model never trained on, marked so), then the labels a model trained
        on (``trained``: names, or names with piece counts), then every composer/style name of the
        vocabulary."""
        import difflib

        names = self.composers
        close = [c + (" (untrained)" if c in untrained else "")
                 for c in difflib.get_close_matches(style_token(name, -1), names, n=3, cutoff=0.6)]
        parts = [f"unknown composer/style {name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else "")]
        if trained:
            counts = trained if isinstance(trained, dict) else dict.fromkeys(trained)
            parts.append("this model trained on: " + ", ".join(
                name if n is None else f"{name} ({n})" for name, n in counts.items()))
        parts.append(f"all {len(names)} names: {', '.join(names)}")
        return "; ".join(parts)

    @property
    def composers(self) -> list[str]:
        return [self.tokens[i] for i in np.flatnonzero(self.is_composer)]

    def add_composers(self, names: Sequence[str]) -> list[int]:
        """Append new composer/style tokens after ``pad`` (existing ids never move)."""
        new = [n for n in names if style_token(n, -1) not in self.token_to_id_map]
        if new:
            cfg = copy.deepcopy(self.config)
            cfg.added_composers = list(cfg.added_composers) + list(new)
            self.__init__(cfg)
        return [self.composer_id(n) for n in names]

    def instruments_for_groups(self, groups: Iterable[str]) -> list[int]:
        """Instrument indices that belong to the given groups (``strings -> violin, cello``)."""
        groups = set(groups)
        return [i for i, inst in enumerate(self.instruments) if inst.group in groups]

    def model_config_kwargs(self) -> dict[str, Any]:
        """The token facts ``MuseNetConfig`` needs (vocabulary size, note and wait ranges, ids)."""
        return {
            "vocab_size": len(self),
            "num_note_tokens": self.num_note_tokens,
            "first_wait_token_id": self.first_wait_id,
            "num_wait_tokens": self.config.max_wait,
            "wait_unit_seconds": self.wait_unit_seconds,
            "pad_token_id": self.pad_id,
            "bos_token_id": self.start_id,
            "eos_token_id": self.end_id,
            "note_slots": [[int(i), int(vol)] for i, vol in self.slots],
            "drum_instrument": self.drum_index,
            "composer_token_ids": [int(i) for i in np.flatnonzero(self.is_composer)],
        }

    def torch_tables(self, device: Any = "cpu") -> dict[str, Any]:
        """The per-id arrays as torch tensors on ``device`` (cached per device)."""
        import torch

        key = str(device)
        if key not in self._torch_cache:
            names = ("is_note", "is_note_on", "is_note_off", "note_instrument", "note_pitch", "note_volume",
                     "wait_units", "is_wait", "is_tempo", "is_composer", "is_instrumentation", "is_prefix", "is_special")
            self._torch_cache[key] = {n: torch.as_tensor(getattr(self, n), device=device) for n in names}
        return self._torch_cache[key]

    def __repr__(self) -> str:
        return (f"MuseNetVocabulary(preset={self.config.preset!r}, size={len(self)}, "
                f"instruments={[i.name for i in self.instruments]}, clock={self.config.clock!r})")
