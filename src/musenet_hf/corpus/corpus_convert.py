"""Notation files (kern, MusicXML, ABC, Humdrum) to MIDI through music21, and lead sheets played.

A lead sheet is a melody with chord symbols above it. Converted, it plays only the melody (the
symbols are removed: music21 would write them as block chords of its own); with
``realize_chords`` the chord symbols are also played on the piano in the song's rhythm
(:func:`realize_chord_symbols`): the root low in the left hand at each change, the chord (three
notes at most) in close position below middle C struck every two beats until the next symbol. That is a simple
accompaniment, not the composer's; ``docs/data.md`` says why lead sheets are trained this way
(measured: melody alone gives one-line pieces, while real pop and jazz files sound three to six
notes at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .corpus_works import DEFAULT_VOICE_PROGRAM, _unshare_elements, assign_programs, write_score_midi

# Where realised chords sit: the bass note in E2-D#3, the chord tones in F3-E4.
BASS_LOW = 40  # E2
CHORD_LOW = 53  # F3
ACCOMPANIMENT_VELOCITY = 60  # quieter than music21's default melody velocity (90)


def blank_harm_spines(text: str) -> str:
    """Humdrum text with the data of every ``**harm`` spine replaced by null tokens (``.``).

    music21 reads ``**kern`` but stops at the ``**harm`` dialect some collections use (CoCoPops
    writes durations before its Roman numerals), and it would not play harmony anyway."""
    out, harm = [], []
    for line in text.split("\n"):
        fields = line.split("\t")
        if line.startswith("**"):
            harm = [i for i, f in enumerate(fields) if f == "**harm"]
        elif harm and line and line[0] not in "!*=" and len(fields) > max(harm):
            for i in harm:
                fields[i] = "."
            line = "\t".join(fields)
        out.append(line)
    return "\n".join(out)


def load_notation(path: Path) -> Any:
    """Parse a notation file with music21 into one ``Score`` (the first piece of an opus)."""
    from music21 import converter, stream

    if path.suffix.lower() == ".hum":
        parsed = converter.parseData(blank_harm_spines(path.read_text(encoding="utf-8", errors="replace")),
                                     format="humdrum")
    else:
        parsed = converter.parse(str(path), forceSource=True)
    if isinstance(parsed, stream.Opus):
        if not parsed.scores:
            raise ValueError("an empty opus")
        parsed = parsed.scores[0]
    if not parsed.flatten().notes:
        raise ValueError("no notes")
    return parsed


def _strike_every(signature: Any | None) -> float:
    """Quarter notes between chord strikes: every two beats in an even meter (half notes in 4/4),
    once a bar in an odd one (3/4, 6/8 counts two beats)."""
    if signature is None:
        return 2.0
    beats, beat = signature.beatCount, float(signature.beatDuration.quarterLength)
    return beat * 2 if beats % 2 == 0 else beat * beats


def _upper_voicing(cs: Any) -> list[int]:
    """At most three chord tones in close position from F3: the third, seventh and root before
    the fifth, which a four-note chord leaves out (its colour is in the other three)."""
    tones = [p.pitchClass for p in cs.pitches]
    if len(tones) > 3 and cs.root() is not None:
        fifth = (cs.root().pitchClass + 7) % 12
        tones = [t for t in tones if t != fifth] or tones
    return sorted({CHORD_LOW + (t - CHORD_LOW) % 12 for t in tones[:3]})


def realize_chord_symbols(score: Any) -> int:
    """Add a piano part playing the score's chord symbols (in place); return how many it played.

    Each symbol lasts until the next one (the last until the end of the piece). At each change
    the root sounds for a beat in the bass; the chord (:func:`_upper_voicing`) is struck at the
    change and again every :func:`_strike_every` until the next symbol. ``N.C.`` (no chord) and
    symbols music21 cannot spell are silent. The texture was measured against real pop and jazz
    files (``examples/leadsheet_texture.py``, docs/data.md).
    """
    from music21 import chord, harmony, instrument, meter, note, stream

    flat = score.flatten()
    symbols = [cs for cs in flat.getElementsByClass(harmony.ChordSymbol)
               if not isinstance(cs, harmony.NoChord) and cs.pitches]
    if not symbols:
        return 0
    signatures = list(flat.getElementsByClass(meter.TimeSignature))
    beat = float(signatures[0].beatDuration.quarterLength) if signatures else 1.0
    every = _strike_every(signatures[0] if signatures else None)
    end = float(score.highestTime)
    part = stream.Part()
    part.partName = "Piano accompaniment"
    part.insert(0, instrument.Piano())
    for i, cs in enumerate(symbols):
        start = float(cs.getOffsetBySite(flat))
        stop = float(symbols[i + 1].getOffsetBySite(flat)) if i + 1 < len(symbols) else end
        if stop <= start:
            continue
        root = cs.root().pitchClass if cs.root() is not None else cs.pitches[0].pitchClass
        bass = note.Note(BASS_LOW + (root - BASS_LOW) % 12, quarterLength=min(beat, stop - start))
        bass.volume.velocity = ACCOMPANIMENT_VELOCITY
        part.insert(start, bass)
        t = start
        while t < stop - 1e-6:
            struck = chord.Chord(_upper_voicing(cs), quarterLength=min(every, stop - t))
            struck.volume.velocity = ACCOMPANIMENT_VELOCITY
            part.insert(t, struck)
            t += every
    if signatures:
        part.insert(0, signatures[0].__class__(signatures[0].ratioString))
    # MIDI export expands repeats part by part, and a part without measures cannot be expanded.
    part.makeMeasures(inPlace=True)
    part.makeTies(inPlace=True)
    score.insert(0, part)
    return len(symbols)


def _remove_chord_symbols(score: Any) -> None:
    from music21 import harmony

    for cs in list(score.recurse().getElementsByClass(harmony.ChordSymbol)):
        cs.activeSite.remove(cs)


def convert_notation(path: Path, out_path: Path, *, source: str, realize_chords: bool = False,
                     voice_program: int = DEFAULT_VOICE_PROGRAM) -> dict[str, Any]:
    """Convert one notation file to MIDI at ``out_path`` (atomically); return what was done.

    Parts get General MIDI programs from their names as in the music21 corpus
    (:func:`~musenet_hf.corpus.corpus_works.assign_programs`); a lead sheet's melody stays on its
    part's instrument (piano when it names none).

    Returns:
        ``{"programs": [...], "chords": number of chord symbols played}``.
    """
    score = load_notation(path)
    _unshare_elements(score)
    programs = assign_programs(score, source, voice_program)
    chords = realize_chord_symbols(score) if realize_chords else 0
    _remove_chord_symbols(score)  # music21 would also write them, as chords of its own voicing
    from music21.repeat import ExpanderException

    try:
        write_score_midi(score, out_path)
        unrepeated = False
    except ExpanderException:
        # Repeat marks music21 cannot unfold (a missing start bar, an ending without its repeat,
        # common in hand-made lead sheets): the piece is written as notated, played once through.
        remove_repeat_marks(score)
        write_score_midi(score, out_path)
        unrepeated = True
    return {"programs": programs, "chords": chords, "repeats_removed": unrepeated}


def remove_repeat_marks(score: Any) -> int:
    """Turn repeat barlines into plain ones and drop repeat expressions (D.C., segno, coda) and
    volta brackets, in place; return how many marks went. The music then plays once, endings in
    the order they are written."""
    from music21 import bar, repeat, spanner

    removed = 0
    for m in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, bar.Barline("regular") if side == "rightBarline" else None)
                removed += 1
    for el in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        el.activeSite.remove(el)
        removed += 1
    return removed
