"""The check every generated piece gets: did the new music do what was asked?

A model can fail without an error: asked to continue a pop song it never trained on, the bundled
model once wrote 15 new notes in 20 s, 14 of them held over 4 s (issue 34). The pipeline runs
:func:`check_piece` on every piece it returns (its ``"check"``), whatever was asked (a composer,
instruments, a primer, a continuation, a long piece); ``musenet generate`` and the demo report
what it finds. It compares the new music (after the primer) with the request:

* **notes per second** on the instruments asked for, below ``min_note_rate``: ``"sparse"``;
* **held notes**, longer than :data:`~musenet_hf.defaults.HELD_SECONDS`, over
  :data:`~musenet_hf.defaults.MAX_HELD_SHARE` of the new notes: ``"held"``;
* **instruments**: under :data:`~musenet_hf.defaults.MIN_ON_REQUEST_SHARE` of the new notes on
  the instruments asked for: ``"off_request"``.

The instruments asked for are the named ones, else the style's usual ones the pipeline filled in,
else the primer's; with none of them every instrument counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from ..defaults import HELD_SECONDS, MAX_HELD_SHARE, MIN_NOTE_RATE, MIN_ON_REQUEST_SHARE


def _counted(counts: dict[str, int], names: Sequence[str]) -> str:
    """``"flute 0, violin 3"``: the counts of ``names``, in their order."""
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in names)


def _on_asked(counts: Counter, names: Sequence[str]) -> str:
    """The counts of the instruments asked for: those played, then the ones left silent (all of them
    with their 0 when none was played)."""
    played = [name for name in names if counts.get(name)]
    silent = [name for name in names if not counts.get(name)]
    if not played:
        return _counted(counts, names)
    return _counted(counts, played) + (f"; none on {', '.join(silent)}" if silent else "")


def _elsewhere(counts: Counter, names: Sequence[str]) -> str:
    """The counts of the instruments not in ``names``, most first."""
    return _counted(counts, [k for k, _ in counts.most_common() if k not in names])


def _sparse(counts: Counter, names: list[str] | None, on: int, new_seconds: float, asked_from: str,
            rate: float) -> str:
    """The ``"sparse"`` sentence: how few notes, on which instruments, and what was played instead."""
    where, detail = "", ""
    if names:
        played = _elsewhere(counts, names)
        where = f" on {asked_from}"
        detail = f" ({_on_asked(counts, names)}" + (f"; it played {played} instead" if played else "") + ")"
    return f"only {on} new note{'s' * (on != 1)}{where} in {new_seconds:.1f} s{detail}, under {rate:g} a second"


def new_notes(vocabulary: Any, tokens: Sequence[int], prompt_length: int) -> list[tuple[int, float]]:
    """``(instrument index, seconds it lasts)`` of each note struck after the first ``prompt_length``
    tokens (the prompt: prefix and primer), read as the decoder reads them: a note-on of a sounding
    note ends it first, ``end`` (or the last token) ends every note still sounding; drums last 0 s."""
    v = vocabulary
    units, sounding, notes = 0, {}, []  # sounding: (instrument, pitch) -> (start units, is new)
    for k, t in enumerate(tokens):
        if t == v.end_id:
            break
        if not 0 <= t < len(v):
            continue
        units += int(v.wait_units[t])
        if not v.is_note[t]:
            continue
        key = (int(v.note_instrument[t]), int(v.note_pitch[t]))
        if key in sounding:  # ended by its note-off, or struck again
            begun, new = sounding.pop(key)
            if new:
                notes.append((key[0], (units - begun) * v.wait_unit_seconds))
        if v.is_note_on[t]:
            if v.instruments[key[0]].is_drum:
                notes += [(key[0], 0.0)] if k >= prompt_length else []
            else:
                sounding[key] = (units, k >= prompt_length)
    notes += [(key[0], (units - begun) * v.wait_unit_seconds) for key, (begun, new) in sounding.items() if new]
    return notes


def check_piece(vocabulary: Any, tokens: Sequence[int], prompt_length: int, seconds: float,
                primer_seconds: float = 0.0, asked: Sequence[str] | str | None = None,
                asked_from: str = "the requested instruments", min_note_rate: float = MIN_NOTE_RATE) -> dict[str, Any]:
    """What the new music of a piece is, and what about it fails the request.

    Args:
        vocabulary: the model's tokenizer's vocabulary.
        tokens: the piece's ids; ``prompt_length``: how many of them are the prompt (the new notes
            are the ones struck after it).
        seconds: the whole piece's length; ``primer_seconds``: the primer's share of it.
        asked: the instrument or group names asked for (None: any instrument).
        asked_from: how the problems name them (``"the primer's instruments"``).
        min_note_rate: fewest new notes a second on them (0: no such check).

    Returns:
        A JSON-ready dict: ``ok``; ``problems`` (kind -> sentence: ``"sparse"``, ``"held"``,
        ``"off_request"``); ``new_seconds``, ``new_notes``, ``notes_per_second`` (on the
        instruments asked for), ``held``, ``longest_note`` (seconds), ``instruments`` (new notes
        per instrument name, most first) and ``asked`` (instrument names, or None).
    """
    from .logits_processors import resolve_instruments

    v = vocabulary
    new = new_notes(v, tokens, prompt_length)
    counts = Counter(v.instruments[i].name for i, _ in new)
    names = [v.instruments[i].name for i in resolve_instruments(v, asked)] if asked else None
    on = sum(counts[name] for name in names) if names else len(new)
    new_seconds = max(float(seconds) - float(primer_seconds), 0.0)
    lengths = [round(length, 2) for _, length in new]
    held = sum(length > HELD_SECONDS for length in lengths)
    problems: dict[str, str] = {}
    if min_note_rate > 0 and new_seconds > 0 and on < min_note_rate * new_seconds:
        problems["sparse"] = _sparse(counts, names, on, new_seconds, asked_from, min_note_rate)
    if held >= 2 and held > MAX_HELD_SHARE * len(new):
        problems["held"] = (f"{held} of its {len(new)} new notes held over {HELD_SECONDS:g} s "
                            f"(the longest {max(lengths):.1f} s)")
    if names and "sparse" not in problems and new and on < MIN_ON_REQUEST_SHARE * len(new):
        problems["off_request"] = (f"only {on} of its {len(new)} new notes on {asked_from} "
                                   f"({_on_asked(counts, names)}; {_elsewhere(counts, names)} elsewhere)")
    return {"ok": not problems, "problems": problems, "new_seconds": round(new_seconds, 2), "new_notes": len(new),
            "notes_per_second": round(on / new_seconds, 3) if new_seconds > 0 else 0.0, "held": held,
            "longest_note": max(lengths, default=0.0), "instruments": dict(counts.most_common()), "asked": names}


def check_summary(check: dict[str, Any] | None) -> str:
    """The check's problems in one line (empty when the piece does what was asked)."""
    return "; ".join((check or {}).get("problems", {}).values())


__all__ = ["check_piece", "check_summary", "new_notes"]
