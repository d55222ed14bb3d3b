"""Does a model close the notes it strikes? The note-closure probe on any checkpoint, no data needed.

Plain ``model.generate()`` with no logits processors (no grammar, no steering), pure sampling,
``--tokens`` new tokens after each prompt's prefix; then count note-ons, note-offs, note-offs of
notes never struck ("orphans") and notes left sounding. A model that learned the music closes
about as many notes as it strikes and never releases a silent note::

    python examples/probe_notes.py --model checkpoints/musenet-small-music21 \
        --probe bach:piano palestrina:piano irish:violin bach:violin,cello --seeds 0 1

``LABEL`` alone (``bach``) sends no instrumentation token; ``:piano`` sends no composer.
``musenet evaluate --sections probe`` runs the same probe beside the other measurements.
"""

from __future__ import annotations

import argparse

import torch

import musenet_hf  # noqa: F401  (registers the musenet classes)
from musenet_hf.evaluation.measurements import markdown_report, probe_table
from musenet_hf.evaluation.musical_statistics import parse_probe_request


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a MuseNet checkpoint folder")
    ap.add_argument("--probe", nargs="+", required=True, metavar="LABEL[:INSTRUMENTS]")
    ap.add_argument("--tokens", type=int, default=300, help="new tokens per prompt (default 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--no-early-end", action="store_true",
                    help="hold back `end` until all --tokens are sampled (min_new_tokens; no other token is touched)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    from musenet_hf.loading import tokenizer_for_model

    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = tokenizer_for_model(model)
    requests = [parse_probe_request(r) for r in args.probe]
    for seed in args.seeds:
        rows = probe_table(model, tokenizer, requests, new_tokens=args.tokens, seed=seed, no_early_end=args.no_early_end)
        print(markdown_report({"probe": {"new_tokens": args.tokens, "seed": seed, "rows": rows,
                                         "no_early_end": args.no_early_end}}), flush=True)


if __name__ == "__main__":
    main()
