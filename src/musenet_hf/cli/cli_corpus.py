"""``musenet prepare-corpus``: the music21 corpus alone (:mod:`~musenet_hf.corpus.music21_corpus`), or a broad
corpus from a recipe and your own folders (:mod:`~musenet_hf.corpus.corpus_build`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..corpus.corpus_works import DEFAULT_VOICE_PROGRAM
from ..corpus.music21_corpus import prepare_corpus


def add_prepare_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``musenet prepare-corpus``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write (cached)")
    broad = parser.add_argument_group(
        "a broad corpus or your own folders (musenet_hf.corpus.corpus_build): labelled, deduplicated, split")
    broad.add_argument("--recipe", metavar="YAML", help="a corpus recipe, e.g. configs/corpus/broad.yaml")
    broad.add_argument("--fetched", metavar="DIR", default="/work/.mirror",
                       help="folder of fetched repository snapshots <owner>+<name>/repo (default /work/.mirror)")
    broad.add_argument("--folder", action="append", metavar="DIR",
                       help="your own music: one sub-folder per label (MIDI, MusicXML, kern, ABC); repeatable")
    broad.add_argument("--labels", metavar="CSV",
                       help="with --folder: a CSV with columns path,label[,instruments] instead of sub-folder names")
    broad.add_argument("--with-music21", action="store_true", help="with --folder: add the music21 corpus")
    broad.add_argument("--seed", type=int, help="seed of the train/validation/evaluation split (default: the recipe's, 0)")
    broad.add_argument("--min-pieces", type=int, metavar="N",
                       help="pieces a label outside the vocabulary needs to get a token of its own "
                            "(default: the recipe's, 50; 1 for --folder alone: your labels are kept)")
    music21 = parser.add_argument_group("the music21 corpus alone (without --recipe or --folder)")
    music21.add_argument("--collections", nargs="+", metavar="NAME",
                         help="collections or paths inside the corpus, e.g. bach beethoven/opus18no1")
    music21.add_argument("--limit", type=int, help="convert at most N works (a sample across labels)")
    music21.add_argument("--voice-program", type=int, default=DEFAULT_VOICE_PROGRAM,
                         help=f"GM program for vocal parts (default {DEFAULT_VOICE_PROGRAM}, choir)")
    music21.add_argument("--tokens", metavar="PRESET", choices=("musenet", "extended"),
                         help="also count tokens per label with this tokenizer preset")
    parser.add_argument("--num-proc", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per work or file (default 60 for music21, the recipe's for the rest)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_prepare_corpus(args: argparse.Namespace) -> int:
    """Run ``musenet prepare-corpus``: build, print the summary; exit code 0 (1 on bad input)."""
    try:
        import music21  # noqa: F401
    except ImportError:
        print("prepare-corpus needs music21: pip install 'musenet-hf[corpus]'", file=sys.stderr)
        return 1
    if args.recipe or args.folder:
        return _run_broad(args)
    if args.labels:
        print("musenet prepare-corpus: --labels goes with --folder", file=sys.stderr)
        return 1
    count_tokens = None
    if args.tokens:
        from ..tokenizer.tokenization_musenet import MuseNetTokenizer

        tokenizer = MuseNetTokenizer.from_preset(args.tokens)

        def count_tokens(path: Path) -> int:
            return len(tokenizer.encode_midi(path))

    report = prepare_corpus(args.out, num_proc=args.num_proc, collections=args.collections, limit=args.limit,
                            timeout_s=args.timeout or 60.0, voice_program=args.voice_program,
                            progress=not args.no_progress, count_tokens=count_tokens)
    print(report.summary())
    print(f"wrote {Path(args.out) / 'metadata.csv'} and {Path(args.out) / 'report.json'}")
    return 0


def _run_broad(args: argparse.Namespace) -> int:
    """``--recipe`` and/or ``--folder``: :func:`~musenet_hf.corpus.corpus_build.build_corpus`."""
    from ..corpus.corpus_build import CorpusRecipe, build_corpus, format_summary
    from ..corpus.corpus_sources import user_folder_spec

    try:
        recipe = (CorpusRecipe.from_yaml(args.recipe) if args.recipe
                  else CorpusRecipe(music21=args.with_music21, min_pieces_new_label=1))
        if args.labels and len(args.folder or []) != 1:
            raise ValueError("--labels goes with exactly one --folder")
        for folder in args.folder or []:
            recipe.sources.append(user_folder_spec(folder, args.labels))
        if args.seed is not None:
            recipe.seed = args.seed
        if args.timeout is not None:
            recipe.timeout_s = args.timeout
        if args.min_pieces is not None:
            recipe.min_pieces_new_label = args.min_pieces
        report = build_corpus(recipe, args.out, fetched=args.fetched, num_proc=args.num_proc,
                              progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"musenet prepare-corpus: {err}", file=sys.stderr)
        return 1
    print(format_summary(report))
    print(f"wrote {Path(args.out) / 'metadata.csv'}, report.json and statistics.json")
    return 0
