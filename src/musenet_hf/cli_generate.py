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
  first ``--primer-seconds`` (default 5) or ``--primer-notes``, then ``--seconds`` of new music;
  each piece is reported as ``primer X s + new Y s``. Above ``MAX_SECONDS`` (600) it needs
  ``--allow-long``.
* **Instruments.** Named instruments are soft-steered by default (``--steering soft`` at
  ``DEFAULT_STEERING_STRENGTH``), and so, with none named and no primer, is the composer's usual
  instrumentation in the model's training data; ``--steering hard`` gives every note-on to them,
  ``--steering none`` leaves only the instrumentation token. Steering picks the instrument of
  a note-on, never whether one is struck.
* **Too few notes.** A piece with fewer than ``--min-note-rate`` (0.5) new notes a second on the
  requested instruments (on any instrument when none is named) is still written, but the
  command says which instruments fell short and what to try, and exits with status 3.
* **Ctrl-C** writes what was generated so far (every sounding note ended) and exits with 130.
* **Threads.** ``--threads`` (default ``$MUSENET_THREADS``, else 1): torch's default of one
  thread per core collapses when another process keeps the cores busy.

Exit status: 0 done, 1 no WAV written, 2 bad arguments, 3 too few notes, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

BUNDLED = "musenet-small-music21"
MAX_SECONDS = 600.0  # longer needs --allow-long
DEFAULT_THREADS = 1  # torch CPU threads unless --threads or $MUSENET_THREADS says otherwise
MIN_NOTE_RATE = 0.5  # new notes per second on the requested instruments below which the command fails
# Seconds of music per wall-clock second of the bundled model on a 2-core CPU with its default
# sampling (no composer guidance), for the time estimate of long pieces: 240 s pieces took 154 s
# (bach, 2,621 notes) and 52 s (irish, 686 notes), one thread, idle machine (stage 8; stage 9b has
# its size and layout, so its speed). Composer guidance (the bundled model's default for a prompt with
# a composer) runs the model twice a token: GUIDED_WORK times the time (stage 7 at 1.5: 255 s and 98 s).
MUSIC_PER_WALL_SECOND = (1.5, 4.6)
GUIDED_WORK = 2.0
EXIT_SPARSE, EXIT_INTERRUPTED = 3, 130


def bundled_checkpoint() -> Path:
    """The bundled checkpoint ``musenet-small-music21``, wherever this install keeps it.

    A wheel (``pip install .``) carries it inside the package, as ``musenet_hf/bundled/<name>``
    (setup.py's ``build_py`` copies it there); a source checkout or an editable install reads the
    repository's ``checkpoints/<name>``. The package copy wins when both exist. When neither does,
    the source-tree path is returned and the caller reports it missing."""
    import musenet_hf

    package = Path(musenet_hf.__file__).resolve().parent
    installed = package / "bundled" / BUNDLED
    if (installed / "config.json").is_file():
        return installed
    return package.parents[1] / "checkpoints" / BUNDLED


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    from .guidance import DEFAULT_GUIDANCE
    from .logits_processors import DEFAULT_STEERING_STRENGTH
    from .pipeline_musenet import DEFAULT_PRIMER_SECONDS

    p = parser
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        f"Length: --seconds counts the new music; with --primer the piece opens with the primer's\n"
        f"first --primer-seconds (default {DEFAULT_PRIMER_SECONDS:g}) and reports 'primer X s + new Y s'.\n"
        f"Steering: named instruments (none named: the composer's usual ones) are soft-steered (strength\n"
        f"{DEFAULT_STEERING_STRENGTH:g}) unless --steering says otherwise. Steering picks the instrument of each\n"
        f"note-on, never whether one is struck: soft makes them e**strength times likelier among note-ons\n"
        f"(others stay possible), hard gives every note-on to them, none leaves only the instrumentation token.\n"
        f"A piece with under --min-note-rate new notes a second on the requested instruments is\n"
        f"written but reported, with what to try, and the command exits 3. Ctrl-C writes what was\n"
        f"generated so far (every note ended) and exits 130.\n"
        f"Exit status: 0 done, 1 no WAV, 2 bad arguments, 3 too few notes, 130 interrupted.")
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
                   help=f"keep the primer's first N seconds (default {DEFAULT_PRIMER_SECONDS:g})")
    p.add_argument("--primer-notes", type=int, help="or its first N notes")
    p.add_argument("--samples", type=int, default=1, help="pieces to generate (one batch)")
    p.add_argument("--rerank", action="store_true", help="order the samples by the critic head's score")
    p.add_argument("--steering", choices=("soft", "hard", "none"),
                   help="push (soft) or restrict (hard) notes to --instruments, or not (none); "
                        "default soft toward --instruments, or without them the composer's usual ones")
    p.add_argument("--strength", type=float, default=DEFAULT_STEERING_STRENGTH,
                   help=f"soft steering: the requested instruments' odds among note-ons, in logits "
                        f"(x e**strength; default {DEFAULT_STEERING_STRENGTH:g})")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1; 0: greedy decoding)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--guidance", type=float,
                   help=f"classifier-free guidance on the composer token: how much the label's difference "
                        f"is amplified (default: the model's for the label, the bundled one's 1.3 (Irish 1), "
                        f"else {DEFAULT_GUIDANCE:g}; 1 = off, costs a second forward a step)")
    p.add_argument("--guidance-against", metavar="LABEL",
                   help="the label guidance steers away from, or 'none' (default: the model's for the label, "
                        "the bundled one's folk, Palestrina's trecento, trecento's irish: a second voice is "
                        "what sets a motet apart from a folk tune)")
    p.add_argument("--max-polyphony", type=int, metavar="N",
                   help="most notes sounding at once (default: the model's for the label, the bundled one's 4 for "
                        "the string quartets of Mozart, Beethoven, Haydn and Schumann, else no limit; 0: no limit)")
    p.add_argument("--min-voices", type=int, metavar="N",
                   help="time moves on only while N notes sound, so polyphony does not thin to one line "
                        "(default: the model's for the label, the bundled one's 2 for Palestrina and trecento "
                        "on instruments they never trained on, else off; 0: off)")
    p.add_argument("--max-note-seconds", type=float, metavar="S",
                   help="no note lasts longer than S seconds (default: the model's for the label, the bundled "
                        "one's 4 for Palestrina on instruments it never trained on, else off; 0: off)")
    p.add_argument("--min-note-rate", type=float, default=MIN_NOTE_RATE,
                   help=f"fewest new notes a second on the requested instruments before the command fails "
                        f"(default {MIN_NOTE_RATE:g}; 0: no check)")
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


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 5400 else f"{seconds / 60:.0f} minutes"


def _check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers (None: nothing)."""
    finite = lambda x: x is None or math.isfinite(x)  # noqa: E731
    if not (finite(args.seconds) and args.seconds > 0):
        return f"--seconds must be a positive number of seconds, got {args.seconds}"
    if args.seconds > MAX_SECONDS and not args.allow_long:  # (the model is not loaded yet: guided or not)
        slow, fast = args.seconds / MUSIC_PER_WALL_SECOND[0] * GUIDED_WORK, args.seconds / MUSIC_PER_WALL_SECOND[1]
        return (f"--seconds {args.seconds:g} is above {MAX_SECONDS:g} s: on a 2-core CPU that takes about "
                f"{_duration(fast)} to {_duration(slow)}; pass --allow-long to generate it anyway "
                "(Ctrl-C then writes what is done so far)")
    if args.primer_seconds is not None and not (finite(args.primer_seconds) and args.primer_seconds >= 0):
        return f"--primer-seconds must be a number >= 0, got {args.primer_seconds}"
    if args.primer_notes is not None and args.primer_notes < 0:
        return f"--primer-notes must be >= 0, got {args.primer_notes}"
    if not (finite(args.temperature) and args.temperature >= 0):
        return f"--temperature must be >= 0 (0: greedy decoding), got {args.temperature}"
    if not (finite(args.top_p) and 0 < args.top_p <= 1):
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


def sparse_report(vocabulary, result: dict, requested: list[int] | None, rate: float) -> str | None:
    """Why a piece has too few new notes on ``requested`` (all instruments when None), or None."""
    v = vocabulary
    new_seconds = max(result["seconds"] - result["primer_seconds"], 0.0)
    counts = note_counts(v, result["tokens"], result["primer_seconds"])
    wanted = requested if requested else list(counts)
    got = sum(counts.get(i, 0) for i in wanted)
    if rate <= 0 or new_seconds <= 0 or got >= rate * new_seconds:
        return None
    if requested:
        each = ", ".join(f"{v.instruments[i].name} {counts.get(i, 0)}" for i in requested)
        played = ", ".join(f"{v.instruments[i].name} {n}" for i, n in sorted(counts.items(), key=lambda kv: -kv[1])
                           if i not in requested)
        return (f"only {got} new note{'s' * (got != 1)} on the requested instruments in {new_seconds:.1f} s "
                f"({each}{f'; it played {played} instead' if played else ''}), under {rate:g} a second")
    return f"only {got} new note{'s' * (got != 1)} in {new_seconds:.1f} s, under {rate:g} a second"


def run_generate(args: argparse.Namespace) -> int:
    problem = _check_arguments(args)
    if problem:
        return _error(problem)
    import torch
    from transformers import pipeline

    from .generation import GenerationInterrupted
    from .logits_processors import resolve_instruments
    from .pipeline_musenet import TASK, load_model, register_pipeline, resolve_threads, tokenizer_for_model

    model_path = Path(args.model) if args.model else bundled_checkpoint()
    if not model_path.is_dir():
        if args.model:
            return _error(f"model folder {model_path} not found")
        return _error(f"no --model given and the bundled checkpoint {model_path} is not there: "
                      "pass --model PATH (a folder written by save_pretrained, e.g. by `musenet train`)")
    if args.primer and not Path(args.primer).is_file():
        return _error(f"primer {args.primer} not found")
    try:
        threads = resolve_threads(args.threads) or DEFAULT_THREADS
    except ValueError as err:
        return _error(str(err))
    torch.set_num_threads(threads)
    register_pipeline()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = load_model(model_path, device)
    except (FileNotFoundError, ImportError) as err:
        return _error(str(err))
    tokenizer = tokenizer_for_model(model)
    v = tokenizer.vocabulary
    try:
        requested = resolve_instruments(v, args.instruments) if args.instruments else None
    except ValueError as err:
        return _error(str(err))
    steering = args.steering or "auto"  # the pipeline's: soft toward the named or the usual instruments
    pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device(device))
    composer = args.composer.split("+") if args.composer and "+" in args.composer else args.composer
    if args.temperature == 0:
        print("temperature 0: greedy decoding (the most likely token every step; all samples alike)")
    if args.seconds > MAX_SECONDS:
        first = composer[0] if isinstance(composer, list) else composer
        guided = composer is not None and pipe.guidance_settings(
            {"guidance": args.guidance, "guidance_against": args.guidance_against}, first)[0] != 1.0
        slow, fast = (args.seconds / r * (GUIDED_WORK if guided else 1.0) for r in MUSIC_PER_WALL_SECOND)
        print(f"a long piece: expect about {_duration(fast)} to {_duration(slow)} on a 2-core CPU; "
              "Ctrl-C writes what is done so far")
    started = time.time()
    interrupted = False
    try:
        results = pipe(composer=composer, instruments=args.instruments, primer=args.primer,
                       primer_seconds=args.primer_seconds, primer_notes=args.primer_notes, seconds=args.seconds,
                       steering=steering, strength=args.strength, temperature=args.temperature,
                       top_p=args.top_p, num_samples=args.samples, rerank=args.rerank, seed=args.seed,
                       max_polyphony=args.max_polyphony, progress=not args.no_progress, threads=threads,
                       guidance=args.guidance, guidance_against=args.guidance_against,
                       min_voices=args.min_voices, max_note_seconds=args.max_note_seconds)
    except (KeyError, ValueError) as err:  # unknown composer/instrument, bad lengths
        return _error(str(err.args[0]) if err.args else str(err))
    except GenerationInterrupted as err:
        results, interrupted = err.results, True
    except KeyboardInterrupt:
        print("musenet generate: interrupted (Ctrl-C) outside a generation step: no file written", file=sys.stderr)
        return EXIT_INTERRUPTED
    elapsed = time.time() - started

    sparse = _write_pieces(args, results, v, requested, interrupted)
    if interrupted:
        print(f"interrupted (Ctrl-C) after {elapsed:.1f} s: wrote the {len(results)} piece(s) as far as they got, "
              "every sounding note ended there", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"generated {len(results)} piece(s) in {elapsed:.1f} s")
    code = _render(args, results[0], tokenizer)
    if sparse:
        _report_sparse(args, sparse, requested, steering)
        code = EXIT_SPARSE
    return code


def _render(args: argparse.Namespace, best: dict[str, Any], tokenizer: Any) -> int:
    """The best piece's piano roll and WAV when asked for; 1 when the WAV could not be made."""
    from .render import AudioRenderError, render_pianoroll, render_wav

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


def _write_pieces(args: argparse.Namespace, results: list[dict[str, Any]], v: Any, requested: list[int] | None,
                  interrupted: bool) -> list[str]:
    """Save each piece (the first to ``-o``, the others numbered beside it) and print a line about
    it; returns ``path: why`` for the pieces too sparse for what was asked."""
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sparse = []
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
        why = None if interrupted else sparse_report(v, r, requested, args.min_note_rate)
        if why:
            sparse.append(f"{path}: {why}")
    return sparse


def _report_sparse(args: argparse.Namespace, sparse: list[str], requested: list[int] | None, steering: str) -> None:
    """The error for pieces that did not make the music asked for, with what to try instead."""
    names = args.instruments or "any instrument"
    tips = ["other instruments (the 'played instead' ones come easily to this model)" if requested else None,
            "--steering hard, or soft with a higher --strength" if requested and steering != "hard" else None,
            "another composer/style, one the model trained on (`musenet list"
            + (f" --model {args.model}" if args.model else "") + "`)",
            "another --seed"]
    print("musenet generate: error: the model did not make the music asked for ("
          f"{args.composer or 'no composer'}, {names}):\n  " + "\n  ".join(sparse)
          + "\n  the files are written for inspection; try " + "; ".join(t for t in tips if t)
          + " (--min-note-rate 0 accepts sparse pieces)", file=sys.stderr)


# ------------------------------------------------------------------------------------- musenet list
def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=f"checkpoint or LoRA adapter folder (default: the bundled checkpoints/{BUNDLED})")


def run_list(args: argparse.Namespace) -> int:
    import json
    from types import SimpleNamespace

    from .pipeline_musenet import adapter_base_path, tokenizer_for_model, trained_labels
    from .tokenization_musenet import VOCAB_FILE, MuseNetTokenizer
    from .vocabulary import GROUPS, style_token

    path = Path(args.model) if args.model else bundled_checkpoint()
    config: dict = {}
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            try:
                path = adapter_base_path(path)
            except FileNotFoundError as err:
                print(f"musenet list: error: {err}", file=sys.stderr)
                return 2
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
        if (path / VOCAB_FILE).is_file():
            tok = MuseNetTokenizer.from_pretrained(str(path))
        else:
            cfg = SimpleNamespace(vocab_size=config.get("vocab_size", 0))
            tok = tokenizer_for_model(SimpleNamespace(name_or_path=str(path), config=cfg))
        print(f"model {path} ({tok.vocabulary.config.preset} vocabulary)")
    elif args.model:
        print(f"musenet list: error: model folder {path} not found", file=sys.stderr)
        return 2
    else:
        tok = MuseNetTokenizer.from_preset("musenet")
        print(f"no bundled checkpoint at {path}: the musenet preset's names")
    v = tok.vocabulary

    def block(title: str, items: list[str]) -> None:
        """The items comma-separated, wrapped at 100 columns between items, never inside one."""
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

    coverage = config.get("training_coverage")
    trained = trained_labels(coverage)
    if trained:
        tokens = set(v.composers)
        block(f"trained on ({len(trained)} labels, pieces each; the names it knows best)",
              [f"{lb} {n}" + ("" if style_token(lb, -1) in tokens else " (no token of its own)")
               for lb, n in trained.items()])
    elif path.is_dir():
        print("\ntrained on: not recorded (this checkpoint's config has no training_coverage)")
    block(f"composers/styles ({len(v.composers)}; --composer, any case)", v.composers)
    block("instruments (--instruments, any case; group in brackets)",
          [f"{i.name} [{i.group}]" for i in v.instruments])
    block("groups (--instruments; each stands for its instruments)",
          [f"{g} = {'+'.join(v.instruments[i].name for i in v.instruments_for_groups([g])) or '-'}" for g in GROUPS])
    return 0


__all__ = ["add_generate_arguments", "run_generate", "add_list_arguments", "run_list", "bundled_checkpoint",
           "note_counts", "sparse_report"]
