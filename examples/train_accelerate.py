"""Train MuseNet from scratch with Accelerate: the loop behind `musenet train`.

One process (CPU or one GPU):

    python examples/train_accelerate.py --config configs/train/tiny.yaml --max-steps 300

Data parallel over N GPUs, or over two CPU processes on a machine without GPUs (accelerate then
runs torchrun; `--cpu` instead would start a single process unless MPI is installed):

    accelerate launch --multi_gpu --num_processes 2 examples/train_accelerate.py --config configs/train/tiny.yaml

Kill it at any time and run the same command again: it resumes from the latest checkpoint in
the config's output_dir with the same data order and optimizer state. The run writes
`log.jsonl` (losses, validation loss, bits per second of music) and `final/` (model and
tokenizer, loadable with `from_pretrained`) into output_dir.
"""

import argparse
import sys

from musenet_hf.cli.cli_train import add_train_arguments, run_train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    return run_train(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
