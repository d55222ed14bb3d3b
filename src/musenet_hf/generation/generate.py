"""Generation: prompts and primers, long-form (sliding-window) generation.

Everything goes through the model's standard ``generate()``; what makes the output musical is
the logits processors of :mod:`musenet_hf.generation.logits_processors`.

* :func:`build_prompt`: ``[composer] [instrumentation] start [primer body]``.
* :func:`default_logits_processors`: grammar, target length and (optionally) instrument
  steering, sharing one state tracker.
* :func:`generate_long`: pieces longer than the context: a sliding window that always keeps the
  conditioning prefix, tells the model where the window sits in the piece
  (``piece_seconds``, ``time_offset_seconds``) and hands the processors the whole piece's state.

**Blending two composers.** MuseNet saw one composer token per piece. ``composer=("bach",
"mozart")`` puts both tokens in the prefix (``bach mozart piano start``): the attention sees both
and the result leans on whichever the model weighs more. This is an out-of-distribution prompt,
not an interpolation of the two styles' embeddings; it is the simplest honest thing the public
token layout allows, and it keeps the prefix a plain list of token ids that any tool can read.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ..model.cache import GrowingCache
from ..tokenizer.sounding import NoteKeys
from ..tokenizer.vocabulary import MuseNetVocabulary
from ..training.data import continuation_ids, sounding_note_ons
from .guidance import guidance_processors
from .logits_processors import (
    DEFAULT_STEERING_STRENGTH,
    MAX_SILENCE_SECONDS,
    InstrumentSteeringLogitsProcessor,
    MusicGrammarLogitsProcessor,
    NoteStateTracker,
    TargetLengthLogitsProcessor,
    resolve_instruments,
)
from .texture import MaxNoteLengthLogitsProcessor, MinVoicesLogitsProcessor


def vocabulary_of(tokenizer_or_vocabulary: Any) -> MuseNetVocabulary:
    """The vocabulary of a tokenizer, or the vocabulary itself (functions here take either)."""
    return getattr(tokenizer_or_vocabulary, "vocabulary", tokenizer_or_vocabulary)


# ---------------------------------------------------------------------------------- prompts
def build_prompt(
    tokenizer: Any,
    composer: str | Sequence[str] | None = None,
    instruments: Sequence[str] | str | None = None,
    primer: Any = None,
    primer_seconds: float | None = None,
    primer_notes: int | None = None,
    tempo: float | None = None,
) -> list[int]:
    """The prompt ids: ``[composer...] [instrumentation] start [tempo] [primer body]``.

    Args:
        tokenizer: a :class:`~musenet_hf.tokenizer.tokenization_musenet.MuseNetTokenizer`.
        composer: one composer/style name, a pair ``(a, b)`` to blend (both tokens go in the
            prefix, see the module notes), or None.
        instruments: instrument or group names (``"piano,violin"``, ``["piano", "strings"]``);
            None takes the primer's instruments, or no instrumentation token without a primer.
        primer: a MIDI file (path, bytes or ``mido.MidiFile``) whose opening starts the piece.
        primer_seconds: keep the primer's first N seconds (events at time <= N).
        primer_notes: or keep it up to and including its N-th note-on.
        tempo: the tempo token's bpm (beats clock only; default the primer's).
    Note-offs of notes still sounding at the cut are not added: the grammar processor knows
    from the prompt which notes sound and lets the model close them.
    """
    v = vocabulary_of(tokenizer)
    body: list[int] = []
    if primer is not None:
        encoded = tokenizer.encode_midi(primer, instruments=None, add_end=False)
        prefix, body = split_prompt(v, encoded)
        if instruments is None:
            groups = [t for t in prefix if v.is_instrumentation[t]]
            instruments = v.instrumentation_groups(groups[0]) if groups else None
        if tempo is None and v.config.clock == "beats":
            tempo = next((float(v.tempo_bpm[t]) for t in prefix if v.is_tempo[t]), None)
        body = cut_primer(v, body, primer_seconds, primer_notes)
    names = [v.instruments[i].name for i in resolve_instruments(v, instruments)] if instruments else None
    return v.prefix_ids(composer, names, tempo) + body


def cut_primer(vocabulary: MuseNetVocabulary, body: Sequence[int], seconds: float | None = None,
               notes: int | None = None) -> list[int]:
    """The opening of a body: events up to ``seconds`` (inclusive) or up to the ``notes``-th note-on."""
    v = vocabulary
    body = list(body)
    if seconds is not None:
        limit = int(round(seconds / v.wait_unit_seconds))
        units, keep = 0, 0
        for i, t in enumerate(body):
            units += int(v.wait_units[t])
            if units > limit:
                break
            keep = i + 1
        body = body[:keep]
    if notes is not None:
        count = 0
        for i, t in enumerate(body):
            count += bool(v.is_note_on[t])
            if count >= notes:
                body = body[: i + 1]
                break
    return body


def split_prompt(vocabulary: MuseNetVocabulary, ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """(conditioning prefix up to and including ``start`` and a tempo token after it, body)."""
    v = vocabulary
    ids = list(ids)
    if v.start_id not in ids:
        raise ValueError("the prompt has no start token: build it with build_prompt()")
    k = ids.index(v.start_id) + 1
    if k < len(ids) and v.is_tempo[ids[k]]:
        k += 1
    return ids[:k], ids[k:]


# ---------------------------------------------------------------------------------- processors
def default_logits_processors(
    vocabulary: MuseNetVocabulary,
    seconds: float | None = None,
    instruments: Sequence[str] | str | None = None,
    steering: str | None = None,
    strength: float = DEFAULT_STEERING_STRENGTH,
    tolerance: float = 0.1,
    grammar: bool = True,
    max_polyphony: int | None = None,
    min_voices: int | None = None,
    max_note_seconds: float | None = None,
) -> LogitsProcessorList:
    """Grammar, target length (when ``seconds``), steering (when ``steering`` and ``instruments``)
    and the texture rules of :mod:`musenet_hf.generation.texture` (when ``min_voices``, ``max_note_seconds``).

    The stateful processors share one :class:`NoteStateTracker`, so the state is computed once a
    step. Steering comes first: it only biases or removes note-ons, and the grammar mask after
    it is what guarantees validity. The grammar's first note comes within
    ``min(MAX_SILENCE_SECONDS, seconds / 2)``, well before the target length.
    """
    tracker = NoteStateTracker(vocabulary)
    procs: list[LogitsProcessor] = []
    if steering is not None:
        if not instruments:
            raise ValueError("steering needs instruments")
        procs.append(InstrumentSteeringLogitsProcessor(vocabulary, instruments, mode=steering, strength=strength))
    if min_voices is not None:
        if max_polyphony is not None and min_voices > max_polyphony:
            raise ValueError(f"min_voices ({min_voices}) cannot exceed max_polyphony ({max_polyphony})")
        procs.append(MinVoicesLogitsProcessor(vocabulary, min_voices, tracker=tracker))
    if max_note_seconds is not None:
        procs.append(MaxNoteLengthLogitsProcessor(vocabulary, max_note_seconds, tracker=tracker))
    if grammar:
        silence = MAX_SILENCE_SECONDS if seconds is None else min(MAX_SILENCE_SECONDS, 0.5 * seconds)
        procs.append(MusicGrammarLogitsProcessor(vocabulary, max_polyphony=max_polyphony, tracker=tracker,
                                                 max_silence_seconds=silence))
    if seconds is not None:
        procs.append(TargetLengthLogitsProcessor(vocabulary, seconds, tolerance=tolerance, tracker=tracker))
    return LogitsProcessorList(procs)


def _trackers(processors: Sequence[LogitsProcessor]) -> list[NoteStateTracker]:
    out: list[NoteStateTracker] = []
    for p in processors:
        t = getattr(p, "tracker", None)
        if isinstance(t, NoteStateTracker) and all(t is not o for o in out):
            out.append(t)
    return out


# ---------------------------------------------------------------------------------- long form
@dataclass
class LongFormOutput:
    """What :func:`generate_long` returns.

    Attributes:
        sequences: per sample, the full ids: prompt prefix, body (primer included), ``end`` if it came.
        prefix_length: length of the conditioning prefix at the start of every sequence.
        finished: per sample, whether it ended with ``end``.
        seconds: per sample, seconds of music.
        windows: one record per ``generate()`` call: ``body_start`` (index into the body of the
            window's first body token), ``rows`` (sample indices), ``time_offset_seconds`` (per
            row, the absolute time of the window's first token), ``new_tokens``.
    """

    sequences: list[list[int]]
    prefix_length: int
    finished: list[bool]
    seconds: list[float]
    windows: list[dict[str, Any]] = field(default_factory=list)


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`generate_long`, with what was generated so far.

    A ``KeyboardInterrupt``, so whatever does not catch it stops as on any Ctrl-C. ``output`` is the
    :class:`LongFormOutput` of every sample cut where it stood (not ended: decoding closes the
    notes still sounding); the ``musenet-generation`` pipeline re-raises it with ``results``, its
    usual list of dicts, instead.
    """

    def __init__(self, output: LongFormOutput | None = None, results: list[dict[str, Any]] | None = None):
        super().__init__("generation interrupted")
        self.output, self.results = output, results


def model_context_length(model: Any) -> int:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError("cannot tell the model's context length: pass max_window")


def padding_id(model: Any, vocabulary: MuseNetVocabulary) -> int:
    """A padding id the model can embed: the vocabulary's ``pad``, else the model's, else ``end_sample``.

    (A checkpoint's embedding table may stop before the vocabulary's ``pad``.)
    """
    size = model.config.vocab_size
    for cand in (vocabulary.pad_id, getattr(model.config, "pad_token_id", None), vocabulary.end_sample_id):
        if isinstance(cand, int) and 0 <= cand < size:
            return cand
    return 0


def accepts_structure(model: Any) -> bool:
    """Whether the model's forward takes ``piece_seconds`` and ``time_offset_seconds`` (MuseNet
    does; a plain causal LM such as the GPT-2 baseline does not)."""
    params = inspect.signature(model.forward).parameters
    return "piece_seconds" in params and "time_offset_seconds" in params


def takes_guidance_batch(model: Any) -> bool:
    """Whether the model's forward runs a guidance processor's unconditional rows in its own batch
    (MuseNet does: :mod:`musenet_hf.generation.guidance`)."""
    return "guidance_batch" in inspect.signature(model.forward).parameters


def _snap_cut(vocabulary: MuseNetVocabulary, body: torch.Tensor, cut: int, limit: int) -> int:
    """The first index in ``[cut, limit)`` right after a wait in every row, else ``cut``.

    A window that starts at a moment boundary gives its first chord the right note-in-chord
    indices (they count notes since the last wait).
    """
    if cut <= 0:
        return 0
    is_wait = vocabulary.torch_tables(body.device)["is_wait"]
    span = body[:, cut - 1: max(cut, limit) - 1]
    if span.shape[1] == 0:
        return cut
    all_wait = is_wait[span].all(dim=0)
    hits = all_wait.nonzero()
    return cut + int(hits[0]) if len(hits) else cut


@torch.no_grad()
def generate_long(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[int],
    seconds: float,
    num_samples: int = 1,
    max_window: int | None = None,
    step: int | None = None,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    max_new_tokens: int | None = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> LongFormOutput:
    """Generate ``num_samples`` pieces of about ``seconds`` from one prompt, past the context length.

    Each round calls ``model.generate()`` on a window cut as training windows are
    (:func:`~musenet_hf.training.data.continuation_ids`): the prompt's conditioning tokens (composer,
    instrumentation, start), the notes still sounding at the cut struck again, then
    ``body[cut:]``, where ``cut`` drops the oldest body tokens so that ``step`` new tokens fit in
    ``max_window``. The model is told the piece's length and the window's absolute start time
    (``piece_seconds``, ``time_offset_seconds``, when its forward accepts them) so its part and
    countdown embeddings follow the whole piece. The window holds the whole musical state, so the
    processors' :class:`NoteStateTracker` reads the notes from the window and only the clock from the
    cut. Rows whose windows differ in length run as separate batches; samples that end leave.

    Args:
        model: any causal LM with ``generate()`` (MuseNetForCausalLM, or GPT-2 for tests).
        tokenizer: the tokenizer or the vocabulary.
        prompt_ids: a prompt from :func:`build_prompt`.
        seconds: the requested length (the target-length processor ends pieces within its tolerance).
        num_samples: pieces generated together, as one batch.
        max_window: tokens per forward (default the model's context length).
        step: new tokens per round after the first (default a quarter of the window).
        logits_processor: default :func:`default_logits_processors` (grammar + target length).
        max_new_tokens: a safety cap on body tokens per sample (default 200 per second + a window).
        progress: show a tqdm bar in seconds of music (the slowest sample).
        generate_kwargs: passed to ``generate()`` (``do_sample`` defaults to True).
    Ctrl-C during a ``generate()`` call raises :class:`GenerationInterrupted` carrying the samples
    as far as they got (the interrupted call's tokens too, read from the processors' tracker).
    """
    from tqdm.auto import tqdm

    v = vocabulary_of(tokenizer)
    prefix, primer = split_prompt(v, prompt_ids)
    window, step = _window_and_step(model, len(prefix), max_window, step)
    procs = LogitsProcessorList(default_logits_processors(v, seconds) if logits_processor is None else logits_processor)
    trackers, has_target = _trackers(procs), any(isinstance(p, TargetLengthLogitsProcessor) for p in procs)
    budget = max_new_tokens if max_new_tokens is not None else int(200 * seconds) + window
    unit, device = v.wait_unit_seconds, model.device
    piece_seconds = _fill_generate_kwargs(model, v, seconds, generate_kwargs)

    body = torch.tensor(primer, dtype=torch.long, device=device).reshape(1, -1).repeat(num_samples, 1)
    rows = list(range(num_samples))  # sample index of each active row
    done: dict[int, list[int]] = {}  # the samples that stopped: their body ids
    finished, windows, state_tracker = [False] * num_samples, [], NoteStateTracker(v)
    bar = tqdm(total=round(seconds, 1), unit="s", desc="music", disable=not progress)
    generated, interrupted = 0, False
    while rows and generated < budget and not interrupted:
        length = body.shape[1]
        cut, units0, wins = _place_window(v, body, np.asarray(prefix, dtype=np.int64), state_tracker, window, step)
        n_new = min(window - max(len(w) for w in wins), budget - generated)
        sounding0 = _held_at_cut(v, body.cpu().numpy(), cut)
        new, interrupted = _generate_windows(model, wins, trackers, procs, generate_kwargs, cut, sounding0, units0,
                                             unit, n_new, piece_seconds)
        windows.append({"body_start": cut, "rows": list(rows), "new_tokens": int(new.shape[1]),
                        "time_offset_seconds": (units0.double() * unit).tolist()})
        generated += new.shape[1]
        body = torch.cat([body, new], dim=1)
        units = units0 + v.torch_tables(device)["wait_units"][body[:, cut:]].sum(dim=1)  # each row's clock now
        keep = _retire(v, rows, body, new, length, units, None if has_target else seconds, done, finished)
        _show_progress(bar, [float(units[r]) * unit for r in keep])
        rows, body = [rows[r] for r in keep], body[keep]
    for r_i, r in enumerate(rows):  # out of budget
        done[r] = body[r_i].tolist()
    bar.n = bar.total
    bar.close()
    for t in trackers:  # what they hold is the last window's
        t.reset()
    return _long_form_result(v, prefix, done, finished, windows, interrupted, generate_kwargs["pad_token_id"])


def _window_and_step(model: Any, prefix_length: int, max_window: int | None, step: int | None) -> tuple[int, int]:
    """Tokens a window holds (default the model's context) and new tokens a round after the first
    (default a quarter of it); ``ValueError`` when the prefix and a step do not fit."""
    window = max_window or model_context_length(model)
    step = step or max(1, window // 4)
    if prefix_length + step >= window:
        raise ValueError(f"window {window} too small for a {prefix_length}-token prefix and {step}-token steps")
    return window, step


def _show_progress(bar: Any, seconds: list[float]) -> None:
    """The bar at the slowest row still going (``seconds``: each one's music so far; none: unchanged)."""
    if seconds:
        bar.n = min(bar.total, round(min(seconds), 1))
        bar.refresh()


def _fill_generate_kwargs(model: Any, v: MuseNetVocabulary, seconds: float, generate_kwargs: dict[str, Any]) -> float | None:
    """Sampling, the padding id and ``end`` as EOS unless given (in ``generate_kwargs``); the piece's
    length for the model's part and countdown positions (None: its forward takes none)."""
    generate_kwargs.setdefault("do_sample", True)
    generate_kwargs.setdefault("pad_token_id", padding_id(model, v))
    generate_kwargs.setdefault("eos_token_id", v.end_id)
    return float(seconds) if accepts_structure(model) else None


def _long_form_result(v: MuseNetVocabulary, prefix: list[int], done: dict[int, list[int]], finished: list[bool],
                      windows: list[dict[str, Any]], interrupted: bool, pad: int) -> LongFormOutput:
    """Every sample's sequence (prefix + body) as :class:`LongFormOutput`; after Ctrl-C, raised in a
    :class:`GenerationInterrupted`, the padding of rows the interrupt cut short taken off."""
    if interrupted:  # rows of a batch the interrupt cut short were padded to the others' width
        for r, ids in done.items():
            while not finished[r] and ids and ids[-1] == pad:
                ids.pop()
    sequences = [list(prefix) + done[i] for i in range(len(finished))]
    result = LongFormOutput(sequences, len(prefix), finished, [v.seconds(s) for s in sequences], windows)
    if interrupted:
        raise GenerationInterrupted(result)
    return result


def _retire(v: MuseNetVocabulary, rows: list[int], body: torch.Tensor, new: torch.Tensor, length: int,
            units: torch.Tensor, seconds: float | None, done: dict[int, list[int]], finished: list[bool]) -> list[int]:
    """Move the rows that ended into ``done`` (up to their ``end``, marked ``finished``), and those
    past ``seconds`` (only without a target-length processor: ``seconds`` None otherwise) or
    given nothing new; returns the rows that go on."""
    is_end = new == v.end_id
    keep = []
    for r in range(len(rows)):
        if is_end[r].any():
            stop = length + int(is_end[r].nonzero()[0]) + 1
            done[rows[r]], finished[rows[r]] = body[r, :stop].tolist(), True
        elif (seconds is not None and units[r] * v.wait_unit_seconds >= seconds) or new.shape[1] == 0:
            done[rows[r]] = body[r].tolist()
        else:
            keep.append(r)
    return keep


def _place_window(v: MuseNetVocabulary, body: torch.Tensor, prefix: np.ndarray, state_tracker: NoteStateTracker,
                  window: int, step: int) -> tuple[int, torch.Tensor, list[np.ndarray]]:
    """Where the next window starts in the body ``(B, L)`` and what it holds.

    Each row's window is the training format (:func:`~musenet_hf.training.data.continuation_ids`):
    prefix, the notes sounding at the cut struck again, then the body from the cut. The window so
    holds the whole musical state, and the processors read it from the window (the clock from
    the cut). Returns the cut, each row's clock at the cut in wait units ``(B,)`` and the windows.
    """
    length = body.shape[1]
    room = window - len(prefix)
    body_np = body.cpu().numpy()
    # the notes sounding now will be struck again at the window's start: keep room for them
    reserve = min(max(len(sounding_note_ons(v, row)) for row in body_np), room // 2) if length else 0
    cut = max(0, length - (room - step - reserve))
    cut = _snap_cut(v, body, cut, min(length, cut + step)) if cut else 0
    # the piece's clock at the cut, from the whole body before it
    units0 = (state_tracker.compute(body[:, :cut]).units if cut
              else torch.zeros(len(body), dtype=torch.long, device=body.device))
    wins = [continuation_ids(v, prefix, row, cut, 1 << 30, add_end=False, max_again=room // 2)[0] for row in body_np]
    while window - max(len(w) for w in wins) < max(1, step // 2) and cut < length:
        cut = min(length, cut + max(len(w) for w in wins) - (window - max(1, step // 2)))  # more notes sounded at the cut
        units0 = state_tracker.compute(body[:, :cut]).units
        wins = [continuation_ids(v, prefix, row, cut, 1 << 30, add_end=False, max_again=room // 2)[0] for row in body_np]
    return cut, units0, wins


def _held_at_cut(v: MuseNetVocabulary, body: np.ndarray, cut: int) -> torch.Tensor:
    """``(B, instruments * 128)``: the notes of each row that sound at the window's start though the
    window does not strike them again (past ``max_again``) or releases them in its first moment
    (neither struck nor released in it): the piece's state through the body's first moment after
    the cut. The window's own events override it."""
    keys = NoteKeys.of_vocabulary(v)
    if not cut:
        return torch.zeros(len(body), keys.num_keys, dtype=torch.bool)
    # each row through its first moment after the cut: up to its first wait from there (or its end)
    waits = np.concatenate([v.is_wait[body[:, cut:]], np.ones((len(body), 1), dtype=bool)], axis=1)
    through = cut + waits.argmax(axis=1)  # (B,)
    held = np.where(np.arange(body.shape[1]) < through[:, None], body, v.pad_id)  # pad: not a note, changes nothing
    return keys.sounding_after(torch.from_numpy(held.astype(np.int64)))[0][:, : keys.num_keys].contiguous()


def _generate_windows(model: Any, wins: list[np.ndarray], trackers: list[NoteStateTracker],
                      procs: LogitsProcessorList, generate_kwargs: dict[str, Any], cut: int, sounding0: torch.Tensor,
                      units0: torch.Tensor, unit: float, n_new: int,
                      piece_seconds: float | None) -> tuple[torch.Tensor, bool]:
    """One round: ``generate()`` on the windows, rows whose windows have one length as one batch.

    Returns the new tokens ``(B, N)`` (rows that stopped early padded after their ``end``) and
    whether Ctrl-C came (then the interrupted call's tokens are those its trackers saw, and the
    groups after it add none)."""
    device = model.device
    sounding0, by_length = sounding0.to(device), {}
    musenet = takes_guidance_batch(model)
    for r, w in enumerate(wins):
        by_length.setdefault(len(w), []).append(r)
    new_rows: list[torch.Tensor | None] = [None] * len(wins)
    interrupted = False
    for members in by_length.values():
        win = torch.as_tensor(np.stack([wins[r] for r in members]), device=device)
        for t in trackers:
            if cut:
                t.set_initial_state(sounding0[members], units0[members], started=True)
            else:
                t.reset()
        kwargs = dict(generate_kwargs)
        if piece_seconds is not None:
            # float64: the model's part/countdown must not depend on float32 rounding of the length
            kwargs["piece_seconds"] = torch.full((len(members),), piece_seconds, dtype=torch.float64, device=device)
            kwargs["time_offset_seconds"] = units0[members].double() * unit
        guides = guidance_processors(procs)
        for g in guides:  # its unconditional side sits where this window sits
            g.begin_window(kwargs.get("piece_seconds"), kwargs.get("time_offset_seconds"))
        if musenet:  # a cache that grows without copying itself each step; both guidance sides in one forward
            kwargs["cache"] = GrowingCache(config=model.config)
            if len(guides) == 1:
                kwargs["guidance_batch"] = guides[0]
        try:
            out = model.generate(input_ids=win, attention_mask=torch.ones_like(win), max_new_tokens=n_new,
                                 logits_processor=procs, **kwargs)
        except KeyboardInterrupt:  # Ctrl-C: keep this call's tokens, as far as the trackers saw them
            interrupted = True
            seen = trackers[0]._ids if trackers else None
            ok = seen is not None and seen.shape[0] == len(members) and seen.shape[1] >= win.shape[1]
            out = seen if ok else win
        for i, r in enumerate(members):
            new_rows[r] = out[i, win.shape[1]:]
        if interrupted:
            break
    empty = torch.zeros(0, dtype=torch.long, device=device)
    filled = [x if x is not None else empty for x in new_rows]  # groups an interrupt skipped
    # a batch whose rows all ended stops early: pad its rows (after their `end`) to one width
    width = max(len(x) for x in filled)
    pad = generate_kwargs["pad_token_id"]
    return torch.stack([torch.cat([x, x.new_full((width - len(x),), pad)]) for x in filled]), interrupted

__all__ = [
    "GenerationInterrupted",
    "LongFormOutput",
    "build_prompt",
    "cut_primer",
    "split_prompt",
    "default_logits_processors",
    "generate_long",
    "accepts_structure",
    "model_context_length",
    "padding_id",
    "vocabulary_of",
]
