"""The key/value cache MuseNet decodes with: Transformers' ``DynamicCache``, grown by doubling.

``DynamicCache`` appends a step's keys and values with ``torch.cat``, which copies the whole cache
every step: at a 2,048-token window that copy is most of a decoding step on a CPU, and it grows with
the batch (composer guidance doubles the rows). :class:`GrowingCache` keeps each layer's keys and
values in a buffer with room to spare, writes a step's tokens into it and hands attention views
of the filled part: the same values, O(new tokens) a step (amortised). Everything else (cropping,
selecting rows, resetting) is ``DynamicCache``'s; a layer whose tensors were replaced that way
starts a new buffer at its next update.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_CAPACITY = 64  # tokens a new buffer holds at least


class GrowingLayer(DynamicLayer):
    """One layer's keys and values, (B, H, T, D) views of buffers that double when full."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def _room_for(self, key_states: torch.Tensor, value_states: torch.Tensor, length: int, need: int) -> None:
        """Buffers that hold ``need`` tokens of ``key_states``' batch and heads, the ``length`` cached kept."""
        bufs = self._buffers
        ours = bufs is not None and length and self.keys.data_ptr() == bufs[0].data_ptr()
        if bufs is not None and bufs[0].shape[0] == key_states.shape[0] and bufs[0].shape[-2] >= need and (
                ours or not length):
            return
        shape = (*key_states.shape[:-2], max(2 * need, MIN_CAPACITY), key_states.shape[-1])
        self._buffers = (key_states.new_empty(shape), value_states.new_empty(shape[:-1] + value_states.shape[-1:]))
        if length:
            self._buffers[0][..., :length, :] = self.keys
            self._buffers[1][..., :length, :] = self.values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (B, H, T_new, D) keys and values after the cached ones; returns the views of all of them."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        need = length + key_states.shape[-2]
        self._room_for(key_states, value_states, length, need)
        keys, values = self._buffers
        keys[..., length:need, :] = key_states
        values[..., length:need, :] = value_states
        self.keys, self.values = keys[..., :need, :], values[..., :need, :]
        return self.keys, self.values


class GrowingCache(DynamicCache):
    """``DynamicCache`` whose layers are :class:`GrowingLayer`: what ``MuseNetModel`` creates when a
    forward with ``use_cache`` gets none, and what ``generate_long`` hands ``generate()``."""

    def __init__(self, config=None):
        super().__init__(config=config)
        if self.layers:
            self.layers = [GrowingLayer() for _ in self.layers]
        else:
            self.layer_class_to_replicate = GrowingLayer


__all__ = ["GrowingCache", "GrowingLayer"]
