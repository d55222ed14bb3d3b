"""The ``transformers.Trainer`` integration: :class:`MuseNetTrainer`, ``Trainer`` with MuseNet's
mixup on token embeddings (``examples/finetune_trainer.py`` uses it). The Accelerate loop behind
``musenet train`` is :mod:`~musenet_hf.training.loop`; both compute the same losses
(:mod:`~musenet_hf.training.training_losses`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import Trainer

from .training_losses import mixup_loss


class MuseNetTrainer(Trainer):
    """``transformers.Trainer`` with MuseNet's mixup on token embeddings.

    Args:
        mixup_alpha: ``lambda ~ Beta(alpha, alpha)`` per training batch; 0 switches mixup off.
        Everything else as ``Trainer``. Windows from :class:`~musenet_hf.training.data.MuseNetWindows`
        get new random offsets every epoch (Trainer calls their ``set_epoch``).
    """

    def __init__(self, *args: Any, mixup_alpha: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mixup_alpha = mixup_alpha
        if self.args.label_names is None:
            # The forward also takes `critic_labels`; Trainer would otherwise wait for both before
            # it reports an evaluation loss.
            self.label_names = ["labels"]
        self._mixup_rng = np.random.default_rng(self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.mixup_alpha > 0 and model.training and inputs["input_ids"].shape[0] > 1:
            lam = float(self._mixup_rng.beta(self.mixup_alpha, self.mixup_alpha))
            loss, _ = mixup_loss(model, inputs, lam)
            return (loss, None) if return_outputs else loss
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


__all__ = ["MuseNetTrainer"]
