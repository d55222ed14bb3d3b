"""Listening proxies for a checkpoint: what a new user's first prompts sound like, in numbers and
piano rolls, next to held-out real pieces of the same label.

Three checks, each a table (printed, and saved with everything else in ``OUT/listening.json``):

* **prompts**: for each ``LABEL[:INSTRUMENTS]`` (no instruments: the label's usual
  instrumentation in the training data) and each seed, one piece of ``--seconds`` with the CLI's
  defaults (soft steering on named instruments, temperature 1, top-p 0.95, its composer guidance
  unless ``--guidance`` says otherwise); MIDI and piano roll
  written to ``OUT``. Per piece: notes, share of notes over 4 s, mean notes sounding at once,
  median note length, notes a second, against the real held-out pieces of the label (their
  first ``--seconds``). ``ok`` means fewer than 2% of notes over 4 s (or no more than the real
  pieces have) and notes at once within 30% of the real pieces.
* **primer** (``--primer-labels``): the first 10 s of a held-out real piece of each label (one at
  least 40 s long) continued by 30 s; the continuation's note length, notes a second and notes at
  once against the real piece's own first 40 s.
* **steering** (``--steer-all``): hard steering onto each of the ten instruments (irish, 15 s):
  notes per piece, and the share on the instrument.
* **openings** (``--openings N``): for each prompt, ``N`` openings sampled with plain
  ``generate()`` (top-p 0.95, no processors, 8 tokens) from the prefix alone: notes struck before the first
  wait. Real chorales open with 4; a model that opens a chorale with one note plays it as one line.

Example (what the model card's "listening" figures come from)::

    python examples/listening_check.py --model checkpoints/musenet-small-music21 \\
        --config configs/train/small-music21.yaml --out runs/listen \\
        --prompts bach palestrina irish folk scottish trecento \\
                  irish:violin bach:strings folk:flute palestrina:clarinet \\
        --seeds 0 1 --primer-labels bach irish palestrina scottish --steer-all
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

import musenet_hf  # noqa: F401  (registers the musenet classes)
from musenet_hf.cli.cli_evaluate import usual_instruments
from musenet_hf.cli.cli_generate import add_generate_arguments
from musenet_hf.evaluation.musical_statistics import clip_notes, parse_probe_request, piece_statistics, summarize
from musenet_hf.midi.render import render_pianoroll
from musenet_hf.tokenizer.vocabulary import MUSENET_INSTRUMENT_NAMES

COLUMNS = ("notes", "long_note_share", "polyphony_mean", "note_length_median", "notes_per_second")


def cli_defaults() -> argparse.Namespace:
    """``musenet generate``'s defaults, read from its own argument parser."""
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    return parser.parse_args([])


def generate(pipe: Any, defaults: argparse.Namespace, **request: Any) -> dict[str, Any]:
    """One piece as ``musenet generate`` makes it (its sampling defaults), ``request`` on top; without
    ``steering`` the pipeline's own default applies, as in the CLI (soft when instruments are named)."""
    return pipe(strength=defaults.strength, temperature=defaults.temperature, top_p=defaults.top_p,
                guidance=defaults.guidance, guidance_against=defaults.guidance_against,
                num_samples=1, progress=False, **request)[0]


def stats_row(stats: dict[str, Any]) -> dict[str, float]:
    return {k: float(stats[k]) for k in COLUMNS}


def judge(gen: dict[str, float], real: dict[str, float]) -> dict[str, Any]:
    """The acceptance rule of a prompt: short notes, and the real pieces' density of voices."""
    long_ok = gen["long_note_share"] < 0.02 or gen["long_note_share"] <= real["long_note_share"]
    ratio = gen["polyphony_mean"] / real["polyphony_mean"] if real["polyphony_mean"] else float("nan")
    return {"long_ok": bool(long_ok), "at_once_ratio": ratio, "ok": bool(long_ok and abs(ratio - 1) <= 0.3)}


def check_prompts(pipe, tokenizer, defaults, requests, seeds, seconds, real_by_label, usual, out: Path) -> list[dict]:
    rows = []
    for text in requests:
        label, instruments = parse_probe_request(text)
        asked = instruments or usual.get(label)
        real = real_by_label.get(label)
        for seed in seeds:
            res = generate(pipe, defaults, composer=label, instruments=asked, seconds=seconds, seed=seed)
            notes = tokenizer.decode_to_notes(res["tokens"])
            name = f"{label}-{(instruments or 'usual').replace(',', '+')}-{seed}"
            res["midi"].save(out / f"{name}.mid")
            render_pianoroll(notes, out / f"{name}.png", tokenizer.vocabulary, title=f"{label}, {asked}, seed {seed}")
            stats = piece_statistics(notes, tokenizer.vocabulary)
            row = {"prompt": text, "instruments": asked, "seed": seed, "file": f"{name}.mid",
                   **stats_row(stats), "on_instruments": stats["instruments"]}
            if real is not None:
                row.update(judge(row, real))
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("prompt", "seed", "notes", "long_note_share", "polyphony_mean",
                                                  "ok") if k in row}), flush=True)
    return rows


def check_primers(pipe, tokenizer, defaults, labels, held, root: Path, out: Path, primer_s=10.0,
                  new_s=30.0) -> list[dict]:
    """Each label's first held-out piece of at least ``primer_s + new_s`` seconds: its own MIDI file
    opens the piece for ``primer_s``, the model adds ``new_s``."""
    rows = []
    for label in labels:
        candidates = [(f, n) for lb, f, n in held if lb == label and n and max(x.end for x in n) >= primer_s + new_s]
        if not candidates:
            print(f"primer {label}: no held-out piece of {primer_s + new_s:.0f} s", flush=True)
            continue
        file, notes = candidates[0]
        res = generate(pipe, defaults, composer=label, primer=str(root / file), primer_seconds=primer_s,
                       seconds=new_s, seed=0)
        gen_notes = tokenizer.decode_to_notes(res["tokens"])
        res["midi"].save(out / f"primer-{label}.mid")
        render_pianoroll(gen_notes, out / f"primer-{label}.png", tokenizer.vocabulary,
                         title=f"{label}: {primer_s:.0f} s of {Path(file).name} + {new_s:.0f} s")
        cut = res["primer_seconds"]
        continuation = [replace(x, start=x.start - cut, end=x.end - cut) for x in gen_notes if x.start >= cut]
        row = {"label": label, "file": file,
               "continuation": stats_row(piece_statistics(continuation, tokenizer.vocabulary)),
               "real": stats_row(piece_statistics(clip_notes(notes, primer_s + new_s), tokenizer.vocabulary))}
        row["relative"] = {k: row["continuation"][k] / row["real"][k] - 1 if row["real"][k] else float("nan")
                           for k in ("note_length_median", "notes_per_second", "polyphony_mean")}
        row["ok"] = bool(all(abs(row["relative"][k]) <= 0.3 for k in ("note_length_median", "notes_per_second")))
        rows.append(row)
        print(json.dumps({"primer": label, **{k: round(v, 3) for k, v in row["relative"].items()}, "ok": row["ok"]}),
              flush=True)
    return rows


def _percent_or_unpitched(share: float) -> str:
    """A long-note share as a percentage; drums have no pitched notes, so their share is NaN."""
    return "n/a (unpitched)" if math.isnan(share) else f"{100 * share:.1f}%"


def check_steering(pipe, tokenizer, defaults, out: Path, label="irish", seconds=15.0) -> list[dict]:
    rows = []
    for inst in MUSENET_INSTRUMENT_NAMES:
        res = generate(pipe, defaults, composer=label, instruments=inst, steering="hard", seconds=seconds, seed=0)
        notes = tokenizer.decode_to_notes(res["tokens"])
        res["midi"].save(out / f"steer-{inst}.mid")
        stats = piece_statistics(notes, tokenizer.vocabulary)
        rows.append({"instrument": inst, "notes": len(notes), "share": stats["instruments"].get(inst, 0.0),
                     "long_note_share": stats["long_note_share"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def check_openings(model, tokenizer, requests, usual, samples: int, seed: int = 0) -> list[dict]:
    """Notes struck before the first wait, over ``samples`` openings of each request."""
    from musenet_hf.generation.generate import build_prompt

    v = tokenizer.vocabulary
    rows = []
    for text in requests:
        label, instruments = parse_probe_request(text)
        prompt = torch.tensor([build_prompt(tokenizer, composer=label, instruments=instruments or usual.get(label))] * samples)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_p=0.95,
                                 max_new_tokens=8, pad_token_id=v.pad_id)
        counts = []
        for row in out[:, prompt.shape[1]:].tolist():
            n = 0
            for t in row:
                if v.is_wait[t] and n:
                    break
                n += int(v.is_note_on[t])
            counts.append(n)
        rows.append({"prompt": text, "mean_notes": sum(counts) / samples, "three_or_more": sum(c >= 3 for c in counts),
                     "samples": samples})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def label_settings(pipe: Any, asked: dict[str, Any], label: str) -> dict[str, Any]:
    """The sampling settings a prompt of ``label`` gets, on its own instruments and re-voiced."""
    return {kind: asdict(pipe.sampling_settings(label, revoiced, **asked))
            for kind, revoiced in (("own", False), ("revoiced", True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a MuseNet checkpoint folder")
    ap.add_argument("--config", required=True, help="the training config whose data and validation split to use")
    ap.add_argument("--data-dir", help="override the config's data_dir")
    ap.add_argument("--out", default="runs/listen", help="folder for the pieces, piano rolls and listening.json")
    ap.add_argument("--prompts", nargs="*", default=[], metavar="LABEL[:INSTRUMENTS]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per prompt piece (default 20)")
    ap.add_argument("--primer-labels", nargs="*", default=[], metavar="LABEL")
    ap.add_argument("--primer-seconds", type=float, default=10.0, help="seconds of the real piece kept (default 10)")
    ap.add_argument("--continue-seconds", type=float, default=30.0, help="seconds the model adds (default 30)")
    ap.add_argument("--steer-all", action="store_true", help="hard steering onto each of the ten instruments")
    ap.add_argument("--openings", type=int, default=0, metavar="N", help="N sampled openings per prompt (default 0: none)")
    ap.add_argument("--guidance", type=float, help="composer guidance scale (default: musenet generate's)")
    ap.add_argument("--guidance-against", metavar="LABEL",
                    help="the label guidance steers away from, or 'none' (default: musenet generate's)")
    ap.add_argument("--top-p", type=float, help="nucleus sampling's top-p (default: musenet generate's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, pipeline

    from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline
    from musenet_hf.loading import tokenizer_for_model
    from musenet_hf.training.training_config import TrainConfig, load_data

    register_pipeline()
    cfg = TrainConfig.from_yaml(args.config, {"data_dir": args.data_dir} if args.data_dir else None)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = tokenizer_for_model(model)
    pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device("cpu"))
    enc = load_data(cfg, tokenizer)
    usual = usual_instruments(tokenizer, enc.dataset["train"])
    rows = enc.dataset["validation"].select_columns(["composer", "file", "body"]).to_dict()
    held = [(c, f, tokenizer.decode_to_notes(b)) for c, f, b in zip(rows["composer"], rows["file"], rows["body"]) if c]
    real_by_label: dict[str, dict[str, float]] = {}
    for label in {parse_probe_request(p)[0] for p in args.prompts}:
        real = [piece_statistics(clip_notes(n, args.seconds), tokenizer.vocabulary) for c, _, n in held if c == label and n]
        if real:
            real_by_label[label] = {**stats_row(summarize(real)), "pieces": len(real)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    defaults = cli_defaults()
    if args.guidance is not None:
        defaults.guidance = args.guidance
    if args.guidance_against is not None:
        defaults.guidance_against = args.guidance_against
    if args.top_p is not None:
        defaults.top_p = args.top_p
    asked = {"guidance": defaults.guidance, "guidance_against": defaults.guidance_against}
    asked = {k: v for k, v in asked.items() if v is not None}
    unlabelled = pipe.sampling_settings(None, **asked)
    guidance, against = unlabelled.guidance, unlabelled.guidance_against
    labels = {parse_probe_request(p)[0] for p in args.prompts} - {None}
    report: dict[str, Any] = {"model": args.model, "seconds": args.seconds, "guidance": guidance, "against": against,
                              "sampling_by_label": {c: label_settings(pipe, asked, c) for c in sorted(labels)},
                              "real": real_by_label}
    report["prompts"] = check_prompts(pipe, tokenizer, defaults, args.prompts, args.seeds, args.seconds,
                                      real_by_label, usual, out)
    if args.primer_labels:
        report["primer"] = check_primers(pipe, tokenizer, defaults, args.primer_labels, held, Path(cfg.data_dir), out,
                                         args.primer_seconds, args.continue_seconds)
    if args.steer_all:
        report["steering"] = check_steering(pipe, tokenizer, defaults, out)
    if args.openings:
        report["openings"] = check_openings(model, tokenizer, args.prompts, usual, args.openings)
    (out / "listening.json").write_text(json.dumps(report, indent=1, default=float) + "\n", "utf-8")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The three checks as Markdown tables."""
    lines = [f"Prompts ({report['seconds']:.0f} s each, CLI defaults):", "",
             "| prompt | seed | notes | over 4 s | at once (real) | median s (real) | notes/s (real) | ok |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["prompts"]:
        real = report["real"].get(parse_probe_request(r["prompt"])[0], {})
        lines.append(f"| {r['prompt']} | {r['seed']} | {r['notes']:.0f} | {100 * r['long_note_share']:.1f}% | "
                     f"{r['polyphony_mean']:.2f} ({real.get('polyphony_mean', float('nan')):.2f}) | "
                     f"{r['note_length_median']:.2f} ({real.get('note_length_median', float('nan')):.2f}) | "
                     f"{r['notes_per_second']:.2f} ({real.get('notes_per_second', float('nan')):.2f}) | "
                     f"{'yes' if r.get('ok') else 'no'} |")
    ok = [r.get("ok", False) for r in report["prompts"]]
    if ok:
        lines += ["", f"{sum(ok)} of {len(ok)} prompts ok."]
    if report.get("primer"):
        lines += ["", "Primer (the opening of a held-out piece, continued), the continuation against the real piece:", "",
                  "| label | piece | median s | notes/s | at once | ok |", "|---|---|---:|---:|---:|---|"]
        for r in report["primer"]:
            c, p = r["continuation"], r["real"]
            lines.append(f"| {r['label']} | {Path(r['file']).name} | {c['note_length_median']:.2f} / "
                         f"{p['note_length_median']:.2f} | {c['notes_per_second']:.2f} / {p['notes_per_second']:.2f} | "
                         f"{c['polyphony_mean']:.2f} / {p['polyphony_mean']:.2f} | {'yes' if r['ok'] else 'no'} |")
    if report.get("steering"):
        lines += ["", "Hard steering (irish, 15 s):", "", "| instrument | notes | on it | over 4 s |", "|---|---:|---:|---:|"]
        lines += [f"| {r['instrument']} | {r['notes']} | {100 * r['share']:.0f}% | "
                  f"{_percent_or_unpitched(r['long_note_share'])} |" for r in report["steering"]]
    if report.get("openings"):
        lines += ["", "Openings (plain generate(), notes struck before the first wait):", "",
                  "| prompt | mean notes | samples with 3 or more |", "|---|---:|---:|"]
        lines += [f"| {r['prompt']} | {r['mean_notes']:.2f} | {r['three_or_more']} of {r['samples']} |"
                  for r in report["openings"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
