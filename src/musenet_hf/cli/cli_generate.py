"""``musenet generate``: write a piece as MIDI, and optionally WAV and a piano-roll PNG; ``musenet list``.

Example::

    musenet generate --composer bach --instruments piano,violin --seconds 240 \\
        --primer opening.mid --primer-seconds 10 --samples 4 --rerank --steering hard \\
        --seed 0 -o out.mid --wav out.wav --pianoroll out.png

Without ``--model`` the bundled checkpoint ``checkpoints/musenet-small-music21`` of the
repository is used; ``--model`` also takes a LoRA adapter folder (``examples/finetune_lora.py``).
With ``--samples N`` the first (the best with ``--rerank``) goes to ``-o`` and the others to
``NAME-2.mid``, ``NAME-3.mid``, ...; the WAV and PNG show the first.

The rules (also in ``musenet generate --help``):

* **Length.** ``--seconds`` counts the new music. With ``--primer`` the piece is the primer's
  first ``--primer-seconds`` (the model's default, 5 for the bundled one) or ``--primer-notes``, then ``--seconds`` of new music;
  each piece is reported as ``primer X s + new Y s``. Above ``MAX_SECONDS`` (600) it needs
  ``--allow-long``.
* **Sampling settings** not given (steering, its strength, guidance, the texture rules, temperature,
  top-p) are the model's: its generation config's defaults and its presets for the label
  (:class:`~musenet_hf.generation.generation_config.MuseNetGenerationConfig`); ``musenet list
  --model PATH`` prints them.
* **Instruments.** Named instruments are soft-steered by default (``--steering auto``, the
  bundled model's), and so, with none named and no primer, is the composer's usual
  instrumentation in the model's training data; ``--steering hard`` gives every note-on to them,
  ``--steering none`` leaves only the instrumentation token. Steering picks the instrument of
  a note-on, never whether one is struck.
* **Every piece is checked** (:mod:`musenet_hf.generation.piece_check`): its new music against what was
  asked (notes per second, held notes, the instruments named, the style's usual ones or the
  primer's). A piece that fails is written, and one line per piece says what went wrong and what
  to try. Fewer than ``--min-note-rate`` (0.5) new notes a second is an error (exit 3); held notes
  and notes off the instruments asked for are warnings, errors with ``--strict``.
* **Untrained styles.** A ``--composer`` the model never trained on (``config.training_coverage``)
  gets one warning line naming the nearest styles it did train on (:mod:`musenet_hf.generation.styles`);
  ``--strict`` refuses it.
* **Ctrl-C** writes what was generated so far (every sounding note ended) and exits with 130.
* **Threads.** ``--threads`` (default ``$MUSENET_THREADS``, else 1): torch's default of one
  thread per core collapses when another process keeps the cores busy.

Exit status: 0 done, 1 no WAV written, 2 bad arguments, 3 a piece failed its check (too few notes; with
``--strict`` any problem), 130 interrupted.

The arguments are checked (:func:`check_generate`) before torch is imported: the parser and the check
need only :mod:`musenet_hf.defaults`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_THREADS, MIN_NOTE_RATE
from ..loading import BUNDLED, bundled_checkpoint

MAX_SECONDS = 600.0  # longer needs --allow-long
# Seconds of music per wall-clock second of the bundled model on a 2-core CPU with its default
# sampling (no composer guidance), for the time estimate of long pieces: 240 s pieces took 154 s
# (bach, 2,621 notes) and 52 s (irish, 686 notes), one thread, idle machine (stage 8; stage 9b has
# its size and layout, so its speed). Composer guidance (the bundled model's default for a prompt with
# a composer) runs the model on a batch of two rows a token: GUIDED_WORK times the time
# (`benchmarks/bench_generate.py --guidance`: 1.5x for one piece, against 2.9x for two forwards).
MUSIC_PER_WALL_SECOND = (1.5, 4.6)
GUIDED_WORK = 1.5
EXIT_SPARSE, EXIT_INTERRUPTED = 3, 130


# Sampling settings not given come from the model: its generation config's defaults and its presets for
# the label (the bundled model's are printed by `musenet list --model PATH`; none restated here).
_MODELS = "; default: the model's (`musenet list` shows them)"


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        f"Length: --seconds counts the new music; with --primer the piece opens with the primer's\n"
        f"first --primer-seconds (the model's default) and reports 'primer X s + new Y s'.\n"
        f"Sampling settings not given (steering, guidance, texture, temperature) are the model's: its\n"
        f"generation config and its presets for the label; `musenet list --model PATH` prints them.\n"
        f"Steering: named instruments (none named: the composer's usual ones) are soft-steered unless\n"
        f"--steering or the model's settings say otherwise. Steering picks the instrument of each\n"
        f"note-on, never whether one is struck: soft makes them e**strength times likelier among note-ons\n"
        f"(others stay possible), hard gives every note-on to them, none leaves only the instrumentation token.\n"
        f"Every piece is checked against the request (notes per second, held notes, instruments); one line\n"
        f"per failing piece says what went wrong and what to try. Under --min-note-rate new notes a second\n"
        f"on the instruments asked for exits 3; other problems and untrained styles warn (--strict: fail).\n"
        f"Ctrl-C writes what was generated so far (every note ended) and exits 130.\n"
        f"Exit status: 0 done, 1 no WAV, 2 bad arguments, 3 a piece failed its check, 130 interrupted.")
    p.add_argument("--model", help=f"checkpoint or LoRA adapter folder (default: the bundled checkpoints/{BUNDLED})")
    p.add_argument("--composer", help="composer/style token (bach, any case); two joined by '+' blend them (bach+mozart); "
                                      "`musenet list` shows them")
    p.add_argument("--instruments", help="comma-separated instruments or groups, any case (piano,violin or piano,strings)")
    p.add_argument("--seconds", type=float, default=30.0,
                   help=f"seconds of new music, after the primer's opening (default 30; above {MAX_SECONDS:g} "
                        "needs --allow-long)")
    p.add_argument("--allow-long", action="store_true", help=f"allow --seconds above {MAX_SECONDS:g}")
    p.add_argument("--primer", help="a MIDI file whose opening starts the piece")
    p.add_argument("--primer-seconds", type=float,
                   help="keep the primer's first N seconds" + _MODELS)
    p.add_argument("--primer-notes", type=int, help="or its first N notes")
    p.add_argument("--samples", type=int, default=1, help="pieces to generate (one batch)")
    p.add_argument("--rerank", action="store_true", help="order the samples by the critic head's score")
    p.add_argument("--steering", choices=("auto", "soft", "hard", "none"),
                   help="push (soft) or restrict (hard) notes to --instruments, or not (none); auto: soft toward "
                        "--instruments, or without them the composer's usual ones" + _MODELS)
    p.add_argument("--strength", type=float,
                   help="soft steering: the requested instruments' odds among note-ons, in logits (x e**strength)"
                        + _MODELS)
    p.add_argument("--temperature", type=float, help="sampling temperature (0: greedy decoding)" + _MODELS)
    p.add_argument("--top-p", type=float, help="nucleus sampling's probability mass" + _MODELS)
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance on the composer token: how much the label's difference is "
                        "amplified (1 = off)" + _MODELS)
    p.add_argument("--guidance-against", metavar="LABEL",
                   help="the label guidance steers away from, or 'none'" + _MODELS)
    p.add_argument("--max-polyphony", type=int, metavar="N",
                   help="most notes sounding at once (0: no limit)" + _MODELS)
    p.add_argument("--min-voices", type=int, metavar="N",
                   help="time moves on only while N notes sound, so polyphony does not thin to one line (0: off)"
                        + _MODELS)
    p.add_argument("--max-note-seconds", type=float, metavar="S",
                   help="no note lasts longer than S seconds (0: off)" + _MODELS)
    p.add_argument("--min-note-rate", type=float, default=MIN_NOTE_RATE,
                   help=f"fewest new notes a second on the requested instruments before the command fails "
                        f"(default {MIN_NOTE_RATE:g}; 0: no check)")
    p.add_argument("--strict", action="store_true",
                   help="exit 3 when a piece fails any part of its check (held notes, notes off the instruments "
                        "asked for), and refuse a style the model never trained on (exit 2)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same piece)")
    p.add_argument("--threads", type=int,
                   help=f"torch CPU threads (default $MUSENET_THREADS, else {DEFAULT_THREADS}: more threads only "
                        "help on an idle machine)")
    p.add_argument("-o", "--output", default="out.mid", help="MIDI file to write (default out.mid)")
    p.add_argument("--wav", help="also render a WAV file with FluidSynth")
    p.add_argument("--soundfont", help="General MIDI .sf2 for --wav (default: the system's)")
    p.add_argument("--pianoroll", help="also draw a piano-roll PNG")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(message: str, code: int = 2) -> int:
    print(f"musenet generate: error: {message}", file=sys.stderr)
    return code


def _time_range(seconds: float) -> tuple[float, float]:
    """Wall seconds a piece of ``seconds`` may take on a 2-core CPU: (an unguided fast style, a guided
    dense one). A range, not one figure: whether the request is guided is the pipeline's to resolve."""
    return seconds / MUSIC_PER_WALL_SECOND[1], seconds / MUSIC_PER_WALL_SECOND[0] * GUIDED_WORK


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 5400 else f"{seconds / 60:.0f} minutes"


def _check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers (None: nothing)."""
    finite = lambda x: x is None or math.isfinite(x)  # noqa: E731
    if not (finite(args.seconds) and args.seconds > 0):
        return f"--seconds must be a positive number of seconds, got {args.seconds}"
    if args.seconds > MAX_SECONDS and not args.allow_long:
        fast, slow = _time_range(args.seconds)
        return (f"--seconds {args.seconds:g} is above {MAX_SECONDS:g} s: on a 2-core CPU that takes about "
                f"{_duration(fast)} to {_duration(slow)}; pass --allow-long to generate it anyway "
                "(Ctrl-C then writes what is done so far)")
    if args.primer_seconds is not None and not (finite(args.primer_seconds) and args.primer_seconds >= 0):
        return f"--primer-seconds must be a number >= 0, got {args.primer_seconds}"
    if args.primer_notes is not None and args.primer_notes < 0:
        return f"--primer-notes must be >= 0, got {args.primer_notes}"
    if args.temperature is not None and not (finite(args.temperature) and args.temperature >= 0):
        return f"--temperature must be >= 0 (0: greedy decoding), got {args.temperature}"
    if args.top_p is not None and not (finite(args.top_p) and 0 < args.top_p <= 1):
        return f"--top-p must be in (0, 1], got {args.top_p}"
    if not finite(args.strength):
        return f"--strength must be a number, got {args.strength}"
    if not (finite(args.min_note_rate) and args.min_note_rate >= 0):
        return f"--min-note-rate must be >= 0, got {args.min_note_rate}"
    if args.samples < 1:
        return f"--samples must be at least 1, got {args.samples}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1, got {args.threads}"
    return None


def check_generate(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``musenet generate`` command line that shows without loading anything:
    the numbers, the model folder, the primer file (None: nothing)."""
    from ..local_paths import missing_folder_message

    problem = _check_arguments(args)
    if problem:
        return problem
    model_path = Path(args.model) if args.model else bundled_checkpoint()
    if not model_path.is_dir():
        if args.model:
            return missing_folder_message(args.model)
        return (f"no --model given and the bundled checkpoint {model_path} is not there: "
                "pass --model PATH (a folder written by save_pretrained, e.g. by `musenet train`)")
    if args.primer and not Path(args.primer).is_file():
        return f"primer {args.primer} not found"
    return None


def note_counts(vocabulary, tokens, after_seconds: float = 0.0) -> dict[int, int]:
    """Note-ons per instrument index in ``tokens`` from ``after_seconds`` on (the new music)."""
    v = vocabulary
    unit = v.wait_unit_seconds
    limit = int(round(after_seconds / unit))
    units, counts = 0, {}
    for t in tokens:
        if t == v.end_id:
            break
        if not 0 <= t < len(v):
            continue
        units += int(v.wait_units[t])
        if v.is_note_on[t] and units >= limit:
            i = int(v.note_instrument[t])
            counts[i] = counts.get(i, 0) + 1
    return counts


def run_generate(args: argparse.Namespace) -> int:
    problem = check_generate(args)  # again for callers that come in past `musenet_hf.cli.check`
    if problem:
        return _error(problem)
    import warnings

    import torch
    from transformers import pipeline

    from ..errors import CoverageWarning
    from ..generation.generate import GenerationInterrupted
    from ..generation.pipeline_musenet import TASK, register_pipeline, resolve_threads
    from ..loading import load_model, tokenizer_for_model

    try:
        threads = resolve_threads(args.threads) or DEFAULT_THREADS
    except ValueError as err:
        return _error(str(err))
    torch.set_num_threads(threads)
    register_pipeline()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = load_model(Path(args.model) if args.model else bundled_checkpoint(), device)
        tokenizer = tokenizer_for_model(model)
        pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device(device))
        composer = args.composer.split("+") if args.composer and "+" in args.composer else args.composer
        problem = _announce(args, pipe, composer)
    except (FileNotFoundError, ImportError, KeyError, ValueError) as err:  # KeyError: an unknown label to guide against
        return _error(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err))
    if problem:
        return _error(problem)
    steering = args.steering  # None: the model's (usually auto: soft toward the named or the usual instruments)
    started = time.time()
    interrupted = False
    try:
        with warnings.catch_warnings():  # said above, in the command's own words
            warnings.simplefilter("ignore", CoverageWarning)
            results = pipe(composer=composer, instruments=args.instruments, primer=args.primer,
                           primer_seconds=args.primer_seconds, primer_notes=args.primer_notes, seconds=args.seconds,
                           **({"steering": steering} if steering else {}), strength=args.strength,
                           temperature=args.temperature,
                           top_p=args.top_p, num_samples=args.samples, rerank=args.rerank, seed=args.seed,
                           max_polyphony=args.max_polyphony, progress=not args.no_progress, threads=threads,
                           guidance=args.guidance, guidance_against=args.guidance_against,
                           min_voices=args.min_voices, max_note_seconds=args.max_note_seconds,
                           min_note_rate=args.min_note_rate)
    except (KeyError, ValueError) as err:  # unknown composer/instrument, bad lengths
        return _error(str(err.args[0]) if err.args else str(err))
    except GenerationInterrupted as err:
        results, interrupted = err.results, True
    except KeyboardInterrupt:
        print("musenet generate: interrupted (Ctrl-C) outside a generation step: no file written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _finish(args, results, tokenizer, steering, interrupted, time.time() - started)


def _announce(args: argparse.Namespace, pipe: Any, composer: Any) -> str | None:
    """Before generating: a warning line for what the model never trained on (the style, with the
    nearest trained ones; instruments the style never had), greedy decoding, a long wait. Returns
    the error when ``--strict`` refuses an untrained style (None: go on)."""
    from ..generation.logits_processors import resolve_instruments
    from ..generation.styles import untrained_style_message

    if args.instruments:
        resolve_instruments(pipe.tokenizer.vocabulary, args.instruments)  # ValueError: an unknown instrument
    coverage = getattr(pipe.model.config, "training_coverage", None)
    if args.strict:
        untrained = untrained_style_message(composer, coverage, pipe.tokenizer.vocabulary.composers)
        if untrained:
            return f"--strict: {untrained}; choose a trained style (`musenet list{_model_option(args)}`)"
    message = pipe.coverage_message({"composer": composer, "instruments": args.instruments}, {})
    if message:
        print(f"musenet generate: warning: {message} (`musenet list{_model_option(args)}` shows what it "
              "trained on; --strict refuses untrained styles)", file=sys.stderr)
    if args.temperature == 0:
        print("temperature 0: greedy decoding (the most likely token every step; all samples alike)")
    if args.seconds > MAX_SECONDS:
        fast, slow = _time_range(args.seconds)
        print(f"a long piece: expect about {_duration(fast)} to {_duration(slow)} on a 2-core CPU; "
              "Ctrl-C writes what is done so far")
    return None


def _model_option(args: argparse.Namespace) -> str:
    return f" --model {args.model}" if args.model else ""


def _finish(args: argparse.Namespace, results: list[dict[str, Any]], tokenizer: Any, steering: str,
            interrupted: bool, elapsed: float) -> int:
    """Write the pieces, say how each went (one line per piece that failed its check), render the
    best; the exit status."""
    failed = _write_pieces(args, results, tokenizer.vocabulary, interrupted)
    if interrupted:
        print(f"interrupted (Ctrl-C) after {elapsed:.1f} s: wrote the {len(results)} piece(s) as far as they got, "
              "every sounding note ended there", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"generated {len(results)} piece(s) in {elapsed:.1f} s")
    code = _render(args, results[0], tokenizer)
    for path, check in failed:
        print(_check_line(args, path, check, steering), file=sys.stderr)
    if any("sparse" in check["problems"] or args.strict for _, check in failed):
        code = EXIT_SPARSE
    return code


def _render(args: argparse.Namespace, best: dict[str, Any], tokenizer: Any) -> int:
    """The best piece's piano roll and WAV when asked for; 1 when the WAV could not be made."""
    from ..midi.render import AudioRenderError, render_pianoroll, render_wav

    code = 0
    if args.pianoroll:
        notes = tokenizer.decode_to_notes(best["tokens"])
        render_pianoroll(notes, args.pianoroll, vocabulary=tokenizer.vocabulary,
                         title=f"{args.composer or 'musenet'}: {best['seconds']:.0f} s")
        print(f"{args.pianoroll}: piano roll")
    if args.wav:
        try:
            render_wav(best["midi"], args.wav, soundfont=args.soundfont)
            print(f"{args.wav}: audio")
        except AudioRenderError as err:
            code = _error(f"no WAV written: {err}", 1)
    return code


def _write_pieces(args: argparse.Namespace, results: list[dict[str, Any]], v: Any,
                  interrupted: bool) -> list[tuple[Path, dict[str, Any]]]:
    """Save each piece (the first to ``-o``, the others numbered beside it) and print a line about
    it; returns ``(path, check)`` for the pieces that failed their check."""
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for k, r in enumerate(results):
        path = out if k == 0 else out.with_name(f"{out.stem}-{k + 1}{out.suffix or '.mid'}")
        r["midi"].save(str(path))
        notes = sum(note_counts(v, r["tokens"]).values())
        new = r["seconds"] - r["primer_seconds"]
        length = (f"primer {r['primer_seconds']:.1f} s + new {new:.1f} s = {r['seconds']:.1f} s" if args.primer
                  else f"{r['seconds']:.1f} s")
        critic = "" if interrupted else f", critic {r['critic_score']:+.3f}"
        state = " (interrupted)" if interrupted else ("" if r["finished"] else " (stopped before end)")
        print(f"{path}: {length}, {notes} notes, {len(r['tokens'])} tokens{critic}{state}")
        if r.get("check") and not r["check"]["ok"]:
            failed.append((path, r["check"]))
    return failed


def _check_line(args: argparse.Namespace, path: Path, check: dict[str, Any], steering: str) -> str:
    """One line for a piece that failed its check: what went wrong and what to try."""
    problems = check["problems"]
    named, primer, sparse = bool(args.instruments), bool(args.primer), "sparse" in problems
    tips = ["other instruments (the ones it played instead come easily to this model)" if named and sparse else None,
            "--steering hard, or soft with a higher --strength"
            if named and steering != "hard" and {"sparse", "off_request"} & set(problems) else None,
            "--steering soft (keeps the new notes on the primer's instruments)"
            if primer and not named and steering in ("auto", "none") and "off_request" in problems else None,
            "--max-note-seconds 4 (no note lasts longer)" if "held" in problems and not args.max_note_seconds else None,
            ("a shorter --primer-seconds, or a primer nearer the styles it trained on" if primer else
             "another composer/style, one the model trained on") + f" (`musenet list{_model_option(args)}`)",
            "another --seed"]
    asked = args.instruments or ("the primer's instruments" if primer else "any instrument")
    return (f"musenet generate: {'error' if sparse or args.strict else 'warning'}: {path}: not the music asked for "
            f"({args.composer or 'no composer'}, {asked}): " + "; ".join(problems.values())
            + "; the file is written for inspection; try " + "; ".join(t for t in tips if t)
            + (" (--min-note-rate 0 accepts sparse pieces)" if sparse else "" if args.strict
               else " (--strict makes this an error)"))


# ------------------------------------------------------------------------------------- musenet list
def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=f"checkpoint or LoRA adapter folder (default: the bundled checkpoints/{BUNDLED})")


def _listed_model(args: argparse.Namespace) -> tuple[Any, dict | None, bool, Path]:
    """The tokenizer and ``training_coverage`` of ``--model`` (or the bundled model; a LoRA adapter:
    its own coverage when it records one, else its base's), whether there was a model folder, and the
    model folder (an adapter's base). Without one it is the musenet preset and no coverage.
    Raises FileNotFoundError."""
    import json
    from types import SimpleNamespace

    from ..loading import adapter_base_path, adapter_coverage, tokenizer_for_model
    from ..local_paths import missing_folder_message
    from ..tokenizer.tokenization_musenet import VOCAB_FILE, MuseNetTokenizer

    path = Path(args.model) if args.model else bundled_checkpoint()
    if not path.is_dir():
        if args.model:
            raise FileNotFoundError(missing_folder_message(args.model))
        print(f"no bundled checkpoint at {path}: the musenet preset's names")
        return MuseNetTokenizer.from_preset("musenet"), None, False, path
    own = None
    if (path / "adapter_config.json").is_file():
        own, path = adapter_coverage(path), adapter_base_path(path)
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    if (path / VOCAB_FILE).is_file():
        tok = MuseNetTokenizer.from_pretrained(str(path))
    else:
        cfg = SimpleNamespace(vocab_size=config.get("vocab_size", 0))
        tok = tokenizer_for_model(SimpleNamespace(name_or_path=str(path), config=cfg))
    print(f"model {path} ({tok.vocabulary.config.preset} vocabulary)")
    return tok, own or config.get("training_coverage"), True, path


def _block(title: str, items: list[str]) -> None:
    """A titled block: the items comma-separated, wrapped at 100 columns between items, never inside one."""
    print(f"\n{title}:")
    lines, line = [], ""
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if line and len(line) + 1 + len(piece) > 98:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    print("\n".join("  " + x for x in lines + [line]))


def run_list(args: argparse.Namespace) -> int:
    from ..generation.styles import trained_labels, trained_styles, untrained_styles
    from ..tokenizer.vocabulary import GROUPS

    try:
        tok, coverage, is_model, folder = _listed_model(args)
    except FileNotFoundError as err:
        print(f"musenet list: error: {err}", file=sys.stderr)
        return 2
    v = tok.vocabulary
    trained = trained_styles(coverage, v.composers)
    if trained:  # each style marked: trained (pieces each) or not, the names `musenet generate` says
        _block(f"composers/styles it trained on ({len(trained)}, pieces each; --composer, any case)",
               [f"{lb} {n}" for lb, n in trained.items()])
        untrained = untrained_styles(coverage, v.composers)
        _block(f"composers/styles it never trained on ({len(untrained)}: untrained tokens, expect scattered notes)",
               untrained)
        tokenless = {lb: n for lb, n in trained_labels(coverage).items() if lb not in trained}
        if tokenless:  # trained as unlabelled music: what the model plays without --composer
            _block(f"trained on, without a token of their own ({len(tokenless)}, pieces each; no --composer)",
                   [f"{lb} {n}" for lb, n in tokenless.items()])
    else:
        if is_model:
            print("\ntrained on: not recorded (this checkpoint's config has no training_coverage)")
        _block(f"composers/styles ({len(v.composers)}; --composer, any case)", v.composers)
    _block("instruments (--instruments, any case; group in brackets)", [f"{i.name} [{i.group}]" for i in v.instruments])
    _block("groups (--instruments; each stands for its instruments)",
           [f"{g} = {'+'.join(v.instruments[i].name for i in v.instruments_for_groups([g])) or '-'}" for g in GROUPS])
    if is_model:
        _print_sampling(folder)
    return 0


def _print_sampling(folder: Path) -> None:
    """The model's sampling settings (its generation config): what `musenet generate` uses for each
    option not given, and the presets that change them for a label."""
    from ..generation.generation_config import MuseNetGenerationConfig

    lines = MuseNetGenerationConfig.from_folder(folder).describe()
    print("\nsampling settings (musenet generate's defaults; a preset applies to its label, a re-voiced one when "
          "the instruments asked for are not the label's own):")
    print("\n".join("  " + line for line in lines))


__all__ = ["add_generate_arguments", "check_generate", "run_generate", "add_list_arguments", "run_list",
           "note_counts"]
