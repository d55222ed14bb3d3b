"""Fine-tune a MuseNet checkpoint on your own MIDI folder with `transformers.Trainer`.

    python examples/finetune_trainer.py --checkpoint runs/tiny/final --data my_midis/ --output runs/finetuned

The folder is searched recursively; sub-folder names (or a metadata.csv with `path,label`
columns) become composer/style labels where the vocabulary knows them. Unreadable files are
reported and skipped. The fine-tuned model and its tokenizer are saved to `<output>/final`, its
config's `training_coverage` saying what it was fine-tuned on (these pieces per label and
instrumentation, and `fine_tuned_from`), so `musenet list` and the untrained-style warnings describe
the new data, not the base model's.

`add_finetune_arguments` and `load_windows` are shared with `finetune_lora.py`, which imports them.
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from musenet_hf.model.modeling_musenet import register_auto_classes
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
from musenet_hf.training.augmentation import AugmentationConfig
from musenet_hf.training.batching import MuseNetCollator
from musenet_hf.training.data import MuseNetWindows, load_midi_folder
from musenet_hf.training.trainer_musenet import MuseNetTrainer
from musenet_hf.training.training_config import training_coverage


def add_finetune_arguments(p: argparse.ArgumentParser, learning_rate: float) -> None:
    """The options both fine-tuning examples take; `learning_rate` is the example's default."""
    p.add_argument("--checkpoint", required=True, help="a folder saved with save_pretrained (model + tokenizer)")
    p.add_argument("--data", required=True, help="a folder of MIDI files")
    p.add_argument("--output", required=True)
    p.add_argument("--context-length", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=learning_rate)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--num-proc", type=int, default=2, help="processes for encoding the MIDI files")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--transpose", type=int, default=5,
                   help="largest transposition in semitones, narrowing to 2 by the end (0 keeps every piece's key)")
    p.add_argument("--stretch", type=float, default=0.05,
                   help="largest time stretch, a fraction (0.05: +-5%%). Right for performed MIDI; use 0 for scores "
                        "exported from notation, whose notes last exact beats at one tempo: stretched, the model "
                        "learns notes a little off those lengths (docs/experiments.md, stage 9)")


def augmentation_from_args(args: argparse.Namespace) -> AugmentationConfig:
    """The training windows' augmentation: `--transpose` and `--stretch`, the rest at its defaults."""
    if args.transpose < 0 or not 0 <= args.stretch < 1:
        raise SystemExit(f"--transpose must be >= 0 and --stretch in [0, 1), got {args.transpose} and {args.stretch}")
    return AugmentationConfig(transpose=args.transpose, transpose_final=min(args.transpose, 2), stretch=args.stretch)


def load_windows(args: argparse.Namespace, tokenizer: MuseNetTokenizer,
                 context: int) -> tuple[MuseNetWindows, MuseNetWindows, dict]:
    """Encode `args.data` (cached in `<output>/data-cache`), print its report, cut (train, validation)
    windows; also what the training pieces cover (`training_coverage`, with `fine_tuned_from`: the
    absolute `--checkpoint`), for the saved config.

    Training windows are random crops with augmentation (:func:`augmentation_from_args`); validation
    takes at most two fixed windows a piece. A small folder may put no file in validation: then it
    evaluates on training pieces.
    """
    enc = load_midi_folder(args.data, tokenizer, validation_fraction=args.validation_fraction,
                           num_proc=args.num_proc, cache_dir=Path(args.output) / "data-cache")
    print(enc.report(show_failed=5))
    augmentation = augmentation_from_args(args)
    train = MuseNetWindows(enc.dataset["train"], tokenizer, context, train=True, augmentation=augmentation)
    val = MuseNetWindows(enc.dataset["validation"], tokenizer, context, train=False, max_windows_per_piece=2)
    if len(val) == 0:
        print("no file fell in the validation split (raise --validation-fraction): evaluating on training pieces")
        val = MuseNetWindows(enc.dataset["train"], tokenizer, context, train=False, max_windows_per_piece=1)
    coverage = training_coverage(enc.dataset["train"], augmentation)
    coverage["fine_tuned_from"] = str(Path(args.checkpoint).expanduser().resolve())
    return train, val, coverage


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_finetune_arguments(p, learning_rate=3e-4)
    p.add_argument("--mixup-alpha", type=float, default=0.0, help="MuseNet's mixup on token embeddings (0 = off)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    register_auto_classes()
    tokenizer = MuseNetTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint)
    context = min(args.context_length, model.config.max_position_embeddings)
    train, val, coverage = load_windows(args, tokenizer, context)
    if hasattr(model.config, "training_coverage"):  # what it learns now, not the base model's data
        model.config.training_coverage = coverage

    out = Path(args.output)
    training_args = TrainingArguments(
        output_dir=str(out), max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=args.max_steps // 10,
        lr_scheduler_type="cosine", weight_decay=0.1, logging_steps=max(1, args.max_steps // 10),
        save_strategy="no", report_to="none", dataloader_num_workers=0, dataloader_pin_memory=False, seed=0,
    )
    trainer = MuseNetTrainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=val,
        data_collator=MuseNetCollator(tokenizer.vocabulary.pad_id), processing_class=tokenizer,
        mixup_alpha=args.mixup_alpha,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    print(f"validation loss: {before:.4f} before, {after:.4f} after fine-tuning")
    trainer.save_model(str(out / "final"))  # the model and, through processing_class, the tokenizer
    print(f"saved to {out / 'final'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
