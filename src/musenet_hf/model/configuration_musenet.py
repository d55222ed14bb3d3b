"""MuseNet model configuration.

`MuseNetConfig` describes the network (a pre-LN GPT-2-style decoder), the parts of the
vocabulary the structural embeddings need (which ids are notes, which are waits and how long
a wait unit is), the Sparse Transformer attention layout, and the critic head.

The defaults are the `musenet` vocabulary preset (ids 0-3967 notes incl. drums, 3968-4095 waits of
1-128 units of 10 ms, 4096 `start`, 4097 `end`, 4098 `end_sample`, 4099-4835 conditioning tokens, 4836 `pad`)
with a small network; `configs/*.json` hold the tiny (tests), small (CPU training) and full
(the blog's 72-layer model) sizes.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

ATTENTION_LAYOUTS = ("full", "strided", "fixed")
ATTENTION_COMBINES = ("alternate", "split_heads", "union")
ATTENTION_BACKENDS = ("auto", "sdpa", "flex", "xformers", "eager")


class MuseNetConfig(PreTrainedConfig):
    r"""Configuration of [`MuseNetModel`] and [`MuseNetForCausalLM`].

    Network:
        vocab_size: number of token ids (4837 for the `musenet` preset: its 4836 public ids and `pad`).
        hidden_size, num_hidden_layers, num_attention_heads: width, depth, heads.
        intermediate_size: MLP width; `None` means 4 x hidden_size.
        max_position_embeddings: the context length (positions 0 .. n-1).
        hidden_act: MLP activation (`"gelu_new"`, the tanh GELU of GPT-2).
        embd_dropout, resid_dropout, attn_dropout: dropout on the summed embeddings, on each
            residual branch, and on the attention probabilities (keep 0.0 to allow `flex`).
        layer_norm_epsilon, initializer_range: as in GPT-2.

    Vocabulary (what the structural embeddings read from the ids):
        num_note_tokens: ids [0, num_note_tokens) are notes (note-on or note-off).
        first_wait_token_id, num_wait_tokens: ids [first, first + n) are waits of
            (id - first + 1) clock units.
        wait_unit_seconds: length of one clock unit in seconds (0.01 for `musenet`).
        bos/eos/pad_token_id: `start`, `end`, and `pad` (4836, after the musenet preset's public ids).

    Structural embeddings (each is added to token + position embeddings when switched on):
        use_time_embedding, max_time_positions, time_bucket_units: time since the window start,
            in buckets of `time_bucket_units` clock units, capped at the last bucket.
        use_chord_embedding, num_chord_positions: n-th note since the last wait, capped.
        use_part_embedding, num_parts: which of `num_parts` equal time slices of the whole piece.
        use_countdown_embedding, num_countdown, countdown_step_seconds: time left to the end of
            the piece in steps of `countdown_step_seconds`, capped at num_countdown - 1.
        use_sounding_embedding: add, at every token, the sum of a learned vector per note
            (instrument x pitch) still sounding after it: the model sees which notes it may end.
            Not in MuseNet; it needs `note_slots`.
        mask_silent_note_offs: give the note-off of a note that is not sounding zero probability
            (its logit the dtype's minimum), as no real piece has one: a structural rule of the
            model's distribution, so plain `generate()` and bits per second see it. Not in MuseNet;
            it needs `note_slots`.
        mask_end_while_sounding: give `end` zero probability while a note sounds, as no real piece
            ends with a note left open (the encoder ends every note first): a piece the model ends
            is closed. Not in MuseNet; it needs `note_slots`.
        note_slots: the vocabulary's note layout, `[instrument, volume]` per block of 128 note ids
            (volume 0: the note-off block); `MuseNetVocabulary.model_config_kwargs()` fills it in.
        drum_instrument: the instrument index of the drum kit (never sounding: no note-off).
        use_composer_embedding: add, at every token, a learned vector per composer/style token
            (`composer_token_ids`) seen so far in the sequence (its prefix): the label speaks at
            every position, not only through attention to the first token. Not in MuseNet.
        composer_token_ids: the vocabulary's composer/style ids, in table order;
            `MuseNetVocabulary.model_config_kwargs()` fills it in.
        structural_init_std: standard deviation of these four tables at initialization (None:
            `initializer_range`). 0.0 starts them at zero: the untrained model then sees tokens and
            positions only, as GPT-2 does, and each table grows as its gradient finds it useful.

    Attention (see `musenet_hf.model.attention`):
        attention_layout: `"full"`, `"strided"` or `"fixed"` (Sparse Transformer, Child et al. 2019).
        attention_block_size: the layout's block size in tokens.
        attention_stride: the stride l in tokens (a multiple of the block size).
        attention_c: `fixed` only: summary tokens at the end of every stride block (a multiple of
            the block size, at most the stride).
        attention_combine: how the two patterns of a sparse layout combine: `"alternate"` (even
            layers pattern A, odd layers pattern B), `"split_heads"` (first half of the heads A, the
            rest B) or `"union"` (every head attends to A or B).
        attention_backend: the backend when no `attn_implementation` is requested: `"auto"`,
            `"sdpa"`, `"flex"`, `"xformers"` or `"eager"`. Transformers' `attn_implementation`
            (`from_pretrained(..., attn_implementation="xformers")`, `MuseNetConfig(attn_implementation=...)`,
            `model.set_attn_implementation(...)`) overrides it without being saved: `"sdpa"`,
            `"flex_attention"`, `"xformers"` or `"eager"` (see `musenet_hf.model.attention`).

    Critic head:
        use_critic: add the real-vs-generated head (one logit per sequence).
        critic_hidden_size: width of its hidden layer.
        critic_loss_weight: weight of its binary cross-entropy in the loss.

    Provenance:
        training_coverage: what ``musenet train`` saw (:func:`musenet_hf.training.training_config.training_coverage`):
            ``{"labels": {label: {instrumentation: pieces}}, "revoiced": [instruments],
            "drop_instrumentation": share}``; the pipeline warns on requests outside it, and
            :mod:`musenet_hf.generation.styles` reads which styles are trained from it. The fine-tuning
            examples write their own data's here, with ``fine_tuned_from``.

    Sampling settings (checkpoints saved before the generation config held them): ``guidance``,
        ``guidance_against`` and ``sampling_by_label`` (``{label: {setting: value, "revoiced": {...}}}``;
        before that ``guidance_by_label``) are kept as they were saved and read into the presets of
        :class:`~musenet_hf.generation.generation_config.MuseNetGenerationConfig` (which checks them);
        new checkpoints keep every sampling setting in ``generation_config.json``.
    """

    model_type = "musenet"
    keys_to_ignore_at_inference = ["cache"]
    # The GPT-2 names, so code written for GPT-2 configs can read ours.
    attribute_map = {
        "n_embd": "hidden_size",
        "n_layer": "num_hidden_layers",
        "n_head": "num_attention_heads",
        "n_positions": "max_position_embeddings",
    }

    # network
    vocab_size: int = 4837
    hidden_size: int = 384
    num_hidden_layers: int = 8
    num_attention_heads: int = 6
    intermediate_size: int | None = None
    max_position_embeddings: int = 1024
    hidden_act: str = "gelu_new"
    embd_dropout: float = 0.1
    resid_dropout: float = 0.1
    attn_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True

    # vocabulary
    num_note_tokens: int = 3968
    first_wait_token_id: int = 3968
    num_wait_tokens: int = 128
    wait_unit_seconds: float = 0.01
    bos_token_id: int | None = 4096
    eos_token_id: int | list[int] | None = 4097
    pad_token_id: int | None = 4836

    # structural embeddings
    use_time_embedding: bool = True
    max_time_positions: int = 512
    time_bucket_units: int = 10
    use_chord_embedding: bool = True
    num_chord_positions: int = 64
    use_part_embedding: bool = True
    num_parts: int = 128
    use_countdown_embedding: bool = True
    num_countdown: int = 128
    countdown_step_seconds: float = 1.0
    use_sounding_embedding: bool = False
    mask_silent_note_offs: bool = False
    mask_end_while_sounding: bool = False
    note_slots: list | None = None
    drum_instrument: int | None = None
    use_composer_embedding: bool = False
    composer_token_ids: list | None = None
    structural_init_std: float | None = None

    # attention
    attention_layout: str = "full"
    attention_block_size: int = 64
    attention_stride: int = 256
    attention_c: int = 64
    attention_combine: str = "split_heads"
    attention_backend: str = "auto"

    # critic
    use_critic: bool = True
    critic_hidden_size: int = 256
    critic_loss_weight: float = 0.1

    # what the model was trained on
    training_coverage: dict | None = None

    # sampling settings of checkpoints saved before generation_config.json held them (kept as loaded)
    guidance: float | None = None
    guidance_against: str | None = None
    sampling_by_label: dict | None = None

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        legacy = kwargs.pop("guidance_by_label", None)  # the name before December 2026
        if legacy and not self.sampling_by_label:
            self.sampling_by_label = legacy
        super().__post_init__(**kwargs)
        self.validate()

    @property
    def tracks_sounding_notes(self) -> bool:
        """Whether the model needs the sounding notes after each token (an embedding or a rule uses them)."""
        return bool(self.use_sounding_embedding or self.mask_silent_note_offs or self.mask_end_while_sounding)

    def validate(self) -> None:
        """Raise `ValueError` on settings the model cannot run with."""
        if self.tracks_sounding_notes and not self.note_slots:
            raise ValueError("use_sounding_embedding, mask_silent_note_offs and mask_end_while_sounding need note_slots "
                             "(from MuseNetVocabulary.model_config_kwargs())")
        if self.use_composer_embedding and not self.composer_token_ids:
            raise ValueError("use_composer_embedding needs composer_token_ids "
                             "(from MuseNetVocabulary.model_config_kwargs())")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.attention_layout not in ATTENTION_LAYOUTS:
            raise ValueError(f"attention_layout must be one of {ATTENTION_LAYOUTS}, got {self.attention_layout!r}")
        if self.attention_combine not in ATTENTION_COMBINES:
            raise ValueError(f"attention_combine must be one of {ATTENTION_COMBINES}, got {self.attention_combine!r}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(f"attention_backend must be one of {ATTENTION_BACKENDS}, got {self.attention_backend!r}")
        block, stride, c = self.attention_block_size, self.attention_stride, self.attention_c
        if block < 1 or stride < block or stride % block != 0:
            raise ValueError(f"attention_stride ({stride}) must be a positive multiple of attention_block_size ({block})")
        if self.attention_layout == "fixed" and (c < block or c % block != 0 or c > stride):
            raise ValueError(
                f"attention_c ({c}) must be a multiple of attention_block_size ({block}) and at most the stride ({stride})"
            )
        if not 0 <= self.num_note_tokens <= self.vocab_size:
            raise ValueError(f"num_note_tokens ({self.num_note_tokens}) exceeds vocab_size ({self.vocab_size})")
        if self.first_wait_token_id < 0 or self.first_wait_token_id + self.num_wait_tokens > self.vocab_size:
            raise ValueError(
                f"wait ids [{self.first_wait_token_id}, {self.first_wait_token_id + self.num_wait_tokens}) "
                f"do not fit in vocab_size ({self.vocab_size})"
            )
        for name in ("max_time_positions", "time_bucket_units", "num_chord_positions", "num_parts", "num_countdown"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.wait_unit_seconds <= 0 or self.countdown_step_seconds <= 0:
            raise ValueError("wait_unit_seconds and countdown_step_seconds must be positive")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


__all__ = ["MuseNetConfig"]
