"""The plain GPT-2 baseline: what MuseNet's design is measured against.

:func:`gpt2_config_for` gives a ``transformers.GPT2Config`` of the same depth, width, heads, MLP
width, activation, dropout, vocabulary and context as a :class:`~musenet_hf.MuseNetConfig`, with
none of MuseNet's additions (no time, chord, part or countdown embeddings, full causal attention,
no critic). :class:`GPT2Baseline` is ``GPT2LMHeadModel`` itself, taking (and ignoring) the
per-window inputs the MuseNet training loop passes, so ``musenet train`` with
``architecture: gpt2`` trains it on exactly the same windows, steps and schedule. Its checkpoints
are ordinary GPT-2 checkpoints: ``GPT2LMHeadModel.from_pretrained(path)`` loads them.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from .configuration_musenet import MuseNetConfig

# What the MuseNet loop passes that GPT-2 has no use for.
MUSENET_ONLY_INPUTS = ("piece_seconds", "time_offset_seconds", "critic_labels",
                       "time_ids", "chord_ids", "part_ids", "countdown_ids", "sounding_notes", "composers_seen")


def gpt2_config_for(config: MuseNetConfig, attn_implementation: str = "sdpa") -> GPT2Config:
    """A GPT-2 config with ``config``'s depth, width, heads, MLP, activation, dropout, vocabulary and context."""
    gpt2 = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.max_position_embeddings,
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        activation_function=config.hidden_act,
        resid_pdrop=config.resid_dropout,
        embd_pdrop=config.embd_dropout,
        attn_pdrop=config.attn_dropout,
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=config.tie_word_embeddings,
    )
    gpt2._attn_implementation = attn_implementation
    return gpt2


class GPT2Baseline(GPT2LMHeadModel):
    """``GPT2LMHeadModel`` that accepts the MuseNet loop's extra inputs and drops them.

    It has no critic (``critic is None``) and no structural positions (``structure_ids`` returns
    nothing), so mixup, evaluation and the critic checks of the training loop need no special case.
    """

    critic = None

    def structure_ids(self, input_ids: torch.Tensor, piece_seconds: Any = None,
                      time_offset_seconds: Any = None, last: int | None = None) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, *args: Any, **kwargs: Any):
        for key in MUSENET_ONLY_INPUTS:
            kwargs.pop(key, None)
        return super().forward(*args, **kwargs)


__all__ = ["GPT2Baseline", "MUSENET_ONLY_INPUTS", "gpt2_config_for"]
