"""``musenet evaluate``: what a trained model is worth, measured on the validation split.

Each measurement is one function; the command (:mod:`~musenet_hf.cli.cli_evaluate`) runs the ones
asked for and writes a JSON report plus a Markdown table (the one in ``MODEL_CARD.md``):

* :func:`compression`: bits per second of music and per token of one or more models (the bundled
  MuseNet, its GPT-2 baseline) on the same validation windows.
* :func:`~musenet_hf.training.critic.critic_auc_heldout`: the critic head's ROC AUC, real openings of
  held-out pieces against fresh generations from the same prompts (neither seen in training).
* :func:`composer_recognisability`: a scikit-learn classifier over :func:`piece_features`
  (pitch-class, melodic-interval and duration histograms, note density, polyphony, range),
  trained on real training pieces; its accuracy on held-out real pieces next to its accuracy on
  pieces the model generated for each composer. Real and generated pieces both go through the
  tokens (real pieces are decoded from their token ids and cut to the generated length), so
  quantization gives neither side away.
* :func:`validity`: of the generated pieces, how many follow the grammar, end with ``end`` and
  make a MIDI file that mido reads back with notes in it.
* :func:`steering_adherence`: the share of note-ons on the requested instruments with no, soft
  and hard steering.
* :func:`length_control`: pieces asked for N seconds and how long they came out; the wall time
  of each (the 240-second one is the "4-minute piece on this CPU").
* :func:`music_statistics`: per label, the musical statistics of generated pieces next to
  those of held-out real pieces (note lengths, polyphony, density, range, pitch-class entropy,
  scale consistency, silence) and one match score (:mod:`musenet_hf.evaluation.musical_statistics`).
* :func:`probe_table`: the note-closure probe, plain sampling with no logits processor, per
  prompt: do note-offs follow note-ons (:func:`~musenet_hf.evaluation.musical_statistics.note_closure_probe`)?
"""

from __future__ import annotations

import io
import math
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..midi.midi_notes import Note
from .musical_statistics import (
    clip_notes,
    key_signature_overlap,
    music_table_parts,
    note_closure_probe,
    piece_statistics,
    probe_table_parts,
    statistics_match,
    statistics_overlaps,
    summarize,
)

SECTIONS = ("compression", "critic", "composer", "steering", "length", "music", "probe")
INTERVAL_RANGE = 12  # melodic intervals beyond an octave are folded into the outermost bins
DURATION_EDGES = np.array([0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, np.inf])


# ---------------------------------------------------------------------- features
def piece_features(notes: Sequence[Note]) -> np.ndarray:
    """A fixed-length description of a piece's notes (drums left out), for the composer classifier.

    12 pitch-class shares, 25 melodic-interval shares (-12..+12 semitones between successive
    onsets in time order, folded at the octave), 10 duration shares (seconds, binned at
    :data:`DURATION_EDGES`), then notes per second, mean polyphony, mean pitch / 127, pitch range
    / 127 and the share of onsets that share their moment with another. ``(52,)`` float64; zeros
    for a piece without notes.
    """
    notes = [n for n in notes if not n.is_drum]
    out = np.zeros(12 + 2 * INTERVAL_RANGE + 1 + len(DURATION_EDGES) - 1 + 5)
    if not notes:
        return out
    notes = sorted(notes, key=lambda n: (n.start, n.pitch))
    pitch = np.array([n.pitch for n in notes])
    start = np.array([n.start for n in notes])
    length = np.array([max(n.end - n.start, 0.0) for n in notes])
    k = 0
    out[k:k + 12] = np.bincount(pitch % 12, minlength=12) / len(pitch)
    k += 12
    steps = np.clip(np.diff(pitch), -INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    if len(steps):
        out[k:k + 2 * INTERVAL_RANGE + 1] = np.bincount(steps, minlength=2 * INTERVAL_RANGE + 1) / len(steps)
    k += 2 * INTERVAL_RANGE + 1
    bins = np.clip(np.searchsorted(DURATION_EDGES, length, side="right") - 1, 0, len(DURATION_EDGES) - 2)
    out[k:k + len(DURATION_EDGES) - 1] = np.bincount(bins, minlength=len(DURATION_EDGES) - 1) / len(bins)
    k += len(DURATION_EDGES) - 1
    span = max(float(max(n.end for n in notes) - start[0]), 1e-3)
    out[k] = len(notes) / span
    out[k + 1] = length.sum() / span  # mean number of notes sounding
    out[k + 2] = pitch.mean() / 127
    out[k + 3] = (pitch.max() - pitch.min()) / 127
    out[k + 4] = 1.0 - len(np.unique(start)) / len(start)
    return out


def cut_notes(notes: Sequence[Note], seconds: float) -> list[Note]:
    """The notes that start in the first ``seconds`` of a piece."""
    return [n for n in notes if n.start < seconds]


# ---------------------------------------------------------------------- compression
def compression(models: dict[str, Any], windows: Any, batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Bits per second of music and per token of each model on the same windows.

    Args:
        models: name -> causal LM (a ``MuseNetForCausalLM`` or a ``GPT2Baseline``).
        windows: validation :class:`~musenet_hf.training.data.MuseNetWindows`.

    Returns:
        name -> ``{"bits_per_second", "bits_per_token", "nats_per_token", "tokens", "seconds"}``.
    """
    from ..training.batching import MuseNetCollator
    from ..training.training_losses import evaluate

    if not len(windows):
        raise ValueError("no validation windows: the data folder's validation split is empty")
    collator = MuseNetCollator(windows.vocab.pad_id)
    out = {}
    for name, model in models.items():
        stats = evaluate(model, windows, collator, batch_size=batch_size)
        nats = stats["nll"] / max(stats["tokens"], 1.0)
        out[name] = {"bits_per_second": stats["nll"] / math.log(2) / stats["seconds"],
                     "bits_per_token": nats / math.log(2), "nats_per_token": nats,
                     "tokens": stats["tokens"], "seconds": stats["seconds"]}
    return out


# ---------------------------------------------------------------------- generation helpers
def generate_pieces(pipe: Any, n: int, *, seed: int, batch: int = 10, **prompt: Any) -> list[dict[str, Any]]:
    """``n`` pieces from the ``musenet-generation`` pipeline, in batches, each with its wall time share.

    No steering unless ``prompt`` asks for it: the measurements judge what the model plays for a
    prompt, not what the processors force (the pipeline itself soft-steers named instruments)."""
    prompt.setdefault("steering", "none")
    pieces: list[dict[str, Any]] = []
    k = 0
    while len(pieces) < n:
        size = min(batch, n - len(pieces))
        t0 = time.perf_counter()
        got = pipe(num_samples=size, seed=seed + k, **prompt)
        wall = time.perf_counter() - t0
        for r in got:
            r["wall_seconds"] = wall / size
        pieces.extend(got)
        k += 1
    return pieces


def is_valid_piece(tokenizer: Any, ids: Sequence[int]) -> tuple[bool, str]:
    """Whether a generated piece is valid: no grammar violation, ends with ``end``, and its MIDI
    file reads back with mido with the same number of notes. Returns ``(ok, reason)``."""
    import mido

    from ..generation.logits_processors import grammar_violations

    v = tokenizer.vocabulary
    problems = grammar_violations(v, ids)
    if problems:
        return False, problems[0]
    if v.end_id not in ids:
        return False, "no end token"
    notes = tokenizer.decode_to_notes(ids)
    if not notes:
        return False, "no notes"
    buf = io.BytesIO()
    tokenizer.decode_to_midi(ids).save(file=buf)
    back = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    ons = sum(1 for track in back.tracks for m in track if m.type == "note_on" and m.velocity > 0)
    if ons != len(notes):
        return False, f"MIDI file has {ons} note-ons for {len(notes)} notes"
    return True, ""


def validity(tokenizer: Any, pieces: Sequence[Sequence[int]]) -> dict[str, Any]:
    """How many of ``pieces`` (id lists) are valid (:func:`is_valid_piece`), with the first reasons."""
    results = [is_valid_piece(tokenizer, ids) for ids in pieces]
    reasons = [r for ok, r in results if not ok]
    return {"pieces": len(results), "valid": len(results) - len(reasons), "reasons": reasons[:10]}


def note_on_instruments(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """Instrument index of each note-on in ``ids``."""
    v = tokenizer.vocabulary
    a = np.asarray(ids, dtype=np.int64)
    a = a[(a >= 0) & (a < len(v))]
    on = v.is_note[a] & ~v.is_note_off[a]
    return v.note_instrument[a[on]].tolist()


# ---------------------------------------------------------------------- composer recognisability
def composer_recognisability(
    pipe: Any,
    train_pieces: Sequence[tuple[str, list[Note]]],
    heldout_pieces: Sequence[tuple[str, list[Note]]],
    instruments: dict[str, str],
    *,
    pieces_per_composer: int = 12,
    seconds: float = 20.0,
    max_train_per_composer: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a classifier on real pieces' features; test it on held-out real and on generated pieces.

    Args:
        pipe: the ``musenet-generation`` pipeline of the model under test.
        train_pieces, heldout_pieces: ``(composer, notes)`` of real pieces (training and
            validation split); only their first ``seconds`` are used.
        instruments: composer -> the instrumentation to ask for (their usual one in the data).
        pieces_per_composer: generated pieces per composer.

    Returns:
        ``{"composers", "real_accuracy", "generated_accuracy", "per_composer": {c: {"real",
        "generated", "n_real", "n_generated"}}, "chance", "generated_ids": {c: [ids...]},
        "generation_seconds"}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    composers = sorted(instruments)
    rng = np.random.default_rng(seed)
    by: dict[str, list[list[Note]]] = {c: [] for c in composers}
    for c, notes in train_pieces:
        if c in by:
            by[c].append(notes)
    x, y = [], []
    for c in composers:
        chosen = rng.permutation(len(by[c]))[:max_train_per_composer]
        for i in chosen:
            x.append(piece_features(cut_notes(by[c][i], seconds)))
            y.append(c)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5, class_weight="balanced"))
    clf.fit(np.array(x), np.array(y))

    held = [(c, n) for c, n in heldout_pieces if c in by and n]
    real_pred = clf.predict(np.array([piece_features(cut_notes(n, seconds)) for _, n in held])) if held else []
    generated: dict[str, list[list[int]]] = {}
    t0 = time.perf_counter()
    gen_rows = []
    for k, c in enumerate(composers):
        pieces = generate_pieces(pipe, pieces_per_composer, seed=seed + 1000 * k, composer=c,
                                 instruments=instruments[c], seconds=seconds)
        generated[c] = [p["tokens"] for p in pieces]
        gen_rows += [(c, pipe.tokenizer.decode_to_notes(p["tokens"])) for p in pieces]
    gen_seconds = time.perf_counter() - t0
    gen_pred = clf.predict(np.array([piece_features(n) for _, n in gen_rows]))

    per = {}
    for c in composers:
        r = [p == c for (t, _), p in zip(held, real_pred) if t == c]
        g = [p == c for (t, _), p in zip(gen_rows, gen_pred) if t == c]
        per[c] = {"real": float(np.mean(r)) if r else float("nan"), "n_real": len(r),
                  "generated": float(np.mean(g)) if g else float("nan"), "n_generated": len(g),
                  "generated_as": dict(Counter(p for (t, _), p in zip(gen_rows, gen_pred) if t == c).most_common(3))}
    return {
        "composers": composers,
        "chance": 1.0 / len(composers),
        "real_accuracy": float(np.mean([p == t for (t, _), p in zip(held, real_pred)])) if held else float("nan"),
        "n_real": len(held),
        "generated_accuracy": float(np.mean([p == t for (t, _), p in zip(gen_rows, gen_pred)])),
        "n_generated": len(gen_rows),
        "per_composer": per,
        "generated_ids": generated,
        "generation_seconds": gen_seconds,
        "seconds": seconds,
    }


# ---------------------------------------------------------------------- steering and length
def steering_adherence(pipe: Any, *, composer: str | None, instruments: str, pieces: int = 10,
                       seconds: float = 15.0, strength: float | None = None, seed: int = 0,
                       strengths: Sequence[float] | None = None) -> dict[str, Any]:
    """Share of note-ons on ``instruments`` with no steering (the instrumentation token alone),
    soft steering (``strength``, and each of ``strengths``) and hard steering, over ``pieces`` pieces each,
    with what the steering does to the music: the share of notes over 4 s and the mean number of
    notes sounding at once (averaged over pieces), since a steering that strikes notes the model
    does not end is worse than none."""
    from ..generation.logits_processors import DEFAULT_STEERING_STRENGTH, resolve_instruments

    strength = DEFAULT_STEERING_STRENGTH if strength is None else strength
    wanted = set(resolve_instruments(pipe.tokenizer.vocabulary, instruments))
    out: dict[str, Any] = {"instruments": instruments, "composer": composer, "pieces": pieces, "seconds": seconds,
                           "strength": strength}
    def share(mode: str, strength: float) -> dict[str, Any]:
        got = generate_pieces(pipe, pieces, seed=seed, composer=composer, instruments=instruments, seconds=seconds,
                              steering=mode, strength=strength)
        ons = [i for p in got for i in note_on_instruments(pipe.tokenizer, p["tokens"])]
        stats = [piece_statistics(pipe.tokenizer.decode_to_notes(p["tokens"]), pipe.tokenizer.vocabulary) for p in got]
        return {"note_ons": len(ons), "share": sum(i in wanted for i in ons) / max(len(ons), 1),
                "long_note_share": float(np.nanmean([s["long_note_share"] for s in stats])),
                "polyphony_mean": float(np.nanmean([s["polyphony_mean"] for s in stats]))}

    for mode in ("none", "soft", "hard"):
        out[mode] = share(mode, strength)
    # soft steering at other strengths, to choose the default by what it does
    out["soft_at"] = {float(s): share("soft", s) for s in (strengths or []) if float(s) != strength}
    return out


def length_control(pipe: Any, lengths: Sequence[float], *, pieces: int, composer: str | None, instruments: str,
                   seed: int = 0, tolerance: float = 0.1) -> dict[str, Any]:
    """Pieces asked for each of ``lengths`` seconds (``pieces`` each, one at a time, so each wall
    time is that of one piece): their lengths, whether they ended, and whether within ``tolerance``."""
    rows = []
    for target in lengths:
        for k in range(pieces):
            got = generate_pieces(pipe, 1, seed=seed + k, batch=1, composer=composer, instruments=instruments,
                                  seconds=target)[0]
            rows.append({"target": target, "seconds": got["seconds"], "finished": got["finished"],
                         "within": got["finished"] and abs(got["seconds"] - target) <= tolerance * target,
                         "tokens": len(got["tokens"]), "wall_seconds": got["wall_seconds"]})
    return {"rows": rows, "tolerance": tolerance, "within": sum(r["within"] for r in rows), "pieces": len(rows)}


# ---------------------------------------------------------------------- musical statistics and the probe
def music_statistics(
    pipe: Any,
    heldout_pieces: Sequence[tuple[str, list[Note]]],
    instruments: dict[str, str | None],
    *,
    pieces_per_label: int = 12,
    seconds: float = 20.0,
    seed: int = 0,
    generated: dict[str, list[list[int]]] | None = None,
) -> dict[str, Any]:
    """Musical statistics of generated pieces next to held-out real pieces, label by label.

    Args:
        pipe: the ``musenet-generation`` pipeline of the model under test.
        heldout_pieces: ``(label, notes)`` of real validation pieces (decoded from their tokens,
            as the composer section takes them); each is clipped to its first ``seconds``.
        instruments: label -> the instrumentation to ask for (its usual one in the data; None
            asks for none, as ``pipeline(composer=label)`` does).
        pieces_per_label: pieces generated per label.
        generated: label -> id lists already generated for it (the composer section's, which
            used the same seeds and lengths); those labels are not generated again.

    Returns:
        ``{"seconds", "labels": {label: {"generated": summary, "real": summary, "match",
        "overlaps", "key_overlap"}}}`` with :func:`~musenet_hf.evaluation.musical_statistics.summarize`
        summaries, the :func:`~musenet_hf.evaluation.musical_statistics.statistics_match` score and the
        :func:`~musenet_hf.evaluation.musical_statistics.key_signature_overlap` (each 1 = identical).
    """
    tokenizer = pipe.tokenizer
    v = tokenizer.vocabulary
    out = {}
    for k, c in enumerate(sorted(instruments)):
        ids = (generated or {}).get(c)
        if ids is None:  # the composer section's seeds, so both sections judge the same pieces
            ids = [p["tokens"] for p in generate_pieces(pipe, pieces_per_label, seed=seed + 1000 * k, composer=c,
                                                        instruments=instruments[c], seconds=seconds)]
        gen = [piece_statistics(tokenizer.decode_to_notes(t), v) for t in ids]
        real = [piece_statistics(clip_notes(n, seconds), v) for label, n in heldout_pieces if label == c and n]
        out[c] = {"generated": summarize(gen), "real": summarize(real), "match": statistics_match(gen, real),
                  "overlaps": statistics_overlaps(gen, real), "key_overlap": key_signature_overlap(gen, real)}
    return {"seconds": seconds, "labels": out}


def probe_table(model: Any, tokenizer: Any, requests: Sequence[tuple[str | None, str | None]], *,
                new_tokens: int = 300, seed: int = 0, no_early_end: bool = False) -> list[dict[str, Any]]:
    """The note-closure probe for each ``(composer, instruments)`` prompt (either may be None;
    instruments as ``"piano,violin"`` or ``"piano_strings"``).

    Returns one row per prompt: ``composer``, ``instruments`` and the counts of
    :func:`~musenet_hf.evaluation.musical_statistics.note_closure_probe`.
    """
    rows = []
    for composer, instruments in requests:
        names = [n for part in instruments.split(",") for n in part.strip().split("_") if n] if instruments else None
        prefix = tokenizer.prefix_ids(composer, names)
        rows.append({"composer": composer, "instruments": instruments,
                     **note_closure_probe(model, tokenizer, prefix, new_tokens=new_tokens, seed=seed,
                                          no_early_end=no_early_end)})
    return rows


# ---------------------------------------------------------------------- report
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> list[str]:
    """Markdown table lines (after ``caption``); the first column left-aligned, the others right-aligned."""
    rule = "|---|" + "---:|" * (len(header) - 1)
    head = [caption, ""] if caption else []
    return head + ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(map(str, r)) + " |" for r in rows] + [""]


def markdown_report(report: dict[str, Any]) -> str:
    """The evaluation tables of ``MODEL_CARD.md`` from a report of :func:`run_evaluate`."""
    lines: list[str] = []
    comp = report.get("compression")
    if comp:
        lines += _table(["model", "bits per second of music", "bits per token", "nats per token"],
                        [(name, f"{r['bits_per_second']:.2f}", f"{r['bits_per_token']:.3f}", f"{r['nats_per_token']:.3f}")
                         for name, r in comp["models"].items()])
        lines.append(f"Validation windows: {comp['windows']} ({comp['tokens']:.0f} predicted tokens, "
                     f"{comp['seconds'] / 60:.1f} minutes of music).")
        if "relative" in comp:
            lines.append(f"MuseNet vs GPT-2: {100 * comp['relative']:+.1f}% bits per second.")
        lines.append("")
    ca = report.get("critic")
    if ca:
        lines.append(f"Critic: ROC AUC {ca['auc']:.3f} on {ca['real']} held-out real openings against {ca['generated']} "
                     f"fresh generations ({ca['tokens']} tokens each; 0.5 is chance).\n")
    cr = report.get("composer")
    if cr:
        caption = (f"Composer recognisability ({len(cr['composers'])} labels, chance {100 * cr['chance']:.0f}%, "
                   f"first {cr['seconds']:.0f} s of each piece):")
        rows = [(c, f"{100 * r['real']:.0f}% ({r['n_real']})", f"{100 * r['generated']:.0f}% ({r['n_generated']})",
                 ", ".join(f"{k} {v}" for k, v in r["generated_as"].items())) for c, r in cr["per_composer"].items()]
        rows.append(("**all**", f"**{100 * cr['real_accuracy']:.1f}%** ({cr['n_real']})",
                     f"**{100 * cr['generated_accuracy']:.1f}%** ({cr['n_generated']})", ""))
        lines += _table(["label", "real held-out", "generated", "generated mostly read as"], rows, caption)
    val = report.get("validity")
    if val:
        lines.append(f"Validity: {val['valid']} of {val['pieces']} generated pieces valid (grammar, `end`, MIDI "
                     f"read back by mido with every note).\n")
    st = report.get("steering")
    if st:
        caption = (f"Instrument adherence, asking for `{st['instruments']}` ({st['composer']}, {st['pieces']} pieces "
                   f"of {st['seconds']:.0f} s per mode):")
        def row(name: str, r: dict[str, Any]) -> tuple:
            return (name, r["note_ons"], f"{100 * r['share']:.1f}%", f"{100 * r.get('long_note_share', math.nan):.1f}%",
                    f"{r.get('polyphony_mean', math.nan):.2f}")

        soft = {float(k): r for k, r in st.get("soft_at", {}).items()} | {float(st["strength"]): st["soft"]}
        modes = ([row("none", st["none"])] + [row(f"soft (strength {k:g})", soft[k]) for k in sorted(soft)]
                 + [row("hard", st["hard"])])
        lines += _table(["steering", "note-ons", "on the requested instruments", "notes over 4 s", "notes at once"],
                        modes, caption)
    ln = report.get("length")
    if ln:
        caption = f"Length control (tolerance {100 * ln['tolerance']:.0f}%): {ln['within']} of {ln['pieces']} pieces within it."
        rows = [(f"{r['target']:.0f}", f"{r['seconds']:.1f}", "yes" if r["finished"] else "no", r["tokens"],
                 f"{r['wall_seconds']:.1f}") for r in ln["rows"]]
        lines += _table(["asked (s)", "got (s)", "ended", "tokens", "wall time (s)"], rows, caption)
    if report.get("music"):
        lines += _table(*music_table_parts(report["music"]))
    if report.get("probe"):
        lines += _table(*probe_table_parts(report["probe"]))
    return "\n".join(lines)


__all__ = [
    "SECTIONS", "composer_recognisability", "compression", "is_valid_piece", "length_control", "markdown_report",
    "music_statistics", "piece_features", "probe_table", "steering_adherence", "validity",
]
