"""The ``musenet`` command: generate, list, prepare-corpus, train, train-critic, encode, evaluate,
derive-sampling, demo, embeddings-plot.

Each subcommand's module (``cli_<name>`` in this folder, or the app it drives) exposes
``add_<name>_arguments(parser)``, ``run_<name>(args) -> int`` and optionally
``check_<name>(args) -> str | None`` (what is wrong with the arguments, found without loading
anything heavy); this file only wires them up, importing only the named subcommand's module, so
that ``musenet --help`` stays fast (``python -m musenet_hf.cli`` runs :func:`main`). The installed
``musenet`` command starts in :mod:`musenet_cli`, which parses and checks before the package's own
import (torch, transformers) runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, function stem, one-line help)
COMMANDS = {
    "generate": ("musenet_hf.cli.cli_generate", "generate", "write a piece of music as MIDI (and WAV, piano roll)"),
    "list": ("musenet_hf.cli.cli_generate", "list", "composers/styles, instruments and groups; for a model, the labels it trained on"),
    "prepare-corpus": ("musenet_hf.cli.cli_corpus", "prepare_corpus", "build a labelled, deduplicated, split MIDI corpus (music21, fetched collections, your folders)"),
    "train": ("musenet_hf.cli.cli_train", "train", "train or resume a model from a YAML config (Accelerate)"),
    "train-critic": ("musenet_hf.cli.cli_train", "train_critic", "train a finished model's critic head on its own samples"),
    "encode": ("musenet_hf.cli.cli_encode", "encode", "encode MIDI files or folders to token ids / text"),
    "evaluate": ("musenet_hf.cli.cli_evaluate", "evaluate", "measure a model: bits per second against GPT-2, composers, steering, length"),
    "derive-sampling": ("musenet_hf.cli.cli_derive", "derive_sampling", "derive a model's per-label sampling presets by measurement on validation pieces"),
    "demo": ("musenet_hf.demo.app", "demo", "the demo app in a browser: 4 candidates, continue, undo, the composer map"),
    "embeddings-plot": ("musenet_hf.demo.embeddings_plot", "embeddings_plot", "draw the composer and instrument map (t-SNE of the embeddings)"),
}


def chosen_command(argv: list[str], commands: dict | None = None) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), or None."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in (commands or COMMANDS) else None


def build_parser(commands: dict | None = None, only: str | None = None) -> argparse.ArgumentParser:
    """The ``musenet`` parser. With ``only``, just that subcommand's module is imported (the others,
    and all with ``only=""``, keep their help line), so parsing costs no more than that module."""
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="musenet", description="MuseNet for the Hugging Face ecosystem.")
    parser.add_argument("--version", action="version", version=f"musenet-hf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, stem, help_text) in (commands or COMMANDS).items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        mod = importlib.import_module(module)
        getattr(mod, f"add_{stem}_arguments")(p)
        p.set_defaults(_run=getattr(mod, f"run_{stem}"), _check=getattr(mod, f"check_{stem}", None))
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments of a ``musenet`` command line (``sys.argv[1:]`` by default); argparse exits on
    its own errors and for ``--help``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=chosen_command(argv) or "")  # no command named: no module imported
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
    return args


def check(args: argparse.Namespace) -> int | None:
    """The subcommand's own argument check (``check_<name>(args) -> str | None``, cheap: no model is
    loaded yet): 2 after printing what is wrong, else None."""
    problem = args._check(args) if getattr(args, "_check", None) else None
    if problem:
        print(f"musenet {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return None


def run(args: argparse.Namespace) -> int:
    """Run a parsed and checked command (0 when no subcommand was named: the help was printed).

    Output piped into a reader that stops early (``musenet list | head``) ends the command quietly,
    as ``git`` and ``ls`` do (exit status 141, a broken pipe), not with a traceback."""
    try:
        return int(args._run(args) or 0) if hasattr(args, "_run") else 0
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit stays silent
        return 141


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    code = check(args)
    return code if code is not None else run(args)
