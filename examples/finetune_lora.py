"""Fine-tune a MuseNet checkpoint with LoRA adapters (PEFT) on a MIDI folder.

    pip install -e ".[peft]"     # LoRA needs the peft extra
    python examples/finetune_lora.py --checkpoint runs/tiny/final --data my_midis/ --output runs/lora

Only the low-rank adapters on the attention and MLP projections (`c_attn`, `c_proj`, `c_fc`)
train; the base weights stay frozen. The adapter (a few hundred kB) is saved to
`<output>/adapter` and records the base checkpoint's **absolute** path, so it loads from any
working directory and never looks for it on the Hugging Face Hub: `musenet generate --model
<output>/adapter`, `musenet_hf.loading.load_model("<output>/adapter")` (both merge it into
the base model, and say clearly when the base folder has moved), or
`PeftModel.from_pretrained(base_model, "<output>/adapter")`. Beside the adapter,
`training_coverage.json` says what it was fine-tuned on; `load_model` and `musenet list --model
<output>/adapter` take it in place of the base model's. The options and the data loading are
those of `finetune_trainer.py` (same folder, so importable when this file runs as a script).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, TrainingArguments

from musenet_hf.training.batching import MuseNetCollator
from musenet_hf.model.modeling_musenet import register_auto_classes
from musenet_hf.loading import ADAPTER_COVERAGE_FILE
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
from musenet_hf.training.trainer_musenet import MuseNetTrainer

from finetune_trainer import add_finetune_arguments, load_windows  # the sibling example in this folder

# The model's linear layers: attention `c_attn` (q, k, v) and `c_proj`, MLP `c_fc` and `c_proj`.
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_finetune_arguments(p, learning_rate=1e-3)
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha is twice the rank)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    checkpoint = Path(args.checkpoint).expanduser().resolve()  # recorded in the adapter: absolute
    if not (checkpoint / "config.json").is_file():
        p.error(f"--checkpoint {args.checkpoint}: no model folder there (a folder written by save_pretrained)")
    register_auto_classes()
    tokenizer = MuseNetTokenizer.from_pretrained(str(checkpoint))
    base = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True)
    torch.manual_seed(0)  # the adapters' initial weights: same run, same result
    model = get_peft_model(base, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS))
    model.peft_config["default"].base_model_name_or_path = str(checkpoint)
    model.print_trainable_parameters()
    context = min(args.context_length, base.config.max_position_embeddings)
    train, val, coverage = load_windows(args, tokenizer, context)

    out = Path(args.output)
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
    (out / "adapter" / ADAPTER_COVERAGE_FILE).write_text(json.dumps(coverage, indent=1) + "\n", "utf-8")
    print(f"saved the adapter to {out / 'adapter'} (base model: {checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
