"""Checkpoints of the Accelerate loop (:mod:`~musenet_hf.training.loop`): what exact resume needs.

A checkpoint ``<output_dir>/checkpoints/step-NNNNNNN/`` holds accelerate's state (model,
optimizer, the registered scheduler, every random state), each process's critic pool, and
``trainer_state.json`` (the step and the number of processes), written last: a folder without it
was cut off mid-save and is ignored. The data of a step is a function of the step, so these are
all a resumed run needs to repeat the lost steps exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .critic import CriticPool


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (with their trainer_state.json), oldest first."""
    return sorted(p.parent for p in (output_dir / "checkpoints").glob("step-*/trainer_state.json"))


def load_checkpoint(accelerator: Any, path: Path, pool: CriticPool, log_path: Path) -> int:
    """Restore a checkpoint of :func:`save_checkpoint`; drop log lines written after it. Returns its step."""
    accelerator.load_state(str(path))
    state = json.loads((path / "trainer_state.json").read_text("utf-8"))
    step, world = state["step"], accelerator.num_processes
    if state.get("world_size", world) != world:
        accelerator.print(f"warning: resuming a {state['world_size']}-process run with {world}: the data order changes")
    pool_file = path / f"critic_pool_rank{accelerator.process_index}.json"
    if pool_file.is_file():
        pool.load(json.loads(pool_file.read_text("utf-8")))
    if accelerator.is_main_process and log_path.is_file():  # what the interrupted run did after it is redone
        lines = [ln for ln in log_path.read_text("utf-8").splitlines() if json.loads(ln).get("step", 0) <= step]
        log_path.write_text("".join(ln + "\n" for ln in lines), "utf-8")
    accelerator.wait_for_everyone()
    accelerator.print(f"resumed from {path} at step {step}")
    return step


def save_checkpoint(accelerator: Any, out: Path, step: int, world: int, pool: CriticPool, keep: int) -> Path:
    """Model, optimizer, scheduler and random states (accelerate), the critic pool, then
    ``trainer_state.json`` last, so a checkpoint without it is incomplete and ignored."""
    path = out / "checkpoints" / f"step-{step:07d}"
    accelerator.save_state(str(path))
    (path / f"critic_pool_rank{accelerator.process_index}.json").write_text(json.dumps(pool.state()), "utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / "trainer_state.json").write_text(json.dumps({"step": step, "world_size": world}), "utf-8")
        for old in checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


__all__ = ["checkpoints", "load_checkpoint", "save_checkpoint"]
