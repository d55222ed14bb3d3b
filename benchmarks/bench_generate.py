"""Cost of the generation processors: generate() with steering + grammar + target length vs plain.

Both runs use the same randomly initialised MuseNetForCausalLM, the same prompt, batch and
number of new tokens (no early stop: ``end`` is not an EOS here, and the target length is far
away), sampling with top_k=0, and alternate plain / processed runs so that load from other
processes hits both alike. Reported: tokens/s, seconds of music per wall second, the
processors' overhead from the fastest runs (goal: <= 10%), and the share of wall time spent
inside the processors, timed directly (the number least sensitive to a busy machine).

    python benchmarks/bench_generate.py                      # small config, batch 8, 192 tokens
    python benchmarks/bench_generate.py --config configs/musenet-tiny.json --batch 32
    python benchmarks/bench_generate.py --texture            # with the voice floor and note ceiling too

``--compare-threads`` times the processed run with 1 and with 2 torch threads instead
(alternating), on the machine as it is and, with ``--busy N``, again while N busy-loop processes
compete for the cores: the measurement behind ``musenet generate``'s default of one thread.

    python benchmarks/bench_generate.py --compare-threads --batch 1 --busy 1   # a 1-sample piece, 2-core CPU

``--guidance`` times composer guidance (scale 1.3 against folk, the bundled model's default):
unguided, guided with the processor's own second forward, and guided with both sides in one batch
(``guidance_batch``, what ``generate_long`` and the pipeline use), alternating, each with the same
processors and new tokens; it prints guided/unguided time ratios (issue 33's goal: at most 1.3x).

    python benchmarks/bench_generate.py --guidance --batch 1 --new-tokens 480   # a 20 s piece
    python benchmarks/bench_generate.py --guidance --batch 4 --new-tokens 480   # the demo's 4 candidates
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from musenet_hf.generation.generate import default_logits_processors  # noqa: E402
from musenet_hf.generation.guidance import ComposerGuidanceLogitsProcessor  # noqa: E402
from musenet_hf.model.configuration_musenet import MuseNetConfig  # noqa: E402
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM  # noqa: E402
from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary  # noqa: E402


def build_model(config_path: Path, vocab: MuseNetVocabulary) -> MuseNetForCausalLM:
    cfg = json.loads(config_path.read_text())
    for key in ("model_type", "architectures"):
        cfg.pop(key, None)
    cfg.update(vocab.model_config_kwargs())
    torch.manual_seed(0)
    return MuseNetForCausalLM(MuseNetConfig(**cfg)).eval()


class Timed(LogitsProcessor):
    """Runs a list of processors and adds up the wall time spent in them."""

    def __init__(self, procs):
        self.procs, self.seconds = LogitsProcessorList(procs), 0.0

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        out = self.procs(input_ids, scores)
        self.seconds += time.perf_counter() - start
        return out


def run(model, prompt, gen_config, procs, piece_seconds, **kwargs) -> tuple[float, torch.Tensor]:
    torch.manual_seed(1)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=gen_config,
                             logits_processor=LogitsProcessorList(procs), piece_seconds=piece_seconds, **kwargs)
    return time.perf_counter() - start, out[:, prompt.shape[1]:]


def compare_guidance(model, prompt, gen_config, processors, piece_seconds, vocab, repeats: int) -> None:
    """Unguided, guided by a second forward, guided in one batch: alternating runs, time ratios."""
    times: dict[str, list[float]] = {"unguided": [], "guided, two forwards": [], "guided, one batch": []}
    for _ in range(repeats):
        for name in times:
            procs = list(processors())
            extra = {}
            if name != "unguided":
                guide = ComposerGuidanceLogitsProcessor(model, vocab, 1.3, against="folk")
                procs.insert(0, guide)
                if name == "guided, one batch":
                    extra["guidance_batch"] = guide
            times[name].append(run(model, prompt, gen_config, procs, piece_seconds, **extra)[0])
    tokens = prompt.shape[0] * gen_config.max_new_tokens
    base, base_med = min(times["unguided"]), statistics.median(times["unguided"])
    for name, ts in times.items():
        t, med = min(ts), statistics.median(ts)
        print(f"{name:>22}: {t:7.2f} s fastest, {med:7.2f} s median, {tokens / t:7.1f} tokens/s; "
              f"x{t / base:.2f} of unguided (medians x{med / base_med:.2f})")


def compare_threads(model, prompt, gen_config, processors, piece_seconds, vocab, repeats: int, busy: int) -> None:
    """Processed runs with 1 and 2 threads, alternating; as the machine is, then under ``busy`` competitors."""
    tokens = prompt.shape[0] * gen_config.max_new_tokens
    for label, competitors in [("as is", 0)] + ([(f"{busy} busy process(es)", busy)] if busy else []):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
        try:
            times: dict[int, list[float]] = {1: [], 2: []}
            music = 0.0
            for _ in range(repeats):
                for threads in times:
                    torch.set_num_threads(threads)
                    dt, new = run(model, prompt, gen_config, processors(), piece_seconds)
                    times[threads].append(dt)
                    music = float(vocab.wait_units[new.numpy()].sum()) * vocab.wait_unit_seconds
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        for threads, ts in times.items():
            t, med = min(ts), statistics.median(ts)
            print(f"{label:>20}, {threads} thread(s): {t:7.2f} s fastest, {med:7.2f} s median, "
                  f"{tokens / med:8.1f} tokens/s, {music / med:7.2f} s of music per wall s (median)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "musenet-small.json")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=192)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compare-threads", action="store_true", help="1 against 2 threads instead of plain against processed")
    p.add_argument("--busy", type=int, default=0, help="with --compare-threads: also measure under N busy-loop processes")
    p.add_argument("--guidance", action="store_true",
                   help="time composer guidance: unguided, two forwards a step, one batch (see above)")
    p.add_argument("--texture", action="store_true",
                   help="add the texture rules to the processors (min_voices 2, max_note_seconds 4)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    vocab = MuseNetVocabulary.from_preset("musenet")
    model = build_model(args.config, vocab)
    params = sum(t.numel() for t in model.parameters()) / 1e6
    ids = [vocab.composer_id("bach"), vocab.instrumentation_id(["piano", "violin"]), vocab.start_id]
    prompt = torch.tensor([ids] * args.batch)
    piece_seconds = torch.full((args.batch,), 3600.0, dtype=torch.float64)
    gen_config = GenerationConfig(do_sample=True, top_k=0, max_new_tokens=args.new_tokens, min_new_tokens=0,
                                  eos_token_id=None, pad_token_id=vocab.pad_id)

    def processors():
        texture = {"min_voices": 2, "max_note_seconds": 4.0} if args.texture else {}
        return default_logits_processors(vocab, seconds=3600.0, instruments="piano,violin", steering="hard", **texture)

    print(f"model {args.config.name}: {params:.1f}M parameters, context {model.config.max_position_embeddings}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), cpu")
    print(f"batch {args.batch} x {args.new_tokens} new tokens, {args.repeats} repeats, alternating runs; "
          "times: fastest run (least disturbed by other processes) and median")
    run(model, prompt, gen_config, [], piece_seconds)  # warm-up
    if args.guidance:
        compare_guidance(model, prompt, gen_config, processors, piece_seconds, vocab, args.repeats)
        return 0
    if args.compare_threads:
        compare_threads(model, prompt, gen_config, processors, piece_seconds, vocab, args.repeats, args.busy)
        return 0
    times: dict[str, list[float]] = {"plain": [], "steering+grammar+length": []}
    music: dict[str, float] = {}
    inside = []
    for _ in range(args.repeats):
        for name in times:
            timed = Timed(processors()) if name != "plain" else None
            dt, new = run(model, prompt, gen_config, [timed] if timed else [], piece_seconds)
            times[name].append(dt)
            music[name] = float(vocab.wait_units[new.numpy()].sum()) * vocab.wait_unit_seconds
            if timed:
                inside.append(timed.seconds / dt)
    base = min(times["plain"])
    tokens = args.batch * args.new_tokens
    for name, ts in times.items():
        t, med = min(ts), statistics.median(ts)
        print(f"{name:>24}: {tokens / t:8.1f} tokens/s (median {tokens / med:.1f}), "
              f"{music[name] / t:7.2f} s of music per wall s ({music[name]:.1f} s in {t:.2f} s), "
              f"overhead {100 * (t - base) / base:+.1f}%")
    print(f"time inside the processors: {100 * statistics.median(inside):.1f}% of the processed runs "
          f"(min {100 * min(inside):.1f}%, max {100 * max(inside):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
