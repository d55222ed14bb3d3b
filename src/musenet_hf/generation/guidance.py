"""Classifier-free guidance on the composer/style token.

MuseNet steers a piece through the tokens of its prefix (``bach piano start``). A small model
follows the composer token only weakly: its pieces drift towards what the whole corpus sounds
like. Classifier-free guidance (Ho & Salimans, 2022; MusicGen uses it for its text prompt) runs
the model twice each step, once on the prompt as given and once on the same sequence with the
composer/style tokens taken out of the prefix, and samples from

    log p_guided = log p_uncond + scale * (log p_cond - log p_uncond)

so whatever the label changes in the model's prediction is amplified ``scale`` times (1 = off).

Amplified, the label also changes *when notes end*: a label whose pieces hold longer notes than the
corpus gets its note-offs pushed down ``scale`` times as hard, and the small model's pieces turn into
held chords. With ``keep_note_off_share`` (the default) the guided distribution is rescaled so the
note-off tokens together keep the probability the conditional model gave them, shared among them as
guidance says, and every other token shares the rest as guidance says: guidance picks which notes
are struck, and how soon, but not the chance of ending a sounding note at a given step.
The unconditional side is the music of no label in particular, which the model learns from
windows whose label was dropped (``drop_composer`` in the augmentation config) and from the
corpus pieces that have no label.

With ``against`` (a negative prompt, as in text-to-image guidance) the other side is the prompt
with its composer/style token replaced by another label's, and guidance amplifies what sets the
asked label apart from *that* label. Unguided, the bundled model often lets Palestrina, trecento
and Monteverdi fall into one line: the notes so far sound like the 12,000 one-line folk tunes it
shares the ``piano`` token with, and it continues them as one. Guided against ``folk``,
what separates a motet from a folk tune (a second voice) is what gets amplified (MODEL_CARD.md,
"Sampling against folk"). A prompt of the ``against`` label itself is left as it is.

The processor works with the standard ``generate()``: it is a :class:`~transformers.LogitsProcessor`.
**One forward a step.** Passed to a MuseNet model's ``generate()`` also as ``guidance_batch=``
(:func:`~musenet_hf.generation.generate.generate_long` does), its unconditional rows ride in the
model's own batch: the model runs the conditional and the unconditional sequences as one batch of
``2B`` rows with one key/value cache, keeps the first ``B`` rows' logits for ``generate()`` and
hands the other ``B`` to the processor (:meth:`ComposerGuidanceLogitsProcessor.receive`). That
needs both sides to be the same length, which they are when guidance is ``against`` a label (the
label token is replaced, every preset of the bundled model); a side without its label is shorter
(its positions differ), so there, and without ``guidance_batch``, the processor runs the model on
the unconditional sequence itself, with a cache of its own, one token a step. The windows of :func:`~musenet_hf.generation.generate.generate_long` tell it where they sit in the
piece (:meth:`ComposerGuidanceLogitsProcessor.begin_window`), so both sides see the same part and
countdown positions.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor
from transformers.cache_utils import Cache

from ..defaults import DEFAULT_GUIDANCE  # the scale when nothing gives one (measured there)
from ..tokenizer.vocabulary import MuseNetVocabulary

# Guided log-probabilities are floored here: a token the conditional model rules out (the model's
# own masks, at the dtype's minimum) stays ruled out, and no inf - inf turns into NaN.
_FLOOR = -1e4


class ComposerGuidanceLogitsProcessor(LogitsProcessor):
    """Classifier-free guidance that amplifies the composer/style tokens of the prompt.

    Place it first in the processor list (before steering and the grammar): it turns the model's
    logits into guided log-probabilities, and the processors after it bias or mask those.

    Args:
        model: the causal LM being sampled (a ``MuseNetForCausalLM``; any model whose forward takes
            ``input_ids``, ``cache`` and ``use_cache`` works without the structural inputs).
        vocabulary: the model's vocabulary (for the composer and ``start`` ids).
        scale: the guidance scale; 1 leaves the scores as the model gave them.
        keep_note_off_share: keep the conditional model's total note-off probability (see the
            module docstring); False samples the plain guided mixture.
        against: a composer/style name or token id to guide away from (a negative prompt); None
            guides away from no label.

    The unconditional sequence of a row is the row without the composer/style tokens that come
    before its ``start`` token; with ``against``, the first of them becomes that label's token and
    the others go. A row with none (no composer asked for) is guided towards itself, which is the
    identity, and so is a row whose only label is ``against``.
    """

    def __init__(self, model: Any, vocabulary: MuseNetVocabulary, scale: float = 1.0,
                 keep_note_off_share: bool = True, against: str | int | None = None):
        if not (isinstance(scale, (int, float)) and scale >= 0):
            raise ValueError(f"guidance scale must be a number >= 0 (1 = off), got {scale!r}")
        self.model = model
        self.vocabulary = vocabulary
        self.scale = float(scale)
        self.keep_note_off_share = bool(keep_note_off_share)
        self.against = vocabulary.composer_id(against) if isinstance(against, str) else against
        if self.against is not None and not vocabulary.is_composer[self.against]:
            raise ValueError(f"guidance can only be against a composer/style token, got id {self.against}")
        self._is_label = torch.as_tensor(vocabulary.is_composer, dtype=torch.bool)
        self.begin_window()

    def begin_window(self, piece_seconds: torch.Tensor | float | None = None,
                     time_offset_seconds: torch.Tensor | float | None = None) -> None:
        """Start afresh: the next call sees a new window at this place in the piece.

        Args:
            piece_seconds: (B,) or a float, the whole piece's length, as ``generate()`` gets it.
            time_offset_seconds: (B,) or a float, the window's start in the piece.
        """
        self.piece_seconds = piece_seconds
        self.time_offset_seconds = time_offset_seconds
        self._cache: Cache | None = None
        self._seen: torch.Tensor | None = None  # (B, T) the conditional ids the cache has followed
        self._prefix_keep: torch.Tensor | None = None  # (P,) bool: the prefix positions kept
        self._received: tuple[int, torch.Tensor] | None = None  # (sequence length, (B, V) logits) from the batch

    def _prefix_kept(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(P,) bool over the prefix (the tokens before the first ``start``): False at composer tokens."""
        row = input_ids[0]
        starts = (row == self.vocabulary.start_id).nonzero()
        end = int(starts[0]) if len(starts) else 0
        prefix = input_ids[:, :end]
        if end and not bool((prefix == prefix[:1]).all()):
            raise ValueError("classifier-free guidance needs one conditioning prefix for every row of a batch")
        return ~self._is_label.to(row.device)[row[:end]]

    def unconditional_ids(self, input_ids: torch.LongTensor) -> torch.LongTensor:
        """(B, T - labels) ``input_ids`` without the composer tokens of its prefix (with ``against``:
        (B, T - labels + 1), its first composer token replaced by ``against``)."""
        keep = self._prefix_kept(input_ids) if self._prefix_keep is None else self._prefix_keep
        prefix = input_ids[:, : len(keep)]
        labels = (~keep).nonzero().flatten()
        if self.against is not None and len(labels):
            prefix = prefix.clone()
            prefix[:, labels[0]] = self.against
            keep = keep.clone()
            keep[labels[0]] = True
        return torch.cat([prefix[:, keep], input_ids[:, len(keep):]], dim=1)

    def unconditional_logits(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(B, V) the model's next-token logits for the sequences with their labels taken out.

        Incremental while ``input_ids`` grows by one token a call (the cache follows it); anything
        else (a new ``generate()`` call, a new batch) starts the unconditional side again.
        """
        seen = self._seen
        incremental = (seen is not None and input_ids.shape[0] == seen.shape[0]
                       and input_ids.shape[1] == seen.shape[1] + 1 and torch.equal(input_ids[:, :-1], seen))
        if not incremental:
            self._cache = None
            self._prefix_keep = self._prefix_kept(input_ids)
        uncond = self.unconditional_ids(input_ids)
        new = 1 if incremental else uncond.shape[1]
        structure = {}
        if hasattr(self.model, "structure_ids"):  # MuseNet: time, chord, part, countdown, sounding notes
            structure = self.model.structure_ids(uncond, self.piece_seconds, self.time_offset_seconds, last=new)
        with torch.no_grad():
            out = self.model(input_ids=uncond[:, -new:], cache=self._cache, use_cache=True, logits_to_keep=1,
                             **structure)
        self._cache = out.cache if hasattr(out, "cache") else out.past_key_values
        self._seen = input_ids
        return out.logits[:, -1].float()

    def batch_side(self, input_ids: torch.LongTensor) -> torch.LongTensor | None:
        """(B, T) the unconditional sequences to run in the model's batch beside ``input_ids`` (B, T),
        or None when they cannot or need not ride there (guidance off, the identity, or a side of
        another length: see the module docs). The model calls this every step of a ``generate()``
        with ``guidance_batch=self``; the answer does not change within one call (it depends on the
        prefix only)."""
        if self.scale == 1.0 or self._is_identity(input_ids):
            return None
        self._prefix_keep = keep = self._prefix_kept(input_ids)
        if self.against is None or int((~keep).sum()) != 1:
            return None
        return self.unconditional_ids(input_ids)

    def receive(self, length: int, logits: torch.Tensor) -> None:
        """The unconditional side's next-token logits ``(B, V)`` for sequences of ``length`` tokens,
        computed in the model's batch; the next call with ``input_ids`` of that length uses them."""
        self._received = (int(length), logits)

    def _is_identity(self, input_ids: torch.LongTensor) -> bool:
        """True when the guided side would be the prompt itself (its only label is ``against``)."""
        if self.against is None:
            return False
        if self._prefix_keep is None:  # once a window: unconditional_logits keeps it while incremental
            self._prefix_keep = self._prefix_kept(input_ids)
        keep = self._prefix_keep
        labels = input_ids[0, : len(keep)][~keep]
        return len(labels) == 1 and int(labels[0]) == self.against

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.scale == 1.0 or self._is_identity(input_ids):
            return scores
        cond = torch.log_softmax(scores.float(), dim=-1).clamp(min=_FLOOR)
        received, self._received = self._received, None
        if received is not None and received[0] == input_ids.shape[1] and received[1].shape[0] == input_ids.shape[0]:
            uncond_logits = received[1].float()  # the model ran this side in its batch
        else:
            uncond_logits = self.unconditional_logits(input_ids)
        uncond = torch.log_softmax(uncond_logits, dim=-1).clamp(min=_FLOOR)
        guided = uncond + self.scale * (cond - uncond)
        ruled_out = scores <= torch.finfo(scores.dtype).min
        if self.keep_note_off_share:
            guided = self._with_note_off_share(guided, cond, ruled_out)
        return guided.masked_fill(ruled_out, torch.finfo(guided.dtype).min).to(scores.dtype)

    def _with_note_off_share(self, guided: torch.Tensor, cond: torch.Tensor, ruled_out: torch.Tensor) -> torch.Tensor:
        """(B, V) log-probabilities: ``guided``'s, rescaled so the note-offs sum to ``cond``'s share.

        Rows where either side gives the note-offs nothing (no note sounds) are ``guided`` normalised.
        """
        off = self.vocabulary.torch_tables(guided.device)["is_note_off"]  # (V,) bool, cached per device
        none = -float("inf")
        g = torch.log_softmax(guided.masked_fill(ruled_out, none), dim=-1)
        g_off = torch.logsumexp(g.masked_fill(~off, none), -1, keepdim=True)  # (B, 1) log guided off share
        g_rest = torch.logsumexp(g.masked_fill(off, none), -1, keepdim=True)
        c_off = torch.logsumexp(cond.masked_fill(ruled_out | ~off, none), -1, keepdim=True)
        both = torch.isfinite(g_off) & torch.isfinite(g_rest) & torch.isfinite(c_off) & (c_off < 0)
        c_off = torch.where(both, c_off, torch.zeros_like(c_off)).clamp(max=-1e-7)
        rescaled = torch.where(off, g - g_off + c_off, g - g_rest + torch.log1p(-torch.exp(c_off)))
        rescaled = torch.where(both, rescaled, g)
        return rescaled.masked_fill(~torch.isfinite(rescaled), _FLOOR)


def guidance_processors(processors: Any) -> list[ComposerGuidanceLogitsProcessor]:
    """The guidance processors in a processor list (``generate_long`` tells them each window)."""
    return [p for p in processors if isinstance(p, ComposerGuidanceLogitsProcessor)]


__all__ = ["DEFAULT_GUIDANCE", "ComposerGuidanceLogitsProcessor", "guidance_processors"]
