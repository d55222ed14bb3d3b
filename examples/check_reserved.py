"""Is any piece of a prepared corpus one of the files reserved for evaluation? A content check.

The corpus recipe refuses sources named after the reserved collections (POP909, the Nottingham
dataset, DryWetMIDI's test files, the Piano-e-Competition, MAESTRO) and files named the way they
name theirs. This script checks the content too: it fingerprints every MIDI file under the given
folders (notes in order, any key or tempo: ``musenet_hf.corpus.corpus_build.note_fingerprint``) and looks
for them among the corpus's pieces (``metadata.csv``'s fingerprint column).

    python examples/check_reserved.py corpus/broad ../shared/midi/valid/drywetmidi ../shared/midi/valid/miditok
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from musenet_hf.corpus.corpus_build import folder_fingerprints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a folder written by musenet prepare-corpus --recipe/--folder")
    parser.add_argument("reserved", nargs="+", help="folders of reserved files (searched recursively)")
    args = parser.parse_args()
    with open(Path(args.corpus) / "metadata.csv", newline="", encoding="utf-8") as f:
        corpus = {r["fingerprint"]: r["path"] for r in csv.DictReader(f)}
    reserved = folder_fingerprints([Path(f) for f in args.reserved])
    found = [(path, corpus[fp]) for fp, path in reserved.items() if fp in corpus]
    checked = len(reserved)
    print(f"{checked} reserved pieces (readable files, copies once) checked against {len(corpus)} corpus pieces: {len(found)} found in the corpus")
    for path, piece in found:
        print(f"  {path} == {piece}")


if __name__ == "__main__":
    main()
