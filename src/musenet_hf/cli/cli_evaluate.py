"""``musenet evaluate`` from the command line: load the model and the training config's data
split, run the sections asked for (the measurements of :mod:`~musenet_hf.evaluation.measurements` and the
critic's held-out AUC), and write ``report.json`` and ``report.md`` after each section.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from ..evaluation.measurements import (
    SECTIONS,
    composer_recognisability,
    compression,
    length_control,
    markdown_report,
    music_statistics,
    probe_table,
    steering_adherence,
    validity,
)
from ..evaluation.musical_statistics import parse_probe_request
from ..loading import load_model, tokenizer_for_model
from ..midi.midi_notes import Note
from ..training.critic import critic_auc_heldout


def _pieces_as_notes(tokenizer: Any, dataset: Any) -> list[tuple[str, list[Note]]]:
    rows = dataset.select_columns(["composer", "body"]).to_dict()
    return [(c, tokenizer.decode_to_notes(b)) for c, b in zip(rows["composer"], rows["body"]) if c]


def usual_instruments(tokenizer: Any, dataset: Any) -> dict[str, str]:
    """composer -> its most common instrumentation token name in ``dataset``."""
    v = tokenizer.vocabulary
    rows = dataset.select_columns(["composer", "prefix"]).to_dict()
    counts: dict[str, Counter] = {}
    for c, prefix in zip(rows["composer"], rows["prefix"]):
        groups = [v.tokens[t] for t in prefix if v.is_instrumentation[t]]
        if c and groups:
            counts.setdefault(c, Counter())[groups[-1]] += 1
    return {c: n.most_common(1)[0][0] for c, n in counts.items()}


def compression_report(model: Any, baselines: Sequence[str], windows: Any, batch_size: int) -> dict[str, Any]:
    """The report's compression section: :func:`compression` of ``model`` and each GPT-2 baseline
    folder on the validation ``windows``, and how much fewer bits per second the first needs
    than the second (``relative``)."""
    from ..model.baseline import GPT2Baseline

    models = {"MuseNet (this model)": model}
    for path in baselines:
        models[f"GPT-2 baseline ({Path(path).parent.name})"] = GPT2Baseline.from_pretrained(path).eval()
    res = compression(models, windows, batch_size=batch_size)
    section = {"models": res, "windows": len(windows), "tokens": next(iter(res.values()))["tokens"],
               "seconds": next(iter(res.values()))["seconds"]}
    if len(res) > 1:
        names = list(res)
        section["relative"] = res[names[0]]["bits_per_second"] / res[names[1]]["bits_per_second"] - 1
    return section


def labels_with_pieces(pieces: Any, min_pieces: int) -> list[str]:
    """The composer tokens with at least ``min_pieces`` of ``pieces`` (a dataset split), sorted."""
    counts = Counter(c for c in pieces.select_columns(["composer"]).to_dict()["composer"] if c)
    return sorted(c for c, n in counts.items() if n >= min_pieces)


def save_report(report: dict[str, Any], out: Path) -> None:
    """Write ``report.json`` and ``report.md`` (the tables) into ``out``; called after each section."""
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n", "utf-8")
    (out / "report.md").write_text(markdown_report(report) + "\n", "utf-8")


def sampling_options(args: argparse.Namespace) -> dict[str, float]:
    """The pipeline options every generated piece is sampled with: those given (guidance, temperature,
    top-p); the others stay the pipeline's defaults."""
    given = {"guidance": args.guidance, "guidance_against": args.guidance_against, "temperature": args.temperature,
             "top_p": args.top_p}
    return {k: v for k, v in given.items() if v is not None}


def run_evaluate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm
    from transformers import pipeline

    from ..generation.pipeline_musenet import TASK, register_pipeline
    from ..training.data import MuseNetWindows
    from ..training.training_config import TrainConfig, load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    sections = set(args.sections) | ({"probe"} if args.probe else set())
    unknown = sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"musenet evaluate: unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    register_pipeline()
    cfg = TrainConfig.from_yaml(args.config, {"data_dir": args.data_dir} if args.data_dir else None)
    model = load_model(args.model)
    tokenizer = tokenizer_for_model(model)
    enc = load_data(cfg, tokenizer)
    report: dict[str, Any] = {"model": str(args.model), "config": str(args.config),
                              "train_pieces": len(enc.dataset["train"]), "validation_pieces": len(enc.dataset["validation"]),
                              "threads": torch.get_num_threads(), "sampling": sampling_options(args)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    windows = MuseNetWindows(enc.dataset["validation"], tokenizer, cfg.context_length, train=False)
    if "compression" in sections:
        report["compression"] = compression_report(model, args.baseline or [], windows, cfg.eval_batch_size)
        print(markdown_report({"compression": report["compression"]}), flush=True)
        save_report(report, out)

    if "critic" in sections and getattr(model, "critic", None) is not None:
        report["critic"] = critic_auc_heldout(model, windows, pieces=args.critic_pieces, seed=args.seed)
        print(markdown_report({"critic": report["critic"]}), flush=True)
        save_report(report, out)
    pipe = pipeline(TASK, model=model, tokenizer=tokenizer, device=torch.device("cpu"), **sampling_options(args))
    generated: dict[str, list[list[int]]] | None = None  # the composer section's pieces, reused by "music"
    if sections & {"composer", "music", "probe"}:
        # the labels the composer classifier uses, each with its usual instrumentation
        usual = usual_instruments(tokenizer, enc.dataset["train"])
        labels = args.composers or labels_with_pieces(enc.dataset["train"], args.min_pieces)
    if sections & {"composer", "music"}:
        held_notes = _pieces_as_notes(tokenizer, enc.dataset["validation"])
    if "composer" in sections:
        train_notes = _pieces_as_notes(tokenizer, enc.dataset["train"])
        res = composer_recognisability(pipe, train_notes, held_notes, {c: usual[c] for c in labels},
                                       pieces_per_composer=args.pieces_per_composer, seconds=args.seconds, seed=args.seed)
        generated = res.pop("generated_ids")
        pieces = [ids for c in res["composers"] for ids in generated[c]]
        report["composer"] = res
        report["validity"] = validity(tokenizer, pieces)
        print(markdown_report({"composer": res, "validity": report["validity"]}), flush=True)
        save_report(report, out)
    if "steering" in sections:
        report["steering"] = steering_adherence(pipe, composer=args.steering_composer, instruments=args.steering_instruments,
                                                pieces=args.steering_pieces, seconds=15.0, seed=args.seed,
                                                strengths=args.steering_strengths)
        print(markdown_report({"steering": report["steering"]}), flush=True)
        save_report(report, out)
    if "length" in sections:
        report["length"] = length_control(pipe, args.lengths, pieces=args.length_pieces, composer="bach",
                                          instruments="piano", seed=args.seed)
        print(markdown_report({"length": report["length"]}), flush=True)
        save_report(report, out)
    if "music" in sections:
        # --no-instruments: the prompt of a user who names none (no instrumentation token)
        report["music"] = music_statistics(pipe, held_notes, {c: None if args.no_instruments else usual[c] for c in labels},
                                           pieces_per_label=args.pieces_per_composer, seconds=args.seconds,
                                           seed=args.seed, generated=None if args.no_instruments else generated)
        report["music"]["instruments"] = "none asked" if args.no_instruments else "each label's usual"
        print(markdown_report({"music": report["music"]}), flush=True)
        save_report(report, out)
    if "probe" in sections:
        requests = [parse_probe_request(r) for r in args.probe] if args.probe else [(c, usual[c]) for c in labels]
        report["probe"] = {"new_tokens": args.probe_tokens, "seed": args.seed,
                           "rows": probe_table(model, tokenizer, requests, new_tokens=args.probe_tokens, seed=args.seed)}
        print(markdown_report({"probe": report["probe"]}), flush=True)
        save_report(report, out)
    tqdm.write(f"wrote {out / 'report.json'} and {out / 'report.md'}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="the MuseNet checkpoint folder to evaluate")
    p.add_argument("--config", required=True, help="the training config whose data and validation split to use")
    p.add_argument("--data-dir", help="override the config's data_dir")
    p.add_argument("--baseline", nargs="*", metavar="PATH", help="GPT-2 baseline checkpoint folder(s) to compare")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), help=f"what to measure (default all: {SECTIONS})")
    p.add_argument("--critic-pieces", type=int, default=64, help="validation pieces for the critic's AUC (default 64)")
    p.add_argument("--composers", nargs="+", help="labels for the composer classifier (default: those with "
                                                  "--min-pieces training pieces)")
    p.add_argument("--min-pieces", type=int, default=40, help="training pieces a label needs (default 40)")
    p.add_argument("--pieces-per-composer", type=int, default=12, help="generated pieces per label (default 12)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the classifier's pieces (default 20)")
    p.add_argument("--steering-composer", default="bach")
    p.add_argument("--steering-instruments", default="violin,cello")
    p.add_argument("--steering-pieces", type=int, default=10)
    p.add_argument("--steering-strengths", type=float, nargs="*", metavar="S",
                   help="also measure soft steering at these strengths (e.g. 3 5 10)")
    p.add_argument("--lengths", type=float, nargs="+", default=[30.0, 60.0, 240.0])
    p.add_argument("--length-pieces", type=int, default=2, help="pieces per length (default 2)")
    p.add_argument("--probe", nargs="+", metavar="LABEL[:INSTRUMENTS]",
                   help="run the note-closure probe (section 'probe') on these prompts, e.g. bach:piano,violin "
                        "mozart (default with --sections probe: each classifier label, its usual instruments)")
    p.add_argument("--no-instruments", action="store_true",
                   help="music section: generate with no instrumentation token (as pipeline(composer=X) does)")
    p.add_argument("--probe-tokens", type=int, default=300,
                   help="tokens sampled per probe prompt, capped by the model's context (default 300)")
    p.add_argument("--guidance", type=float, metavar="SCALE",
                   help="composer guidance scale of every generated piece (default: the pipeline's)")
    p.add_argument("--guidance-against", metavar="LABEL",
                   help="the label guidance steers away from, or 'none' (default: the pipeline's)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the pipeline's)")
    p.add_argument("--top-p", type=float, help="nucleus sampling's top-p (default: the pipeline's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--out", default="runs/eval", help="folder for report.json and report.md")


__all__ = ["add_evaluate_arguments", "compression_report", "run_evaluate", "usual_instruments"]
