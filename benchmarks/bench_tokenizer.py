"""MIDI paths -> token ids, end to end: musenet-hf against MidiTok 3.x MIDILike, one process.

Both read each file from disk and produce one token stream (MidiTok: ``use_programs=True``,
``one_token_stream_for_programs=True``). Every file of ``../shared/midi/valid`` (or the folder
given) is timed; the best of ``--repeat`` passes counts. Prints files/s, tokens/s and the ratio.

    python benchmarks/bench_tokenizer.py [FOLDER] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "midi" / "valid"


def run(name: str, encode, paths: list[Path], repeat: int) -> tuple[float, int, int]:
    """Best wall time of ``repeat`` passes, the number of files encoded, tokens produced."""
    best, files, tokens = float("inf"), 0, 0
    for _ in range(repeat):
        files = tokens = 0
        start = time.perf_counter()
        for path in paths:
            try:
                tokens += encode(path)
                files += 1
            except Exception:  # a file a tokenizer cannot read costs its time and counts as not encoded
                pass
        best = min(best, time.perf_counter() - start)
    print(f"{name:<34} {files:>4} files  {files / best:8.1f} files/s  {tokens / best:12,.0f} tokens/s  ({best:.2f} s)")
    return best, files, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not paths:
        raise SystemExit(f"no MIDI files under {args.folder}")
    warnings.simplefilter("ignore")

    from miditok import MIDILike, TokenizerConfig

    from musenet_hf.midi.midi_io import read_midi
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    miditok = MIDILike(TokenizerConfig(use_programs=True, one_token_stream_for_programs=True))
    ours = MuseNetTokenizer.from_preset("musenet")
    print(f"{len(paths)} files under {args.folder}, best of {args.repeat}")
    base, _, _ = run("MidiTok 3.x MIDILike", lambda p: len(miditok.encode(p).ids), paths, args.repeat)
    fast, _, _ = run("musenet-hf (auto reader)", lambda p: len(ours.encode_midi(p)), paths, args.repeat)
    mido_time, _, _ = run("musenet-hf (mido reader)", lambda p: len(ours.encode_midi(read_midi(p, backend="mido"))),
                          paths, 1)
    print(f"ratio musenet-hf / MidiTok: {base / fast:.1f}x faster (mido reader: {base / mido_time:.1f}x)")


if __name__ == "__main__":
    main()
