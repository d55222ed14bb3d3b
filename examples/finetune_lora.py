"""Fine-tune a MuseNet checkpoint with LoRA adapters (PEFT) on a MIDI folder.

    python examples/finetune_lora.py --checkpoint runs/tiny/final --data my_midis/ --output runs/lora

Only the low-rank adapters on the attention and MLP projections (`c_attn`, `c_proj`, `c_fc`)
train; the base weights stay frozen. The adapter (a few hundred kB) is saved to
`<output>/adapter`; load it with `PeftModel.from_pretrained(base_model, "<output>/adapter")`, or
merge it into the base model with `merge_and_unload()`.
"""

import argparse
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, TrainingArguments

from musenet_hf.augmentation import AugmentationConfig
from musenet_hf.data import MuseNetCollator, MuseNetWindows, load_midi_folder
from musenet_hf.modeling_musenet import register_auto_classes
from musenet_hf.tokenization_musenet import MuseNetTokenizer
from musenet_hf.training import MuseNetTrainer

# The model's linear layers: attention `c_attn` (q, k, v) and `c_proj`, MLP `c_fc` and `c_proj`.
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a folder saved with save_pretrained (model + tokenizer)")
    p.add_argument("--data", required=True, help="a folder of MIDI files")
    p.add_argument("--output", required=True)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--context-length", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    register_auto_classes()
    tokenizer = MuseNetTokenizer.from_pretrained(args.checkpoint)
    base = AutoModelForCausalLM.from_pretrained(args.checkpoint)
    model = get_peft_model(base, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS))
    model.print_trainable_parameters()
    context = min(args.context_length, base.config.max_position_embeddings)

    out = Path(args.output)
    enc = load_midi_folder(args.data, tokenizer, validation_fraction=args.validation_fraction,
                           num_proc=args.num_proc, cache_dir=out / "data-cache")
    print(enc.report(show_failed=5))
    train = MuseNetWindows(enc.dataset["train"], tokenizer, context, train=True, augmentation=AugmentationConfig())
    val = MuseNetWindows(enc.dataset["validation"], tokenizer, context, train=False, max_windows_per_piece=2)
    if len(val) == 0:
        print("no file fell in the validation split (raise --validation-fraction): evaluating on training pieces")
        val = MuseNetWindows(enc.dataset["train"], tokenizer, context, train=False, max_windows_per_piece=1)
    training_args = TrainingArguments(
        output_dir=str(out), max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.learning_rate,
        logging_steps=max(1, args.max_steps // 10), save_strategy="no", report_to="none", seed=0,
        dataloader_pin_memory=False,
        remove_unused_columns=False,
    )
    trainer = MuseNetTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=val,
                             data_collator=MuseNetCollator(tokenizer.vocabulary.pad_id), processing_class=tokenizer)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    print(f"validation loss: {before:.4f} before, {after:.4f} after LoRA fine-tuning")
    model.save_pretrained(str(out / "adapter"))
    print(f"saved the adapter to {out / 'adapter'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
