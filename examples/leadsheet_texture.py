"""Should lead sheets train as melody alone, or with their chord symbols played? A measurement.

Converts lead sheets both ways (``musenet_hf.corpus.corpus_convert.convert_notation`` with and without
``realize_chords``) and compares the texture of their first 30 s (notes at once, notes per second,
median note length) with real multi-instrument pop and jazz MIDI files (a folder of your choice,
e.g. the Lakh-style songs under ``../shared/midi/valid/musicautobot``). The corpus recipe plays the
chords when the realised texture is the closer one (docs/data.md has the numbers).

    python examples/leadsheet_texture.py --leadsheets DIR --real DIR [--limit 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

from musenet_hf.corpus.corpus_convert import convert_notation
from musenet_hf.evaluation.musical_statistics import clip_notes, piece_statistics
from musenet_hf.midi.midi_io import read_midi_arrays

KEYS = ("polyphony_mean", "notes_per_second", "note_length_median")


def texture(path: Path) -> dict[str, float]:
    """Notes at once, notes per second and median note length of a MIDI file's first 30 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        notes = read_midi_arrays(path).to_notes()
    return {k: piece_statistics(clip_notes(notes, 30.0))[k] for k in KEYS}


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows if r[k] == r[k]) for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leadsheets", required=True, help="folder of lead sheets (MusicXML .mxl/.xml)")
    parser.add_argument("--real", required=True, help="folder of real pop/jazz MIDI files to compare with")
    parser.add_argument("--limit", type=int, default=40, help="lead sheets to convert (the first N by name)")
    args = parser.parse_args()
    sheets = sorted(p for p in Path(args.leadsheets).rglob("*") if p.suffix.lower() in (".mxl", ".xml", ".musicxml"))
    rows: dict[str, list[dict[str, float]]] = {"melody alone": [], "chords played": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, sheet in enumerate(sheets[: args.limit]):
            for name, realize in (("melody alone", False), ("chords played", True)):
                out = Path(tmp) / f"{i}-{realize}.mid"
                try:
                    convert_notation(sheet, out, source="leadsheets", realize_chords=realize)
                except Exception as err:  # a sheet music21 cannot read is left out of both rows
                    print(f"skipped {sheet.name}: {type(err).__name__}: {err}"[:160])
                    break
                rows[name].append(texture(out))
    real = [texture(p) for p in sorted(Path(args.real).rglob("*.mid"))]
    rows = {k: v[: min(len(x) for x in rows.values())] for k, v in rows.items()}
    print(f"{'':<16}{'pieces':>8}" + "".join(f"{k:>22}" for k in KEYS))
    for name, group in [*rows.items(), ("real pop/jazz", real)]:
        m = medians(group)
        print(f"{name:<16}{len(group):>8}" + "".join(f"{m[k]:>22.2f}" for k in KEYS))


if __name__ == "__main__":
    main()
