"""``musenet generate``: write a piece as MIDI, and optionally WAV and a piano-roll PNG.

Example::

    musenet generate --composer bach --instruments piano,violin --seconds 240 \\
        --primer opening.mid --primer-seconds 10 --samples 4 --rerank --steering hard \\
        --seed 0 -o out.mid --wav out.wav --pianoroll out.png

Without ``--model`` the bundled checkpoint ``checkpoints/musenet-small-music21`` of the
repository is used. With ``--samples N`` the first (the best with ``--rerank``) goes to ``-o`` and the others to ``NAME-2.mid``, ``NAME-3.mid``, ...; the WAV and PNG show the
first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BUNDLED = "musenet-small-music21"


def bundled_checkpoint() -> Path:
    """The repository's bundled checkpoint, ``checkpoints/musenet-small-music21`` (the caller
    reports it missing when a checkout lacks it)."""
    import musenet_hf

    return Path(musenet_hf.__file__).resolve().parents[2] / "checkpoints" / BUNDLED


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", help=f"checkpoint folder (default: the bundled checkpoints/{BUNDLED})")
    p.add_argument("--composer", help="composer/style token (bach); two joined by '+' blend them (bach+mozart)")
    p.add_argument("--instruments", help="comma-separated instruments or groups (piano,violin or piano,strings)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the piece (default 30)")
    p.add_argument("--primer", help="a MIDI file whose opening starts the piece")
    p.add_argument("--primer-seconds", type=float, help="keep the primer's first N seconds")
    p.add_argument("--primer-notes", type=int, help="or its first N notes")
    p.add_argument("--samples", type=int, default=1, help="pieces to generate (one batch)")
    p.add_argument("--rerank", action="store_true", help="order the samples by the critic head's score")
    p.add_argument("--steering", choices=("soft", "hard"), help="push (soft) or restrict (hard) notes to --instruments")
    p.add_argument("--strength", type=float, default=3.0, help="soft steering bias in logits (default 3)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-polyphony", type=int, help="most notes sounding at once")
    p.add_argument("--seed", type=int, help="random seed (same seed, same piece)")
    p.add_argument("-o", "--output", default="out.mid", help="MIDI file to write (default out.mid)")
    p.add_argument("--wav", help="also render a WAV file with FluidSynth")
    p.add_argument("--soundfont", help="General MIDI .sf2 for --wav (default: the system's)")
    p.add_argument("--pianoroll", help="also draw a piano-roll PNG")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(message: str, code: int = 2) -> int:
    print(f"musenet generate: error: {message}", file=sys.stderr)
    return code


def run_generate(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, pipeline

    from .pipeline_musenet import TASK, register_pipeline, tokenizer_for_model
    from .render import AudioRenderError, render_pianoroll, render_wav

    model_path = Path(args.model) if args.model else bundled_checkpoint()
    if not model_path.is_dir():
        if args.model:
            return _error(f"model folder {model_path} not found")
        return _error(f"no --model given and the bundled checkpoint {model_path} is not there: "
                      "pass --model PATH (a folder written by save_pretrained, e.g. by `musenet train`)")
    if args.primer and not Path(args.primer).is_file():
        return _error(f"primer {args.primer} not found")
    register_pipeline()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
    tokenizer = tokenizer_for_model(model)
    pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device(device))
    composer = args.composer.split("+") if args.composer and "+" in args.composer else args.composer
    started = time.time()
    try:
        results = pipe(composer=composer, instruments=args.instruments, primer=args.primer,
                       primer_seconds=args.primer_seconds, primer_notes=args.primer_notes, seconds=args.seconds,
                       steering=args.steering, strength=args.strength, temperature=args.temperature,
                       top_p=args.top_p, num_samples=args.samples, rerank=args.rerank, seed=args.seed,
                       max_polyphony=args.max_polyphony, progress=not args.no_progress)
    except (KeyError, ValueError) as err:  # unknown composer/instrument, bad lengths
        return _error(str(err.args[0]) if err.args else str(err))
    elapsed = time.time() - started

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    for k, r in enumerate(results):
        path = out if k == 0 else out.with_name(f"{out.stem}-{k + 1}{out.suffix or '.mid'}")
        r["midi"].save(str(path))
        print(f"{path}: {r['seconds']:.1f} s, {len(r['tokens'])} tokens, critic {r['critic_score']:+.3f}"
              f"{'' if r['finished'] else ' (stopped before end)'}")
    print(f"generated {len(results)} piece(s) in {elapsed:.1f} s")
    best = results[0]
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


__all__ = ["add_generate_arguments", "run_generate", "bundled_checkpoint"]
