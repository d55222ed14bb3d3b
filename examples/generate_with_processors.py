"""generate() the Transformers way: a MuseNet prompt, the package's logits processors, `model.generate()`.

    python examples/generate_with_processors.py --composer irish --instruments violin --seconds 20 -o violin.mid

The pipeline (`pipeline("musenet-generation")`, `musenet generate`) does this and more: pieces past the
model's context, composer guidance, each label's own settings, the critic and the check of every piece.
Here each step is in sight:

1. `build_prompt` makes the conditioning prefix `[composer] [instrumentation] start` (with `primer=`,
   a MIDI file's opening follows it).
2. The processors share one `NoteStateTracker`, the musical state of each row, computed once a step:
   `InstrumentSteeringLogitsProcessor(vocabulary, instruments, mode, strength)` chooses the instrument
   of each note-on ("hard": only those; "soft": `e**strength` times likelier), `MusicGrammarLogitsProcessor`
   keeps the tokens decodable (no note-off of a silent note, a first note within 2 s, `end` only when no
   note sounds) and `TargetLengthLogitsProcessor` ends the piece near `--seconds`.
   `musenet_hf.default_logits_processors(vocabulary, seconds, instruments, steering)` builds the same list.
3. `model.generate(logits_processor=...)` samples, within the model's context; the tokenizer writes MIDI.
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers import AutoModelForCausalLM, LogitsProcessorList

import musenet_hf
from musenet_hf import (
    InstrumentSteeringLogitsProcessor,
    MuseNetTokenizer,
    MusicGrammarLogitsProcessor,
    NoteStateTracker,
    TargetLengthLogitsProcessor,
    build_prompt,
)
from musenet_hf.defaults import DEFAULT_STEERING_STRENGTH


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(musenet_hf.bundled_checkpoint()), help="checkpoint folder (default: the bundled one)")
    p.add_argument("--composer", default="irish")
    p.add_argument("--instruments", default="violin", help="comma-separated instruments or groups")
    p.add_argument("--steering", choices=("soft", "hard"), default="hard")
    p.add_argument("--strength", type=float, default=DEFAULT_STEERING_STRENGTH)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="generated.mid")
    args = p.parse_args()
    torch.set_num_threads(1)  # one thread: faster than one per core on a busy CPU

    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tok = MuseNetTokenizer.from_pretrained(args.model)
    v = tok.vocabulary
    instruments = args.instruments.split(",")
    prompt = build_prompt(tok, composer=args.composer, instruments=instruments)
    print("prompt:", tok.decode(prompt))
    tracker = NoteStateTracker(v)  # shared: the state is computed once a step for all three
    processors = LogitsProcessorList([
        InstrumentSteeringLogitsProcessor(v, instruments, mode=args.steering, strength=args.strength),
        MusicGrammarLogitsProcessor(v, tracker=tracker),
        TargetLengthLogitsProcessor(v, args.seconds, tracker=tracker),
    ])
    torch.manual_seed(args.seed)
    room = model.config.max_position_embeddings - len(prompt)  # plain generate() stops at the context
    out = model.generate(torch.tensor([prompt]), logits_processor=processors, do_sample=True, top_p=0.95, top_k=0,
                         max_new_tokens=room, pad_token_id=v.pad_id)
    ids = out[0].tolist()
    tok.decode_to_midi(ids).save(args.output)
    print(f"{args.output}: {v.seconds(ids):.1f} s, {len(tok.decode_to_notes(ids))} notes, {len(ids)} tokens"
          + ("" if v.end_id in ids else " (the context ran out before the end: `musenet generate` goes on past it)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
