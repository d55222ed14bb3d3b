"""MuseNet's input embeddings: the token and position embeddings plus the structural ones.

**time** (time since the window start, so every token at the same moment shares it), **chord**
(n-th note since the last wait), **part** (which of 128 time slices of the whole piece),
**countdown** (time left to the end of the piece), **sounding** (the notes that sound at each
token) and **composer** (the composer/style tokens of the prefix, at every token after them).
Time and chord come from the ids themselves (a wait-length and an is-note table over the
vocabulary, then cumulative sums); part and countdown also need the piece's length
``piece_seconds`` and the window's start ``time_offset_seconds``. The tables are derived from the
config (:func:`wait_units_table`, :func:`is_note_table`, :func:`note_key_tables`), never learned.
Used by :class:`~musenet_hf.model.modeling_musenet.MuseNetModel`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import logging

from ..tokenizer.sounding import NoteKeys
from .configuration_musenet import MuseNetConfig

logger = logging.get_logger(__name__)

STRUCTURE_KEYS = ("time_ids", "chord_ids", "part_ids", "countdown_ids", "sounding_notes", "composers_seen")


def wait_units_table(config: MuseNetConfig) -> torch.Tensor:
    """(V,) long: how many clock units each id waits (0 for everything but waits)."""
    table = torch.zeros(config.vocab_size, dtype=torch.long)
    first = config.first_wait_token_id
    table[first : first + config.num_wait_tokens] = torch.arange(1, config.num_wait_tokens + 1)
    return table


def is_note_table(config: MuseNetConfig) -> torch.Tensor:
    """(V,) bool: which ids are notes (note-on or note-off)."""
    table = torch.zeros(config.vocab_size, dtype=torch.bool)
    table[: config.num_note_tokens] = True
    return table


def note_key_tables(config: MuseNetConfig) -> NoteKeys:
    """The sounding-notes tables of the config's note slots (:class:`~musenet_hf.tokenizer.sounding.NoteKeys`:
    each id's key, note-ons, each key's note-off id, ...); drums never sound."""
    return NoteKeys.build(config.note_slots or [], config.drum_instrument, config.vocab_size)


def composer_slot_table(config: MuseNetConfig) -> torch.Tensor:
    """(vocab_size,) long: each composer/style id's row of the composer table, -1 for other ids."""
    slots = [-1] * config.vocab_size
    for row, token_id in enumerate(config.composer_token_ids or []):
        if 0 <= token_id < config.vocab_size:
            slots[token_id] = row
    return torch.tensor(slots, dtype=torch.long)


def _per_sequence(value, device) -> torch.Tensor | float | None:
    """Seconds per sequence: None, a float (every row), or a (B, 1) float64 tensor."""
    if value is None or isinstance(value, (int, float)):
        return value
    return torch.as_tensor(value, dtype=torch.float64, device=device).reshape(-1, 1)


class MuseNetEmbeddings(nn.Module):
    """Token + position + time + chord + part + countdown (+ sounding, composer) embeddings, then dropout."""

    def __init__(self, config: MuseNetConfig):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, h)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, h)
        self.embed_time = nn.Embedding(config.max_time_positions, h) if config.use_time_embedding else None
        self.embed_chord = nn.Embedding(config.num_chord_positions, h) if config.use_chord_embedding else None
        self.embed_part = nn.Embedding(config.num_parts, h) if config.use_part_embedding else None
        self.embed_countdown = nn.Embedding(config.num_countdown, h) if config.use_countdown_embedding else None
        note_keys = note_key_tables(config)
        self.num_keys = note_keys.num_keys
        self.track_sounding = config.tracks_sounding_notes
        self.embed_sounding = nn.Embedding(self.num_keys, h) if config.use_sounding_embedding else None
        num_composers = len(config.composer_token_ids or [])
        self.embed_composer = nn.Embedding(num_composers, h) if config.use_composer_embedding else None
        self.dropout = nn.Dropout(config.embd_dropout)
        # Derived from the config, not learned: kept out of the checkpoint, refilled by `_init_weights`.
        self.register_buffer("wait_units", wait_units_table(config), persistent=False)
        self.register_buffer("is_note", is_note_table(config), persistent=False)
        for name, table in note_keys.tables().items():  # note_key, strikes, off_id, slot_instrument, is_off
            self.register_buffer(name, table, persistent=False)
        self.register_buffer("composer_slot", composer_slot_table(config), persistent=False)

    def refill_vocabulary_tables(self, config: MuseNetConfig) -> None:
        """Rebuild the buffers derived from the vocabulary for ``config`` (after the vocabulary
        grew: ``resize_token_embeddings`` adds token rows, these tables must grow with them)."""
        device = self.wait_units.device
        tables = {"wait_units": wait_units_table(config), "is_note": is_note_table(config),
                  "composer_slot": composer_slot_table(config), **note_key_tables(config).tables()}
        for name, table in tables.items():
            setattr(self, name, table.to(device))

    @property
    def note_keys(self) -> NoteKeys:
        """The sounding-notes tables, from this module's buffers (so on its device)."""
        return NoteKeys(**{name: getattr(self, name) for name in NoteKeys.__dataclass_fields__})

    def needs_history(self, given: dict, piece_seconds) -> bool:
        """Whether some enabled index would have to be derived from earlier tokens."""
        c = self.config
        return (
            (c.use_time_embedding and given.get("time_ids") is None)
            or (c.use_chord_embedding and given.get("chord_ids") is None)
            or (self.track_sounding and given.get("sounding_notes") is None)
            or (c.use_composer_embedding and given.get("composers_seen") is None)
            or (
                piece_seconds is not None
                and (
                    (c.use_part_embedding and given.get("part_ids") is None)
                    or (c.use_countdown_embedding and given.get("countdown_ids") is None)
                )
            )
        )

    def structure_ids(
        self,
        input_ids: torch.LongTensor,
        piece_seconds: torch.Tensor | float | None = None,
        time_offset_seconds: torch.Tensor | float | None = None,
        last: int | None = None,
    ) -> dict[str, torch.LongTensor]:
        """Time, chord, part and countdown indices of every token of `input_ids`.

        Args:
            input_ids: (B, T), the window from its first token.
            piece_seconds: (B,) or a float, the whole piece's length; None = unknown.
            time_offset_seconds: (B,) or a float, absolute time of the window's first token (default 0).
            last: only the last `last` tokens' indices (what a decoding step feeds): the same values
                as the full call's last rows, and for one token the sounding notes and composers
                seen come from the state after the sequence, O(T + K) instead of O(T * K).
        Returns:
            `time_ids`, `chord_ids`, `part_ids`, `countdown_ids`, each (B, T) long, and with the
            sounding embedding `sounding_notes` (B, T, num_keys) bool: the notes sounding after
            each token; with the composer embedding `composers_seen` (B, T, num_composers) bool: the
            composer/style tokens at or before each token. With `last`, T is `last`.
        """
        # Runs at every generate() step on the whole sequence: kept to few tensor ops.
        c = self.config
        waits = self.wait_units[input_ids]  # (B, T) clock units waited by each token
        elapsed = waits.cumsum(1).sub_(waits)  # (B, T) units before each token (exclusive cumsum)
        time_ids = elapsed.div(c.time_bucket_units, rounding_mode="floor").clamp_(max=c.max_time_positions - 1)

        notes = self.is_note[input_ids]  # (B, T) bool
        notes_so_far = notes.cumsum(1)  # inclusive count of notes (long)
        # notes counted up to the latest wait; a running max works because the count never decreases
        at_last_wait = (notes_so_far * (waits > 0)).cummax(1).values
        chord_ids = (notes_so_far - at_last_wait - 1).mul_(notes).clamp_(max=c.num_chord_positions - 1)

        piece = _per_sequence(piece_seconds, input_ids.device)
        if piece is None or (isinstance(piece, float | int) and piece <= 0):
            part_ids = torch.zeros_like(input_ids)
            countdown_ids = torch.full_like(input_ids, c.num_countdown - 1)
        else:
            # float64: a token's part must not depend on how the sequence was cut into forward calls
            seconds = elapsed.double().mul_(c.wait_unit_seconds)
            offset = _per_sequence(time_offset_seconds, input_ids.device)
            if offset is not None:
                seconds = seconds + offset
            if isinstance(piece, torch.Tensor):
                known = piece > 0  # unknown lengths (<= 0) get the neutral part and countdown
                piece = torch.where(known, piece, 1.0)
            # The epsilons keep exact boundaries on one side whichever way the window offset and
            # the in-window time were summed (0.3 + 0.1 vs 0.4): float error is far below 1e-6.
            part = torch.floor(c.num_parts * seconds / piece + 1e-6).clamp_(0, c.num_parts - 1)
            left = torch.ceil((piece - seconds) / c.countdown_step_seconds - 1e-6).clamp_(0, c.num_countdown - 1)
            if isinstance(piece, torch.Tensor):
                part = part.masked_fill_(~known, 0)
                left = left.masked_fill_(~known, c.num_countdown - 1)
            part_ids, countdown_ids = part.long(), left.long()
        out = {"time_ids": time_ids, "chord_ids": chord_ids, "part_ids": part_ids, "countdown_ids": countdown_ids}
        if last is not None:
            out = {name: ids[:, -last:] for name, ids in out.items()}
        if self.track_sounding:
            out["sounding_notes"] = self._sounding_notes_of_last(input_ids, last)
        if self.embed_composer is not None:
            seen = self.composers_seen(input_ids)  # (B, T, C): C is a few dozen, so no shortcut
            out["composers_seen"] = seen if last is None else seen[:, -last:]
        return out

    def _sounding_notes_of_last(self, input_ids: torch.LongTensor, last: int | None) -> torch.Tensor:
        """(B, T or `last`, num_keys): the sounding notes after each token, or after the last `last`."""
        if last == 1:  # a decoding step: the state after the whole sequence
            return self.note_keys.sounding_after(input_ids)[0][:, None, : self.num_keys]
        state = self.sounding_notes(input_ids)
        return state if last is None else state[:, -last:]

    def composers_seen(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(B, T, num_composers) bool: the composer/style tokens among each token and those before it."""
        slot = self.composer_slot[input_ids]  # (B, T), -1 for other ids
        table = torch.arange(self.embed_composer.num_embeddings, device=input_ids.device)
        return (slot.unsqueeze(-1) == table).cummax(1).values

    def sounding_notes(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(B, T, num_keys) bool: which notes sound after each token of the window (a note sounds
        from its note-on to its note-off; a window strikes again what sounded at its cut, see
        `musenet_hf.training.data.continuation_ids`)."""
        return self.note_keys.sounding_after_each(input_ids)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor | None,
        position_ids: torch.LongTensor,
        structure: dict[str, torch.LongTensor | None],
        piece_seconds=None,
        time_offset_seconds=None,
    ) -> torch.Tensor:
        """Sum of the embeddings: (B, T, hidden_size).

        Args:
            input_ids: (B, T) or None when `inputs_embeds` (B, T, hidden) are given.
            position_ids: (B or 1, T).
            structure: explicit `time_ids` / `chord_ids` / `part_ids` / `countdown_ids` (B, T) or None;
                missing ones are derived from `input_ids` (or take neutral values without ids).
        """
        c = self.config
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = hidden + self.embed_positions(position_ids)
        tables = (
            ("time_ids", self.embed_time),
            ("chord_ids", self.embed_chord),
            ("part_ids", self.embed_part),
            ("countdown_ids", self.embed_countdown),
            ("sounding_notes", self.embed_sounding),
            ("composers_seen", self.embed_composer),
        )
        wanted = [(key, table) for key, table in tables if table is not None]
        if any(structure.get(key) is None for key, _ in wanted):
            if input_ids is not None:
                derived = self.structure_ids(input_ids, piece_seconds, time_offset_seconds)
            else:
                logger.warning_once("inputs_embeds without time/chord/part/countdown ids: using neutral indices")
                zeros = torch.zeros(hidden.shape[:2], dtype=torch.long, device=hidden.device)
                derived = {"time_ids": zeros, "chord_ids": zeros, "part_ids": zeros, "countdown_ids": zeros + c.num_countdown - 1}
                for key, table in (("sounding_notes", self.embed_sounding), ("composers_seen", self.embed_composer)):
                    if table is not None:
                        derived[key] = torch.zeros(*hidden.shape[:2], table.num_embeddings, dtype=torch.bool,
                                                   device=hidden.device)
            structure = {key: derived.get(key) if structure.get(key) is None else structure[key] for key in STRUCTURE_KEYS}
        for key, table in wanted:
            if key in ("sounding_notes", "composers_seen"):  # a sum over the set members: (B, T, K) @ (K, H)
                hidden = hidden + structure[key].to(table.weight.dtype) @ table.weight
            else:
                hidden = hidden + table(structure[key])
        return self.dropout(hidden)


__all__ = ["STRUCTURE_KEYS", "MuseNetEmbeddings", "composer_slot_table", "is_note_table", "note_key_tables",
           "wait_units_table"]
