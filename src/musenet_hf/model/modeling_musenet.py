"""MuseNet as a Transformers model: structural embeddings, sparse-attention blocks, LM and critic heads.

The network is a pre-LN GPT-2 decoder. Its input embedding is the sum of the token, position,
**time** (time since the window start, so every token at the same moment shares it), **chord**
(n-th note since the last wait), **part** (which of 128 time slices of the whole piece) and
**countdown** (time left to the end of the piece) embeddings. Time and chord come from the ids
themselves (a wait-length and an is-note table over the vocabulary, then cumulative sums); part
and countdown also need the piece's length `piece_seconds` and the window's start
`time_offset_seconds`. All four can be passed explicitly (`time_ids`, ...), which the data
pipeline does for `inputs_embeds` (mixup).

Under `generate()` the indices are derived from the full sequence at every step (see
`MuseNetForCausalLM.prepare_inputs_for_generation`), so they stay right with the KV cache, beam
search and `num_return_sequences`. A plain forward with a non-empty cache has no history to
derive them from and therefore needs them passed in.

The embeddings and the tables they derive the indices from are
:mod:`~musenet_hf.model.embeddings_musenet`; the attention layouts :mod:`~musenet_hf.model.attention`.

Attention is selected the Transformers way: `attn_implementation=` in `from_pretrained` /
`from_config` / the config, or `model.set_attn_implementation(...)`, names the backend
(`"sdpa"`, `"flex_attention"`, `"xformers"`, or `"eager"`, the plain matmul-softmax reference);
the sparse layout always comes from the config (`attention_layout`, ...). Without one
(`config._attn_implementation` stays None), the config's `attention_backend` decides, `"auto"` for
saved configs. `model.resolved_attention_backend()` says what runs on the model's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel, slice_logits_to_keep
from transformers.utils import can_return_tuple, logging
from transformers.utils.deprecation import deprecate_kwarg

from .attention import AttentionPlan, SparseLayout, requested_backend, resolve_backend
from .cache import GrowingCache
from .attention_xformers import register_xformers_attention
from .configuration_musenet import MuseNetConfig
from .embeddings_musenet import (
    MuseNetEmbeddings,
    composer_slot_table,
    is_note_table,
    note_key_tables,
    wait_units_table,
)

logger = logging.get_logger(__name__)

# `attn_implementation="xformers"` is a name Transformers accepts once its AttentionInterface knows it
register_xformers_attention()


@dataclass
class MuseNetCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the critic.

    Args:
        critic_logits: (B,) real-vs-generated logit per sequence (None without the critic head, and
            in decoding steps with a non-empty cache).
        lm_loss: the language-modelling part of `loss` (when `labels` were given).
        critic_loss: the weighted critic part of `loss` (when `critic_labels` were given).
    """

    critic_logits: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    critic_loss: torch.Tensor | None = None


class MuseNetAttention(nn.Module):
    """Multi-head self-attention with a Sparse Transformer layout (see `musenet_hf.model.attention`)."""

    def __init__(self, config: MuseNetConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.config = config  # the backend is read from it at each forward (set_attn_implementation)
        self.layout = SparseLayout.from_config(config)
        self.attn_dropout = config.attn_dropout
        self.c_attn = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.c_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.c_proj.is_residual_projection = True  # scaled at initialization (see _init_weights)
        self.resid_dropout = nn.Dropout(config.resid_dropout)

    def forward(self, hidden_states: torch.Tensor, plan: AttentionPlan, cache: Cache | None = None) -> torch.Tensor:
        """(B, T, hidden) -> (B, T, hidden); `cache` gets this layer's keys and values appended."""
        batch, length, width = hidden_states.shape
        qkv = self.c_attn(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, H, past + T, D)
        out = plan.attend(q, k, v, self.layer_idx, self.attn_dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.resid_dropout(self.c_proj(out))

    def extra_repr(self) -> str:
        weight = self.c_attn.weight
        backend = requested_backend(self.config._attn_implementation, self.config.attention_backend)
        if weight.device.type != "meta":
            resolved = resolve_backend(backend, self.layout.kind, weight.device, weight.dtype)
            backend = f"{backend} -> {resolved}" if resolved != backend else backend
        groups = self.layout.head_patterns(self.layer_idx, self.num_heads)
        patterns = ", ".join(f"heads {h0}-{h1 - 1}: {p}" for h0, h1, p in groups)
        sparse = "" if self.layout.kind == "full" else f", block={self.layout.block_size}, stride={self.layout.stride}"
        return f"layout={self.layout.kind}{sparse} ({patterns}), backend={backend}"


class MuseNetMLP(nn.Module):
    def __init__(self, config: MuseNetConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.c_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.c_proj.is_residual_projection = True  # scaled at initialization (see _init_weights)
        self.dropout = nn.Dropout(config.resid_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))


class MuseNetBlock(GradientCheckpointingLayer):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: MuseNetConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attn = MuseNetAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = MuseNetMLP(config)

    def forward(self, hidden_states: torch.Tensor, plan: AttentionPlan, cache: Cache | None = None, **kwargs):
        # hidden_states stays positional: the checkpointing wrapper recomputes from positional args
        hidden_states = hidden_states + self.attn(self.ln_1(hidden_states), plan, cache)
        return hidden_states + self.mlp(self.ln_2(hidden_states))


class MuseNetCriticHead(nn.Module):
    """Real-vs-generated score per sequence: masked mean of the final hidden states, then a small MLP."""

    def __init__(self, config: MuseNetConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.critic_hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.out = nn.Linear(config.critic_hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, hidden) and (B, T) mask (1 = real token) -> (B,) logits."""
        if attention_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            weights = attention_mask[:, -hidden_states.shape[1] :].to(hidden_states.dtype).unsqueeze(-1)
            pooled = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.out(self.act(self.dense(pooled))).squeeze(-1)


class MuseNetPreTrainedModel(PreTrainedModel):
    config: MuseNetConfig
    config_class = MuseNetConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MuseNetBlock"]
    # `attn_implementation` names MuseNet's own backend (musenet_hf.model.attention.IMPLEMENTATION_BACKENDS:
    # sdpa, flex_attention, xformers, eager), which runs the config's sparse layout; none requested
    # (None): `config.attention_backend` decides. Read at every forward, so set_attn_implementation works.
    _supports_sdpa = True
    _supports_flex_attn = True

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # Transformers looks for `ALL_ATTENTION_FUNCTIONS.get_interface(` in the source; MuseNet
        # dispatches itself (AttentionPlan) but reads the name at every forward, so it can be switched.
        return True

    def get_correct_attn_implementation(self, requested_attention: str | None,
                                        is_init_check: bool = False) -> str | None:
        """The checked `attn_implementation`; None (nothing requested) stays None: the config's
        `attention_backend` then decides, where Transformers would pick sdpa."""
        if requested_attention is None:
            return None
        requested_backend(requested_attention)  # a ValueError for names MuseNet has no backend for
        return super().get_correct_attn_implementation(requested_attention, is_init_check)

    @property
    def requested_attention_backend(self) -> str:
        """The backend asked for: `auto`, `sdpa`, `flex`, `xformers` or `eager` (see `musenet_hf.model.attention`)."""
        return requested_backend(self.config._attn_implementation, self.config.attention_backend)

    def resolved_attention_backend(self, device=None, dtype=None) -> str:
        """The backend a forward runs on `device` with `dtype` (default: the parameters'): `sdpa`, `flex`,
        `xformers` or `eager` (`auto` resolved; `flex`/`xformers` that cannot run there fall back to `sdpa`)."""
        weight = next(self.parameters())
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        return resolve_backend(self.requested_attention_backend, self.config.attention_layout, device, dtype)

    @torch.no_grad()
    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> nn.Embedding:
        """Transformers' resize (token rows, the tied head, ``config.vocab_size``), then the
        embeddings' vocabulary tables refilled for the new size: new labels of a warm start."""
        out = super().resize_token_embeddings(*args, **kwargs)
        for module in self.modules():
            if isinstance(module, MuseNetEmbeddings):
                module.refill_vocabulary_tables(self.config)
        return out

    def _init_weights(self, module: nn.Module) -> None:
        # Transformers 5 calls this only for modules that hold parameters or buffers themselves,
        # so the residual projections are recognised on the Linear layer, not on its parent block.
        if isinstance(module, nn.Linear) and getattr(module, "is_residual_projection", False):
            # GPT-2: residual projections scaled by 1/sqrt(2 * layers) so the residual stream stays O(1)
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)
        if isinstance(module, MuseNetEmbeddings):
            init.copy_(module.wait_units, wait_units_table(self.config))
            init.copy_(module.is_note, is_note_table(self.config))
            for name, table in note_key_tables(self.config).tables().items():
                init.copy_(getattr(module, name), table)
            init.copy_(module.composer_slot, composer_slot_table(self.config))
            std = self.config.structural_init_std
            if std is not None:  # after the tables' own (generic) initialization: apply() visits children first
                for table in (module.embed_time, module.embed_chord, module.embed_part, module.embed_countdown,
                              module.embed_sounding, module.embed_composer):
                    if table is not None:
                        init.zeros_(table.weight) if std == 0 else init.normal_(table.weight, mean=0.0, std=std)


class MuseNetModel(MuseNetPreTrainedModel):
    """The decoder: embeddings, `num_hidden_layers` blocks, final LayerNorm."""

    # a MuseNetForCausalLM checkpoint also holds the critic head, which the bare decoder does not use
    _keys_to_ignore_on_load_unexpected = [r"^critic\."]

    def __init__(self, config: MuseNetConfig):
        super().__init__(config)
        self.embeddings = MuseNetEmbeddings(config)
        self.h = nn.ModuleList([MuseNetBlock(config, i) for i in range(config.num_hidden_layers)])
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.layout = SparseLayout.from_config(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        time_ids: torch.LongTensor | None = None,
        chord_ids: torch.LongTensor | None = None,
        part_ids: torch.LongTensor | None = None,
        countdown_ids: torch.LongTensor | None = None,
        sounding_notes: torch.Tensor | None = None,
        composers_seen: torch.Tensor | None = None,
        piece_seconds: torch.Tensor | float | None = None,
        time_offset_seconds: torch.Tensor | float | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        Args:
            input_ids: (B, T) token ids (only the new ones when `cache` holds the earlier ones).
            attention_mask: (B, past + T), 1 for real tokens and 0 for padding.
            position_ids: (B or 1, T); default past .. past + T - 1.
            cache: a `Cache` (`GrowingCache` when none is given) with the keys/values of earlier tokens.
            inputs_embeds: (B, T, hidden) instead of `input_ids` (e.g. mixup).
            time_ids, chord_ids, part_ids, countdown_ids: (B, T) explicit structural indices.
            sounding_notes: (B, T, num_keys) bool, the notes sounding after each token (sounding embedding).
            composers_seen: (B, T, num_composers) bool, the composer tokens up to each token (composer embedding).
            piece_seconds: (B,) or float, length of the whole piece (for part and countdown).
            time_offset_seconds: (B,) or float, absolute time of the window's first token.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        source = input_ids if input_ids is not None else inputs_embeds
        (batch, length), device = source.shape[:2], source.device
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = GrowingCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0

        structure = dict(time_ids=time_ids, chord_ids=chord_ids, part_ids=part_ids, countdown_ids=countdown_ids,
                         sounding_notes=sounding_notes, composers_seen=composers_seen)
        if past > 0 and self.embeddings.needs_history(structure, piece_seconds):
            raise ValueError(
                "a forward with a non-empty cache cannot derive the time/chord/part/countdown indices of the new "
                "tokens from them alone: pass them (MuseNetForCausalLM.structure_ids on the full sequence, last rows) "
                "or use generate()"
            )
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=device).unsqueeze(0)
        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids, structure, piece_seconds, time_offset_seconds)

        key_valid = None
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape[1] != past + length:
                raise ValueError(f"attention_mask must be (batch, past + new) = ({batch}, {past + length})")
            # Right padding needs no mask in a causal model: real tokens never see later keys. Only the
            # (meaningless) rows of padding positions change, and attention keeps its fast paths.
            right_padded = past == 0 and bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
            if not right_padded and not bool(attention_mask.all()):
                key_valid = attention_mask.bool()
        backend = resolve_backend(self.requested_attention_backend, self.layout.kind, device, hidden_states.dtype)
        plan = AttentionPlan(self.layout, backend, length, past + length, key_valid, device)

        all_hidden = [] if output_hidden_states else None
        for block in self.h:
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            hidden_states = block(hidden_states, plan=plan, cache=cache)
        hidden_states = self.ln_f(hidden_states)
        if all_hidden is not None:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )


class MuseNetForCausalLM(MuseNetPreTrainedModel, GenerationMixin):
    """MuseNet with the tied language-model head and the critic head."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.embed_tokens.weight"}

    def __init__(self, config: MuseNetConfig):
        super().__init__(config)
        self.model = MuseNetModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.critic = MuseNetCriticHead(config) if config.use_critic else None
        self.post_init()

    def structure_ids(self, input_ids, piece_seconds=None, time_offset_seconds=None,
                      last: int | None = None) -> dict[str, torch.LongTensor]:
        """Time, chord, part and countdown indices (each (B, T), or (B, `last`) for the last tokens only)
        the model derives for `input_ids` (`MuseNetEmbeddings.structure_ids`)."""
        return self.model.embeddings.structure_ids(input_ids, piece_seconds, time_offset_seconds, last=last)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        critic_labels: torch.Tensor | None = None,
        time_ids: torch.LongTensor | None = None,
        chord_ids: torch.LongTensor | None = None,
        part_ids: torch.LongTensor | None = None,
        countdown_ids: torch.LongTensor | None = None,
        sounding_notes: torch.Tensor | None = None,
        composers_seen: torch.Tensor | None = None,
        piece_seconds: torch.Tensor | float | None = None,
        time_offset_seconds: torch.Tensor | float | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        guidance_batch: Any = None,
        **kwargs,
    ) -> MuseNetCausalLMOutput:
        r"""
        Args (besides those of `MuseNetModel.forward`):
            guidance_batch: a composer-guidance processor whose unconditional rows are the batch's second
                half (`prepare_inputs_for_generation`): their last logits go to its `receive`.
            labels: (B, T) next-token targets (shifted inside; -100 is ignored).
            critic_labels: (B,) 1.0 for real music, 0.0 for generated; adds
                `critic_loss_weight * BCEWithLogits(critic_logits, critic_labels)` to the loss.
            logits_to_keep: compute logits only for the last n positions (0 = all).
        Returns:
            `MuseNetCausalLMOutput`: loss, logits (B, T, V), cache, hidden_states, critic_logits (B,),
            lm_loss, critic_loss.
        """
        past = cache.get_seq_length() if cache is not None else 0
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            time_ids=time_ids,
            chord_ids=chord_ids,
            part_ids=part_ids,
            countdown_ids=countdown_ids,
            sounding_notes=sounding_notes,
            composers_seen=composers_seen,
            piece_seconds=piece_seconds,
            time_offset_seconds=time_offset_seconds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        logits = self.lm_head(slice_logits_to_keep(hidden_states, logits_to_keep))
        if self.config.mask_silent_note_offs or self.config.mask_end_while_sounding:
            logits = self.mask_impossible_tokens(logits, input_ids, sounding_notes, past)
        if guidance_batch is not None:  # the second half is the guidance's unconditional side
            half = logits.shape[0] // 2
            guidance_batch.receive(past + hidden_states.shape[1], logits[half:, -1])
            logits, hidden_states = logits[:half], hidden_states[:half]
            attention_mask = attention_mask[:half] if attention_mask is not None else None

        # The critic scores whole sequences: skipped in decoding steps, which only see the new tokens.
        critic_logits = self.critic(hidden_states, attention_mask) if self.critic is not None and past == 0 else None

        loss, lm_loss, critic_loss = self._losses(logits, labels, critic_logits, critic_labels, **kwargs)
        return MuseNetCausalLMOutput(loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states,
                                     critic_logits=critic_logits, lm_loss=lm_loss, critic_loss=critic_loss)

    def _losses(self, logits: torch.Tensor, labels: torch.LongTensor | None, critic_logits: torch.Tensor | None,
                critic_labels: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor | None, ...]:
        """(loss, lm_loss, critic_loss): the language-modelling loss on `labels` (B, T), the weighted critic
        loss on `critic_labels` (B,), their sum; None where not asked for."""
        lm_loss = critic_loss = None
        if labels is not None:
            lm_loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        if critic_labels is not None:
            if critic_logits is None:
                raise ValueError("critic_labels need the critic head (use_critic=True) and a forward without cache")
            bce = F.binary_cross_entropy_with_logits(critic_logits.float(), critic_labels.to(critic_logits.device).float())
            critic_loss = self.config.critic_loss_weight * bce
        losses = [x for x in (lm_loss, critic_loss) if x is not None]
        return (sum(losses) if losses else None), lm_loss, critic_loss

    def mask_impossible_tokens(self, logits: torch.Tensor, input_ids: torch.LongTensor | None,
                               sounding_notes: torch.Tensor | None, past: int) -> torch.Tensor:
        """`logits` (B, T', V) with the tokens no real piece has after each position set to the
        dtype's minimum: note-offs of notes not sounding (`MuseNetConfig.mask_silent_note_offs`)
        and `end` while a note sounds (`MuseNetConfig.mask_end_while_sounding`). The state comes
        from `sounding_notes` (B, T, K) or, without a cache, from `input_ids`; without either (a
        forward on `inputs_embeds`, as mixup does) the logits are returned unmasked."""
        embeddings = self.model.embeddings
        if sounding_notes is None:
            if input_ids is None:
                return logits
            if past > 0:
                raise ValueError("masking impossible tokens with a cache needs sounding_notes (generate() passes them)")
            sounding_notes = embeddings.sounding_notes(input_ids)
        state = sounding_notes[:, -logits.shape[1]:]  # (B, T', K)
        low = torch.finfo(logits.dtype).min
        logits = logits.clone()
        keys = embeddings.note_keys  # the grammar rule's owner; the config picks which parts apply
        if self.config.mask_silent_note_offs:
            notes = logits[..., : keys.num_notes]
            notes.masked_fill_(keys.impossible_notes(state, note_offs=True, note_ons=False), low)
        end = self.config.eos_token_id
        if self.config.mask_end_while_sounding and end is not None and end < logits.shape[-1]:
            logits[..., end] = logits[..., end].masked_fill(keys.impossible_end(state), low)
        return logits

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Cache | None = None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        piece_seconds: torch.Tensor | float | None = None,
        time_offset_seconds: torch.Tensor | float | None = None,
        guidance_batch: Any = None,
        **kwargs,
    ):
        """The standard inputs plus the structural indices of the new tokens.

        `input_ids` here is always the full sequence of every row (also after beam reordering and
        `num_return_sequences` expansion), so the indices are derived from it and only the rows of
        the tokens this step feeds are kept. With `guidance_batch` (a composer-guidance processor,
        `musenet_hf.generation.guidance`) whose unconditional side has the rows' length, that side
        is appended to the batch (`2B` rows, one cache) and `forward` splits the logits again.
        """
        side = guidance_batch.batch_side(input_ids) if guidance_batch is not None else None
        if side is not None:
            input_ids = torch.cat([input_ids, side])
            attention_mask = torch.cat([attention_mask, attention_mask]) if attention_mask is not None else None
            piece_seconds, time_offset_seconds = (torch.cat([x, x]) if isinstance(x, torch.Tensor) else x
                                                  for x in (piece_seconds, time_offset_seconds))
            if isinstance(kwargs.get("position_ids"), torch.Tensor) and kwargs["position_ids"].shape[0] > 1:
                kwargs["position_ids"] = torch.cat([kwargs["position_ids"]] * 2)  # the sides share positions
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        fed = model_inputs.get("input_ids")
        if fed is None:
            if self.model.embeddings.needs_history({}, piece_seconds):
                raise ValueError("generate() from inputs_embeds cannot derive the structural indices: pass input_ids")
            return model_inputs
        past = cache.get_seq_length() if cache is not None else 0
        if past + fed.shape[1] != input_ids.shape[1]:
            raise ValueError(
                f"MuseNet derives its structural indices from the whole sequence, but this step got "
                f"{input_ids.shape[1]} tokens with {past} cached and {fed.shape[1]} new: pass the whole sequence "
                "(prompt included) to generate(), without prefill_chunk_size"
            )
        model_inputs.update(self.structure_ids(input_ids, piece_seconds, time_offset_seconds, last=fed.shape[1]))
        model_inputs.pop("piece_seconds", None)
        model_inputs.pop("time_offset_seconds", None)
        model_inputs["guidance_batch"] = guidance_batch if side is not None else None
        return model_inputs


def register_auto_classes() -> None:
    """Register `musenet` with AutoConfig, AutoModel and AutoModelForCausalLM (safe to call twice)."""
    AutoConfig.register("musenet", MuseNetConfig, exist_ok=True)
    AutoModel.register(MuseNetConfig, MuseNetModel, exist_ok=True)
    AutoModelForCausalLM.register(MuseNetConfig, MuseNetForCausalLM, exist_ok=True)


__all__ = [
    "MuseNetCausalLMOutput",
    "MuseNetEmbeddings",
    "MuseNetForCausalLM",
    "MuseNetModel",
    "MuseNetPreTrainedModel",
    "register_auto_classes",
]
