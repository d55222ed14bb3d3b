"""Musical statistics of pieces, and a probe of whether a model closes the notes it opens.

Used by the ``music`` and ``probe`` sections of ``musenet evaluate``
(:mod:`musenet_hf.evaluation.measurements`). Everything is computed directly from note events with numpy.

* :func:`piece_statistics`: per piece, how long notes last, how many sound at once, how dense
  and how wide the music is, how tonal (pitch-class entropy, scale consistency), how much of it
  is silence and which instruments play, and its key signature.
* :func:`key_signature_overlap`: how alike the key signatures of two sets of pieces are (Irish
  fiddle tunes sit in D and G; a model that plays them in A-flat is heard as off at once).
* :func:`summarize`: the mean of each measure over the pieces of one label.
* :func:`statistics_match`: one number, 1 = identical, for how close the distributions of
  generated pieces are to those of real pieces (mean histogram overlap).
* :func:`count_note_events` and :func:`note_closure_probe`: plain sampling from the model,
  with no logits processor to repair its output, and a count of note-ons against note-offs.
  The probe passes when note-offs are within 15% of pitched note-ons and no note-off ends a
  note that was never struck.

Conventions:

* A piece's span runs from its first onset to its last release. Time-weighted measures
  (polyphony, silence) are taken over that span, with silence counting as 0 notes sounding.
* Drum notes are left out of the pitch measures (range, pitch-class entropy, scale
  consistency) and out of note lengths: a drum hit has no length of its own (decoded hits all
  get the vocabulary's fixed ``drum_note_units``). They count in notes per second, polyphony,
  silence and the instrument shares, since they are heard.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch

from ..midi.midi_notes import Note
from ..tokenizer.vocabulary import gm_instrument_name

# Notes longer than this are "long": the bundled model's held notes are what the measure is for.
LONG_NOTE_SECONDS = 4.0
# The pitch classes of C major; the 12 transpositions are the 12 major scales, whose sets are
# also those of the 12 natural minor scales, so these cover MusPy's 24 major/minor scales.
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Key signatures named by their major key (each also holds its relative minor: "D" is D major or
# B minor, two sharps).
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Bins of the histograms :func:`statistics_match` compares (left-closed; the last is open-ended).
NOTE_LENGTH_EDGES = np.concatenate([[0.0], 2.0 ** np.arange(-6.0, 4.5, 0.5), [np.inf]])  # 1/64 s .. 16 s, half-octaves
POLYPHONY_LEVELS = 13  # seconds with 0, 1, ..., 11 and 12 or more notes sounding
NOTES_PER_SECOND_EDGES = np.array([0.0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 30, np.inf])
PITCH_RANGE_EDGES = np.concatenate([np.arange(0.0, 97.0, 6.0), [np.inf]])  # semitones, by 6
PC_ENTROPY_EDGES = np.concatenate([np.arange(0.0, 3.5, 0.25), [np.inf]])  # bits (at most log2 12 = 3.58)
SILENT_SHARE_EDGES = np.linspace(0.0, 1.0, 11)  # tenths; a share of exactly 1 falls in the last bin
# The distributions statistics_match averages the overlaps of.
MATCHED = ("note_length", "polyphony", "notes_per_second", "pitch_range", "pitch_class_entropy", "silent_share")

# The bar for the probe: note-offs within 15% of pitched note-ons.
PROBE_TOLERANCE = 0.15

SCALARS = ("notes", "seconds", "note_length_median", "note_length_p90", "long_note_share", "polyphony_mean",
           "polyphony_p95", "notes_per_second", "pitch_range", "pitch_class_entropy", "scale_consistency",
           "silent_share", "one_line")
# Below this share of the span with two or more notes sounding, a piece is one line (a tune, or a
# chorale that lost its other voices): real Palestrina, Monteverdi and Bach openings never are.
ONE_LINE_SHARE = 0.05


# ---------------------------------------------------------------------- per piece
def instrument_name(note: Note, vocabulary: Any = None) -> str:
    """MuseNet's name for the instrument of ``note`` (``'drums'`` for channel-10 notes)."""
    if vocabulary is not None and not note.is_drum:
        return vocabulary.instruments[int(vocabulary.program_to_instrument[note.program])].name
    return gm_instrument_name(note.program, note.is_drum)


def _polyphony_seconds(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Seconds during which exactly k notes sound, for k = 0 .. max, from first onset to last release."""
    times = np.concatenate([start, end])
    steps = np.concatenate([np.ones(len(start), np.int64), -np.ones(len(end), np.int64)])
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    # between two successive events the count is constant: the running sum after the first
    sounding = np.cumsum(steps)[:-1]
    dt = np.diff(times)
    return np.bincount(sounding, weights=dt, minlength=1)


def piece_statistics(notes: Sequence[Note], vocabulary: Any = None) -> dict[str, Any]:
    """The musical statistics of one piece.

    Args:
        notes: the piece's notes (times in seconds).
        vocabulary: a :class:`~musenet_hf.tokenizer.vocabulary.MuseNetVocabulary` whose instrument names
            to use; without one, GM programs are named with the musenet preset's mapping.

    Returns:
        A dict of floats (NaN where a measure is undefined, e.g. pitch measures of a drums-only
        piece):

        * ``notes``: all notes; ``seconds``: the span, first onset to last release.
        * ``note_length_median``, ``note_length_p90`` (linear interpolation),
          ``long_note_share``: share of pitched notes longer than :data:`LONG_NOTE_SECONDS`.
        * ``polyphony_mean``, ``polyphony_p95``: notes sounding at once, time-weighted over the
          span (silence counts as 0); p95 is the smallest count that the music stays at or below
          for 95% of the time.
        * ``notes_per_second``: notes over the span.
        * ``pitch_range``: highest minus lowest pitched note, semitones.
        * ``pitch_class_entropy``: bits, of the pitch classes counted once per note (as MusPy).
        * ``scale_consistency``: the largest share of pitched notes inside one major scale (as
          MusPy; 1.0 for a piece entirely in C major or A minor).
        * ``silent_share``: share of the span with no note sounding.
        * ``one_line``: 1.0 when two or more notes sound for under :data:`ONE_LINE_SHARE` of the
          span, else 0.0 (over pieces, :func:`summarize` makes it the share of one-line pieces).
        * ``key_signature``: the major scale (0 = C .. 11 = B, as :data:`KEY_NAMES`) holding the
          most pitched notes, ties going to the scale whose tonic is struck most; None without
          pitched notes.
        * ``instruments``: instrument name -> share of the notes.
        * ``note_length_counts`` (per :data:`NOTE_LENGTH_EDGES` bin) and ``polyphony_seconds``
          (seconds at 0 .. :data:`POLYPHONY_LEVELS` - 1 notes, the last level gathering more):
          lists, the distributions :func:`statistics_match` pools over pieces.
    """
    nan = float("nan")
    out: dict[str, Any] = {k: nan for k in SCALARS}
    out["notes"] = float(len(notes))
    counts = Counter(instrument_name(n, vocabulary) for n in notes)
    out["instruments"] = {k: c / len(notes) for k, c in sorted(counts.items())}
    out["note_length_counts"] = [0] * (len(NOTE_LENGTH_EDGES) - 1)
    out["polyphony_seconds"] = [0.0] * POLYPHONY_LEVELS
    out["key_signature"] = None
    if not notes:
        return out

    start = np.array([n.start for n in notes], dtype=np.float64)
    end = np.maximum(np.array([n.end for n in notes], dtype=np.float64), start)
    span = float(end.max() - start.min())
    out["seconds"] = span
    if span > 0:
        at = _polyphony_seconds(start, end)
        levels = np.arange(len(at))
        out["polyphony_mean"] = float((levels * at).sum() / span)
        # a tolerance so that floating-point sums landing a hair under 0.95 do not move p95 up a level
        out["polyphony_p95"] = float(np.argmax(np.cumsum(at) / span >= 0.95 - 1e-9))
        out["silent_share"] = float(at[0] / span)
        out["one_line"] = float(at[2:].sum() / span < ONE_LINE_SHARE)
        out["notes_per_second"] = len(notes) / span
        folded = np.zeros(POLYPHONY_LEVELS)
        np.add.at(folded, np.minimum(levels, POLYPHONY_LEVELS - 1), at)
        out["polyphony_seconds"] = folded.tolist()

    pitched = [n for n in notes if not n.is_drum]
    if not pitched:
        return out
    length = np.array([max(n.end - n.start, 0.0) for n in pitched], dtype=np.float64)
    out["note_length_median"] = float(np.median(length))
    out["note_length_p90"] = float(np.percentile(length, 90))
    out["long_note_share"] = float(np.mean(length > LONG_NOTE_SECONDS))
    out["note_length_counts"] = _histogram(length, NOTE_LENGTH_EDGES).astype(int).tolist()
    pitch = np.array([n.pitch for n in pitched], dtype=np.int64)
    out["pitch_range"] = float(pitch.max() - pitch.min())
    pcs = np.bincount(pitch % 12, minlength=12)
    p = pcs[pcs > 0] / len(pitch)
    out["pitch_class_entropy"] = float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no -0.0 for a single class
    in_scale = np.array([pcs[[(root + step) % 12 for step in MAJOR_SCALE]].sum() for root in range(12)])
    out["scale_consistency"] = float(in_scale.max() / len(pitch))
    out["key_signature"] = int(np.lexsort((-pcs, -in_scale))[0])  # most in-scale notes, then most tonics
    return out


def clip_notes(notes: Sequence[Note], seconds: float) -> list[Note]:
    """The notes that start in the first ``seconds``, each ending by ``seconds``: a generated piece
    of that length closes its open notes at its end, so a real opening must not keep longer ones."""
    return [n if n.end <= seconds else replace(n, end=seconds, end_beat=n.start_beat + 2 * (seconds - n.start))
            for n in notes if n.start < seconds]


# ---------------------------------------------------------------------- over pieces
def summarize(pieces_stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each scalar of :func:`piece_statistics` over pieces (NaNs skipped), and the
    instrument shares pooled over all their notes. ``pieces`` says how many pieces."""
    out: dict[str, Any] = {"pieces": len(pieces_stats)}
    for key in SCALARS:
        values = np.array([s[key] for s in pieces_stats], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[key] = float(values.mean()) if len(values) else float("nan")
    pooled: Counter = Counter()
    for s in pieces_stats:
        for name, share in s["instruments"].items():
            pooled[name] += share * s["notes"]  # back to note counts, so long pieces weigh more
    total = sum(pooled.values())
    out["instruments"] = {k: v / total for k, v in sorted(pooled.items())} if total else {}
    shares = key_signature_shares(pieces_stats)
    out["key_signatures"] = {KEY_NAMES[k]: float(shares[k]) for k in np.argsort(-shares, kind="stable") if shares[k]}
    return out


def key_signature_shares(pieces_stats: Sequence[dict[str, Any]]) -> np.ndarray:
    """(12,) the share of pieces in each key signature (pieces without one left out; zeros if none)."""
    keys = [s["key_signature"] for s in pieces_stats if s.get("key_signature") is not None]
    counts = np.bincount(np.array(keys, dtype=np.int64), minlength=12).astype(np.float64)
    return counts / len(keys) if keys else counts


def key_signature_overlap(generated: Sequence[dict[str, Any]], real: Sequence[dict[str, Any]]) -> float:
    """:func:`histogram_overlap` of two sets' key signatures, 1 = the same keys in the same shares.

    Kept apart from :func:`statistics_match` (whose figures earlier reports hold): a model can
    match a label's texture while playing it in keys its players never use."""
    if not generated or not real:
        return float("nan")
    return histogram_overlap(key_signature_shares(generated), key_signature_shares(real))


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins ``[edges[i], edges[i+1])``; values past the ends go to the
    outer bins, so a share of exactly 1.0 lands in the last tenth."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(bins, minlength=len(edges) - 1).astype(np.float64)


def histogram_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the bin-wise minimum of two histograms, each normalized to sum to 1 (1 = identical,
    0 = disjoint). Two empty histograms are identical; one empty one shares nothing."""
    sa, sb = float(np.sum(a)), float(np.sum(b))
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    return float(np.minimum(np.asarray(a) / sa, np.asarray(b) / sb).sum())


def _distributions(pieces_stats: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The histograms :func:`statistics_match` compares: note lengths of all notes and seconds
    at each polyphony, pooled over pieces; one value per piece for the others."""
    per_piece = lambda key, edges: _histogram(np.array([s[key] for s in pieces_stats]), edges)  # noqa: E731
    return {
        "note_length": np.sum([s["note_length_counts"] for s in pieces_stats], axis=0),
        "polyphony": np.sum([s["polyphony_seconds"] for s in pieces_stats], axis=0),
        "notes_per_second": per_piece("notes_per_second", NOTES_PER_SECOND_EDGES),
        "pitch_range": per_piece("pitch_range", PITCH_RANGE_EDGES),
        "pitch_class_entropy": per_piece("pitch_class_entropy", PC_ENTROPY_EDGES),
        "silent_share": per_piece("silent_share", SILENT_SHARE_EDGES),
    }


def statistics_overlaps(generated: Sequence[dict[str, Any]], real: Sequence[dict[str, Any]]) -> dict[str, float]:
    """:func:`histogram_overlap` of each distribution :func:`statistics_match` averages (NaN
    for each when either side has no pieces)."""
    if not generated or not real:
        return {k: float("nan") for k in MATCHED}
    g, r = _distributions(generated), _distributions(real)
    return {k: histogram_overlap(g[k], r[k]) for k in MATCHED}


def statistics_match(generated: Sequence[dict[str, Any]], real: Sequence[dict[str, Any]]) -> float:
    """How close generated pieces are to real ones, 1 = identical distributions.

    The mean :func:`histogram_overlap` over the distributions of :data:`MATCHED`: note length
    (log-spaced :data:`NOTE_LENGTH_EDGES`), polyphony (time-weighted), notes per second, pitch
    range, pitch-class entropy and silent share, each binned at this module's constants.

    Args:
        generated, real: :func:`piece_statistics` of each piece of one label.

    Returns:
        The score, NaN when either side has no pieces.
    """
    return float(np.mean(list(statistics_overlaps(generated, real).values())))


# ---------------------------------------------------------------------- note-closure probe
def count_note_events(vocabulary: Any, ids: Sequence[int]) -> dict[str, Any]:
    """Walk ``ids`` with the set of sounding (instrument, pitch) keys and count what happens.

    A note-on of a sounding key is a re-strike: it counts as a note-on and the key stays sounding
    once (one note-off then closes it). Drum hits have no note-off token, so they never enter the
    set. Ids outside the vocabulary and non-note, non-wait tokens (``end``, prefix tokens) count
    as ``others``.

    Returns:
        ``note_ons`` (drum hits included), ``drum_hits``, ``note_offs``, ``orphan_offs`` (offs of
        a key not sounding), ``waits``, ``wait_seconds``, ``others``, ``left_sounding``,
        ``struck`` (instrument name -> note-ons), ``ended`` (an ``end`` token was seen) and
        ``off_on_ratio``: note-offs over pitched note-ons (NaN without any).
    """
    v = vocabulary
    size = len(v)
    sounding: set[tuple[int, int]] = set()
    c = {"note_ons": 0, "drum_hits": 0, "note_offs": 0, "orphan_offs": 0, "waits": 0, "others": 0}
    struck: Counter = Counter()
    units = 0
    for tid in ids:
        tid = int(tid)
        if not 0 <= tid < size:
            c["others"] += 1
        elif v.is_wait[tid]:
            c["waits"] += 1
            units += int(v.wait_units[tid])
        elif not v.is_note[tid]:
            c["others"] += 1
        else:
            key = (int(v.note_instrument[tid]), int(v.note_pitch[tid]))
            if v.is_note_off[tid]:
                c["note_offs"] += 1
                if key in sounding:
                    sounding.remove(key)
                else:
                    c["orphan_offs"] += 1
            else:
                c["note_ons"] += 1
                struck[v.instruments[key[0]].name] += 1
                if key[0] == v.drum_index:
                    c["drum_hits"] += 1
                else:
                    sounding.add(key)
    pitched_ons = c["note_ons"] - c["drum_hits"]
    return {**c, "wait_seconds": units * v.wait_unit_seconds, "left_sounding": len(sounding),
            "struck": dict(struck.most_common()), "ended": v.end_id in [int(t) for t in ids],
            "off_on_ratio": c["note_offs"] / pitched_ons if pitched_ons else float("nan")}


@torch.no_grad()
def note_closure_probe(model: Any, tokenizer: Any, prefix_ids: Sequence[int], new_tokens: int = 300, seed: int = 0,
                       seconds: float = 60.0, no_early_end: bool = False) -> dict[str, Any]:
    """Sample ``new_tokens`` after ``prefix_ids`` with plain ``model.generate`` and count note events.

    No logits processor runs (no grammar, no length or polyphony control) and sampling is pure
    (``top_k=0``, ``top_p=1.0``, temperature 1), so the counts show what the model itself does.
    A model whose ``forward`` takes ``piece_seconds`` and ``time_offset_seconds`` is told the piece
    lasts ``seconds`` from time 0, as :func:`~musenet_hf.generation.generate.generate_long` would. One
    ``generate`` call cannot run past the model's context, so ``new_tokens`` is capped there.
    ``no_early_end`` holds back ``end`` until all ``new_tokens`` are sampled (``min_new_tokens``,
    which touches no other token), so a piece the model would end after a few notes is still
    measured over the whole budget.

    Returns:
        The counts of :func:`count_note_events` over the new tokens, plus ``tokens`` (how many were
        generated), ``new_tokens`` (asked), ``seed`` and ``passes``: note-offs within
        :data:`PROBE_TOLERANCE` of pitched note-ons and no orphan note-off.
    """
    from ..generation.generate import accepts_structure, model_context_length, padding_id

    v = tokenizer.vocabulary
    device = model.device
    input_ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
    budget = max(0, min(new_tokens, model_context_length(model) - input_ids.shape[1]))
    kwargs: dict[str, Any] = {}
    if accepts_structure(model):
        # float64, as generate_long passes them: the part/countdown must not move with float32 rounding
        kwargs["piece_seconds"] = torch.full((1,), float(seconds), dtype=torch.float64, device=device)
        kwargs["time_offset_seconds"] = torch.zeros(1, dtype=torch.float64, device=device)
    torch.manual_seed(seed)
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True, max_new_tokens=budget,
                         min_new_tokens=budget if no_early_end else None,
                         top_k=0, top_p=1.0, temperature=1.0, eos_token_id=v.end_id,
                         pad_token_id=padding_id(model, v), **kwargs)
    new = out[0, input_ids.shape[1]:].tolist()
    counts = count_note_events(v, new)
    ratio = counts["off_on_ratio"]
    passes = bool(math.isfinite(ratio) and abs(ratio - 1.0) <= PROBE_TOLERANCE and counts["orphan_offs"] == 0)
    return {**counts, "tokens": len(new), "new_tokens": new_tokens, "seed": seed, "passes": passes}


def parse_probe_request(text: str) -> tuple[str | None, str | None]:
    """One ``--probe`` argument: ``"bach:piano,violin" -> ("bach", "piano,violin")``,
    ``"bach" -> ("bach", None)``, ``":piano" -> (None, "piano")`` (no composer token)."""
    label, _, instruments = text.partition(":")
    return label.strip() or None, instruments.strip() or None


# ---------------------------------------------------------------------- report tables
def _num(x: float, fmt: str) -> str:
    """``x`` formatted, or ``n/a`` for NaN (a measure no piece defined)."""
    return format(x, fmt) if math.isfinite(x) else "n/a"


def _top_keys(shares: dict[str, float], n: int = 3) -> str:
    """The ``n`` commonest key signatures with their shares, e.g. ``D 40%, G 30%, A 10%``."""
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(shares.items())[:n]) or "n/a"


def music_table_parts(music: dict[str, Any]) -> tuple[list[str], list[tuple], str]:
    """``(header, rows, caption)`` of the Markdown table of the ``music`` section of ``musenet
    evaluate``: per label a generated row and a real row, the match score on the generated one."""
    caption = (f"Musical statistics, generated against held-out real pieces (first {music['seconds']:.0f} s of each, "
               "means over pieces; match: mean overlap of the note-length, polyphony, notes/s, range, entropy and "
               "silence histograms, 1 = identical; keys: the commonest key signatures, named by their major key; "
               "key overlap: of the key-signature shares, 1 = identical; one line: the share of pieces with two notes "
               f"at once for under {100 * ONE_LINE_SHARE:.0f}% of their span):")
    header = ["label", "pieces", "length median (s)", "length p90 (s)", f"> {LONG_NOTE_SECONDS:.0f} s",
              "polyphony mean", "polyphony p95", "notes/s", "pitch range", "pc entropy (bits)", "scale consistency",
              "silent", "match", "keys", "key overlap", "one line"]
    rows = []
    for label, r in music["labels"].items():
        for side in ("generated", "real"):
            s = r[side]
            rows.append((f"{label} {side}", s["pieces"], _num(s["note_length_median"], ".2f"),
                         _num(s["note_length_p90"], ".2f"), _num(100 * s["long_note_share"], ".1f") + "%",
                         _num(s["polyphony_mean"], ".2f"), _num(s["polyphony_p95"], ".1f"),
                         _num(s["notes_per_second"], ".1f"), _num(s["pitch_range"], ".1f"),
                         _num(s["pitch_class_entropy"], ".2f"), _num(s["scale_consistency"], ".2f"),
                         _num(100 * s["silent_share"], ".1f") + "%",
                         _num(r["match"], ".2f") if side == "generated" else "",
                         _top_keys(s.get("key_signatures", {})),
                         _num(r.get("key_overlap", math.nan), ".2f") if side == "generated" else "",
                         _num(100 * s.get("one_line", math.nan), ".0f") + "%"))
    return header, rows, caption


def probe_table_parts(probe: dict[str, Any]) -> tuple[list[str], list[tuple], str]:
    """``(header, rows, caption)`` of the Markdown table of the ``probe`` section of ``musenet
    evaluate`` (``{"new_tokens", "seed", "rows"}``, rows of ``evaluation.probe_table``)."""
    length = (f"{probe['new_tokens']} tokens (`end` held back until then)" if probe.get("no_early_end")
              else f"up to {probe['new_tokens']} tokens")
    caption = (f"Note-closure probe: {length} sampled with plain `generate` (no logits "
               f"processors, top-k 0, top-p 1, seed {probe['seed']}); passes = note-offs within "
               f"{100 * PROBE_TOLERANCE:.0f}% of pitched note-ons and no note-off of a note never struck:")
    header = ["prompt", "tokens", "note-ons", "note-offs", "off/on", "orphan offs", "waits", "left sounding",
              "struck", "passes"]
    rows = [(" ".join(x for x in (r["composer"], r["instruments"]) if x) or "(none)", r["tokens"], r["note_ons"],
             r["note_offs"], _num(r["off_on_ratio"], ".2f"), r["orphan_offs"], r["waits"], r["left_sounding"],
             ", ".join(f"{k} {n}" for k, n in r["struck"].items()), "yes" if r["passes"] else "no")
            for r in probe["rows"]]
    return header, rows, caption


__all__ = [
    "LONG_NOTE_SECONDS", "NOTE_LENGTH_EDGES", "NOTES_PER_SECOND_EDGES", "PC_ENTROPY_EDGES", "PITCH_RANGE_EDGES",
    "POLYPHONY_LEVELS", "PROBE_TOLERANCE", "SILENT_SHARE_EDGES",
    "MATCHED", "clip_notes", "count_note_events", "histogram_overlap", "instrument_name", "music_table_parts",
    "note_closure_probe", "parse_probe_request", "piece_statistics", "probe_table_parts", "statistics_match",
    "statistics_overlaps", "summarize",
]
