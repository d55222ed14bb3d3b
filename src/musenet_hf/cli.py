"""The ``musenet`` command: generate, list, prepare-corpus, train, train-critic, encode, evaluate, demo,
embeddings-plot.

Each subcommand lives with the code it drives and exposes ``add_<name>_arguments(parser)`` and
``run_<name>(args) -> int``; this file only wires them up, importing each lazily so that
``musenet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, function stem, one-line help)
COMMANDS = {
    "generate": ("musenet_hf.cli_generate", "generate", "write a piece of music as MIDI (and WAV, piano roll)"),
    "list": ("musenet_hf.cli_generate", "list", "composers/styles, instruments and groups; for a model, the labels it trained on"),
    "prepare-corpus": ("musenet_hf.cli_corpus", "prepare_corpus", "build a labelled, deduplicated, split MIDI corpus (music21, fetched collections, your folders)"),
    "train": ("musenet_hf.cli_train", "train", "train or resume a model from a YAML config (Accelerate)"),
    "train-critic": ("musenet_hf.cli_train", "train_critic", "train a finished model's critic head on its own samples"),
    "encode": ("musenet_hf.cli_encode", "encode", "encode MIDI files or folders to token ids / text"),
    "evaluate": ("musenet_hf.cli_evaluate", "evaluate", "measure a model: bits per second against GPT-2, composers, steering, length"),
    "demo": ("musenet_hf.demo", "demo", "the demo app in a browser: 4 candidates, continue, undo, the composer map"),
    "embeddings-plot": ("musenet_hf.embeddings_plot", "embeddings_plot", "draw the composer and instrument map (t-SNE of the embeddings)"),
}


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="musenet", description="MuseNet for the Hugging Face ecosystem.")
    parser.add_argument("--version", action="version", version=f"musenet-hf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, stem, help_text) in (commands or COMMANDS).items():
        mod = importlib.import_module(module)
        add = getattr(mod, f"add_{stem}_arguments")
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_run=getattr(mod, f"run_{stem}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 0
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
