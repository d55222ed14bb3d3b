"""``musenet encode``: MIDI files or folders to token ids (JSON lines) or token text.

Example::

    musenet encode song.mid --composer bach --text          # one line of tokens
    musenet encode midi_folder/ --num-proc 2 -o tokens.jsonl  # {"path": ..., "ids": [...]} per file

Unreadable files are skipped and listed on stderr with the reason; the exit code is 0 when at
least one file was encoded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="MIDI files or folders (searched recursively)")
    parser.add_argument("--preset", choices=("musenet", "extended"), default="musenet",
                        help="vocabulary preset (default musenet); ignored with --tokenizer")
    parser.add_argument("--tokenizer", help="a saved tokenizer folder (e.g. a checkpoint)")
    parser.add_argument("--composer", help="composer/style token to put first (e.g. bach)")
    parser.add_argument("--text", action="store_true", help="write token text instead of ids")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes for folders")
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_encode(args: argparse.Namespace) -> int:
    from ..errors import MidiReadError
    from ..tokenizer.tokenization_musenet import FolderEncoding, MuseNetTokenizer

    tok = MuseNetTokenizer.from_pretrained(args.tokenizer) if args.tokenizer else MuseNetTokenizer.from_preset(args.preset)
    result = FolderEncoding()
    for item in args.inputs:
        path = Path(item)
        if path.is_dir():
            found = tok.encode_folder(path, args.composer, num_proc=args.num_proc, progress=not args.no_progress)
            result.ids.update(found.ids)
            result.failed.update(found.failed)
        elif path.is_file():
            try:
                result.ids[str(path)] = tok.encode_midi(path, composer=args.composer)
            except MidiReadError as err:
                result.failed[str(path)] = err.reason
        else:
            result.failed[str(path)] = "no such file or folder"
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for name, ids in result.ids.items():
            if args.text:
                out.write(tok.decode(ids) + "\n")
            else:
                out.write(json.dumps({"path": name, "ids": ids}) + "\n")
    finally:
        if args.output:
            out.close()
    for name, reason in sorted(result.failed.items()):
        print(f"musenet encode: skipped {name}: {reason}", file=sys.stderr)
    return 0 if result.ids else 1
