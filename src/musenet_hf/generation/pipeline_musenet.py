"""The ``musenet-generation`` pipeline: a composer, instruments and a length in, MIDI out.

Example::

    >>> from transformers import pipeline
    >>> import musenet_hf  # registers the model classes and this pipeline
    >>> pipe = pipeline("musenet-generation", model=str(musenet_hf.bundled_checkpoint()))
    >>> out = pipe(composer="bach", instruments="piano,violin", seconds=60, num_samples=4,
    ...            rerank=True, steering="soft", seed=0)
    >>> out[0]["midi"].save("bach.mid"); out[0]["seconds"], out[0]["critic_score"]

Keyword inputs (also accepted as one dict as the first argument):
``composer`` (a name, or a pair to blend; any case), ``instruments`` (``"piano,violin"`` or a list;
any case), ``primer`` (a MIDI path, bytes or ``mido.MidiFile``) with ``primer_seconds`` (default: the
generation config's, 5 s) or ``primer_notes``, ``seconds`` (default 30), ``steering`` and
``strength``, ``temperature`` (0: greedy decoding), ``top_p``, ``top_k``, ``num_samples``,
``rerank``, ``seed``, ``threads``, ``guidance``, ``guidance_against``, ``min_voices``, ``max_note_seconds``,
``min_note_rate`` (the check's, below), and the long-form knobs ``max_window``, ``step``, ``tolerance``, ``max_polyphony``, ``progress``.

* **Length with a primer.** ``seconds`` counts the *new* music after the primer: the piece is
  the primer's first ``primer_seconds`` (the generation config's unless ``primer_seconds`` or
  ``primer_notes`` is given) and then about ``seconds`` more.
* **Sampling settings** not given in the call come from the model's generation config
  (:class:`~musenet_hf.generation.generation_config.MuseNetGenerationConfig`, the checkpoint's
  ``generation_config.json``): its defaults, then its presets for the prompt's first label (and for
  a *re-voiced* request, one naming an instrument the label's own training pieces never had).
  ``musenet list --model PATH`` prints them. The call's names map onto the settings as
  ``strength`` -> ``steering_strength`` and ``tolerance`` -> ``length_tolerance``.
* **Steering** ``"auto"`` (the usual default) is ``"soft"`` toward the instruments named, or, when
  none are named and there is no primer, toward the composer's usual instrumentation in the
  model's training data (``config.training_coverage``); otherwise off (a primer's
  instrumentation token alone asks for its instruments). Steering picks the instrument of each
  note-on, never whether one is struck: ``"soft"`` makes the requested instruments
  ``e**strength`` times likelier among note-ons, ``"hard"`` gives every note-on to them,
  ``"none"`` (or ``None``) leaves the model alone.
* **Guidance.** ``guidance`` is the classifier-free guidance scale on the composer/style token
  (:mod:`musenet_hf.generation.guidance`; 1 = off): each step the model also predicts the piece
  as if it had another label (``guidance_against``) or none (``"none"``), and the difference the
  label makes is amplified. It does nothing without a composer.
* **Texture.** ``min_voices``: time moves on only while that many notes sound; ``max_note_seconds``:
  no note lasts longer; ``max_polyphony``: the most notes at once (:mod:`musenet_hf.generation.texture`;
  0 turns each off).
* **Threads.** ``threads`` sets torch's CPU threads for the call (restored after); without it the
  environment variable ``MUSENET_THREADS`` does, and without that torch's setting stays. On a
  busy machine one thread is much faster than torch's default of one per core.
* **Ctrl-C** raises :class:`~musenet_hf.generation.generate.GenerationInterrupted` (a ``KeyboardInterrupt``)
  whose ``results`` are the samples as far as they got (no critic score), decodable as usual.
* **What the model never trained on** (a style whose token is untrained, instruments the style's
  training pieces never had; ``config.training_coverage``) is said once per kind of request, as a
  :class:`~musenet_hf.errors.CoverageWarning` at the caller's line, naming the nearest trained styles.

Returns a list with one dict per sample (best first with ``rerank=True``): ``midi``
(``mido.MidiFile``), ``tokens`` (ids, prompt included), ``seconds`` (the whole piece, primer
included), ``primer_seconds`` (the primer's share, 0 without one), ``critic_score`` (the critic
head's logit, averaged over windows; higher = more like real music), ``finished``, ``check``
(:func:`~musenet_hf.generation.piece_check.check_piece`: whether the new music does what was asked, by notes
per second, held notes and instruments; ``check["ok"]``, ``check["problems"]``; None when interrupted).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import torch
from transformers import Pipeline

from ..defaults import DEFAULT_PRIMER_SECONDS, MIN_NOTE_RATE
from ..errors import CoverageWarning
from ..loading import tokenizer_for_model
from ..model.modeling_musenet import register_auto_classes
from ..tokenizer.vocabulary import style_token
from ..training.critic import critic_scores, rerank
from .generate import (
    GenerationInterrupted,
    build_prompt,
    default_logits_processors,
    generate_long,
    split_prompt,
)
from .generation_config import MuseNetGenerationConfig, SamplingSettings
from .guidance import ComposerGuidanceLogitsProcessor
from .piece_check import check_piece
from .styles import trained_labels, unknown_style_message, untrained_style_message

TASK = "musenet-generation"
THREADS_ENV = "MUSENET_THREADS"  # torch CPU threads when the call does not say

_PROMPT = ("composer", "instruments", "primer", "primer_seconds", "primer_notes", "seconds", "tempo")
# the call's sampling settings and the generation config's names for them (resolved with the request)
_SETTINGS = {"steering": "steering", "strength": "steering_strength", "temperature": "temperature", "top_p": "top_p",
             "top_k": "top_k", "tolerance": "length_tolerance", "max_polyphony": "max_polyphony",
             "min_voices": "min_voices", "max_note_seconds": "max_note_seconds", "guidance": "guidance",
             "guidance_against": "guidance_against"}
_PREPROCESS = _PROMPT + tuple(_SETTINGS)
_FORWARD = ("num_samples", "seed", "max_window", "step", "progress", "max_new_tokens", "grammar", "threads")
_POSTPROCESS = ("rerank", "min_note_rate")


def resolve_threads(threads: Any = None) -> int | None:
    """``threads``, else ``$MUSENET_THREADS``, as a positive int (None: neither says)."""
    value = threads if threads is not None else os.environ.get(THREADS_ENV) or None
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        where = "threads" if threads is not None else f"${THREADS_ENV}"
        raise ValueError(f"{where} must be a positive whole number, got {value!r}")
    return n


def usual_instrumentation(coverage: dict[str, Any] | None, label: str) -> str | None:
    """The instrumentation token most of ``label``'s training pieces carried (``"piano_strings"``),
    from a model's ``config.training_coverage``; None when unknown."""
    counts = ((coverage or {}).get("labels") or {}).get(str(label).lower()) or {}
    counts = {k: n for k, n in counts.items() if k}
    return max(counts, key=counts.get) if counts else None


def label_instruments(coverage: dict[str, Any] | None, vocabulary: Any, label: str) -> set[str]:
    """The instrument names of ``label``'s own instrumentation tokens in a model's
    ``config.training_coverage`` (``{"piano"}`` for Palestrina), not those re-voicing moved it onto."""
    names: set[str] = set()
    for inst in (((coverage or {}).get("labels") or {}).get(str(label).lower()) or {}):
        if inst:
            names |= {vocabulary.instruments[i].name for i in vocabulary.instruments_for_groups(inst.split("_"))}
    return names


def is_revoiced(coverage: dict[str, Any] | None, vocabulary: Any, label: str | None, instruments: Any) -> bool:
    """Whether ``instruments`` asks for one that ``label``'s own training pieces never had (Palestrina on
    the clarinet): its music re-voiced. False when the model records no instrumentation for ``label``."""
    from .logits_processors import resolve_instruments

    own = label_instruments(coverage, vocabulary, label) if label else set()
    if not own or not instruments:
        return False
    return bool({vocabulary.instruments[i].name for i in resolve_instruments(vocabulary, instruments)} - own)


def coverage_warning(coverage: dict[str, Any] | None, vocabulary: Any, composer: Any, instruments: Any) -> str | None:
    """What a request asks for that the model never trained on, in one line (None: all seen): styles
    whose token is untrained, with the nearest trained ones (:mod:`musenet_hf.generation.styles`), and
    instruments the style's training pieces never had. Names it does not know are not its business
    (the pipeline raises for them).

    Args:
        coverage: the model's ``config.training_coverage`` (None: unknown, nothing to say).
        vocabulary: the tokenizer's vocabulary.
        composer: the requested composer/style (a name, a pair, or None).
        instruments: the requested instrument or group names (None: any).
    """
    if not coverage or not coverage.get("labels"):
        return None
    from .logits_processors import resolve_instruments

    labels = coverage["labels"]
    asked = [composer] if isinstance(composer, str) else list(composer or [])
    problems = [untrained_style_message(asked, coverage, vocabulary.composers)]
    if instruments:
        names = {vocabulary.instruments[i].name for i in resolve_instruments(vocabulary, instruments)}
        seen = set(coverage.get("revoiced", []))
        for label in asked or list(labels):
            seen |= label_instruments(coverage, vocabulary, label)
        missing = sorted(names - seen)
        if missing:
            problems.append(f"this model never trained on the instruments {', '.join(missing)} with this "
                            "composer/style: expect weaker music (held notes, stray instruments)")
    return "; ".join(p for p in problems if p) or None


class MuseNetGenerationPipeline(Pipeline):
    """Generates pieces with :func:`~musenet_hf.generation.generate.generate_long` (see the module docs)."""

    _load_tokenizer = None  # loaded when the checkpoint has one; else see tokenizer_for_model
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._warned: set[str] = set()
        if self.tokenizer is None or not hasattr(self.tokenizer, "vocabulary"):
            self.tokenizer = tokenizer_for_model(self.model)

    def __call__(self, inputs: dict[str, Any] | list | None = None, **kwargs: Any) -> Any:
        """``pipe(composer=..., seconds=...)`` or ``pipe({"composer": ...})``; see the module docs."""
        message = self.coverage_message({"composer": inputs} if isinstance(inputs, str) else inputs, kwargs)
        if message and message not in self._warned:  # once per request kind, not once per call
            self._warned.add(message)
            warnings.warn(message, CoverageWarning, stacklevel=2)  # at the caller's line, before the wait
        return super().__call__({} if inputs is None else inputs, **kwargs)

    def coverage_message(self, inputs: Any, kwargs: dict[str, Any]) -> str | None:
        """:func:`coverage_warning` for a call's inputs (a dict, or None) and keywords; None for a batch."""
        if inputs is not None and not isinstance(inputs, dict):
            return None
        fields = {**kwargs, **(inputs or {})}
        return coverage_warning(getattr(self.model.config, "training_coverage", None), self.tokenizer.vocabulary,
                                fields.get("composer"), fields.get("instruments") or None)

    def _sanitize_parameters(self, **kwargs: Any):
        unknown = set(kwargs) - set(_PREPROCESS + _FORWARD + _POSTPROCESS)
        if unknown:
            raise TypeError(f"unknown musenet-generation arguments: {', '.join(sorted(unknown))}")
        pick = lambda names: {k: kwargs[k] for k in names if kwargs.get(k) is not None}  # noqa: E731
        prompt = pick(_PREPROCESS)
        if "steering" in kwargs and kwargs["steering"] is None:
            prompt["steering"] = "none"  # said explicitly: no steering, whatever the default
        return prompt, pick(_FORWARD), pick(_POSTPROCESS)

    def generation_settings(self) -> MuseNetGenerationConfig:
        """The model's sampling defaults and presets (:meth:`MuseNetGenerationConfig.from_model`)."""
        return MuseNetGenerationConfig.from_model(self.model)

    def sampling_settings(self, label: str | None = None, revoiced: bool = False, **call: Any) -> SamplingSettings:
        """The settings of a request whose first label is ``label``: the model's defaults, its presets
        for ``label`` (and ``revoiced``), then the call's own (the pipeline's argument names, e.g.
        ``strength``; None: not given). Raises ``ValueError`` for a bad value and ``KeyError`` for a
        ``guidance_against`` label the vocabulary does not have."""
        unknown = set(call) - set(_SETTINGS)
        if unknown:
            raise TypeError(f"unknown sampling settings: {', '.join(sorted(unknown))}")
        settings = self.generation_settings().resolve(label, revoiced, **{_SETTINGS[k]: v for k, v in call.items()})
        if settings.guidance_against is not None:
            self.tokenizer.vocabulary.composer_id(settings.guidance_against)  # KeyError naming the labels
        return settings

    def preprocess(self, inputs: dict[str, Any] | str, **params: Any) -> dict[str, Any]:
        """Reads the request once: its prompt ids, its first label, its instruments and whether they
        re-voice the label, and its sampling settings (:meth:`sampling_settings`)."""
        if isinstance(inputs, str):
            inputs = {"composer": inputs}
        params = {**params, **{k: v for k, v in dict(inputs).items() if v is not None}}
        unknown = set(params) - set(_PREPROCESS)
        if unknown:
            raise TypeError(f"unknown prompt fields: {', '.join(sorted(unknown))}")
        call = {k: params.pop(k) for k in list(params) if k in _SETTINGS}
        seconds = float(params.pop("seconds", 30.0))
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive finite number, got {seconds}")
        for key in ("primer_seconds", "primer_notes"):
            value = params.get(key)
            if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value}")
        composer = params.get("composer")
        self._check_composers(composer)
        named = bool(params.get("instruments"))
        filled = self._fill_usual_instruments(params)
        label = composer if isinstance(composer, str) else (list(composer)[0] if composer else None)
        revoiced = named and is_revoiced(getattr(self.model.config, "training_coverage", None),
                                         self.tokenizer.vocabulary, label, params["instruments"])
        settings = self.sampling_settings(label, revoiced, **call)
        if params.get("primer") is not None and params.get("primer_seconds") is None and params.get("primer_notes") is None:
            params["primer_seconds"] = settings.primer_seconds
        return self._request(params, seconds, label, named, filled, settings)

    def _check_composers(self, composer: Any) -> None:
        """``KeyError`` saying what this model knows when a requested composer/style has no token."""
        v = self.tokenizer.vocabulary
        for name in [composer] if isinstance(composer, str) else list(composer or []):
            try:
                v.composer_id(name)
            except KeyError:  # say first what this model knows (labels with a token of their own)
                raise KeyError(unknown_style_message(v, name, getattr(self.model.config, "training_coverage",
                                                                      None))) from None

    def _fill_usual_instruments(self, params: dict[str, Any]) -> bool:
        """No instruments named and no primer: the label's usual instrumentation in the model's training
        data stands in (in ``params``); True when it did. Measured on the bundled model
        (docs/experiments.md): prompts without an instrumentation token close their notes as well, but
        their pieces are less like the label's real ones."""
        composer = params.get("composer")
        if params.get("instruments") is not None or params.get("primer") is not None or not isinstance(composer, str):
            return False
        usual = usual_instrumentation(getattr(self.model.config, "training_coverage", None), composer)
        if usual:
            params["instruments"] = usual.split("_")
        return bool(usual)

    def _request(self, params: dict[str, Any], seconds: float, label: str | None, named: bool, filled: bool,
                 settings: SamplingSettings) -> dict[str, Any]:
        """The request as ``_forward`` gets it: the prompt ids and what was read from the call."""
        v = self.tokenizer.vocabulary
        ids = build_prompt(self.tokenizer, **params)
        primer_seconds = v.seconds(split_prompt(v, ids)[1]) if params.get("primer") is not None else 0.0
        instruments = params.get("instruments")
        asked_from = ("the requested instruments" if named else f"{label}'s usual instruments" if filled
                      else "the primer's instruments")
        if instruments is None:  # steering follows the primer's instruments
            groups = [t for t in ids if v.is_instrumentation[t]]
            instruments = v.instrumentation_groups(groups[-1]) if groups else None
        steering = settings.steering
        if steering == "auto":  # soft toward the named (or the label's usual) instruments, else off
            steering = "soft" if named or filled else "none"
        # `seconds` counts the new music: the target length is the primer's plus that
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "seconds": primer_seconds + seconds,
                "primer_seconds": primer_seconds, "instruments": instruments, "label": label, "named": named,
                "usual": filled,
                "steering": None if steering == "none" else steering, "settings": settings, "asked_from": asked_from}

    def _forward(self, model_inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
        threads = resolve_threads(params.get("threads"))
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return self._generate(model_inputs, **params)
        finally:
            if threads is not None:
                torch.set_num_threads(before)

    def _processors(self, request: dict[str, Any]) -> list[Any]:
        """The logits processors of a request: guidance first (the rest act on it), then steering,
        texture, grammar and target length (:func:`default_logits_processors`)."""
        v, settings, steering = self.tokenizer.vocabulary, request["settings"], request["steering"]
        procs = default_logits_processors(
            v, request["seconds"], instruments=request["instruments"] if steering else None, steering=steering,
            strength=settings.steering_strength, tolerance=settings.length_tolerance, grammar=request["grammar"],
            max_polyphony=settings.max_polyphony, min_voices=settings.min_voices,
            max_note_seconds=settings.max_note_seconds)
        if settings.guidance != 1.0 and request["label"] is not None:
            procs.insert(0, ComposerGuidanceLogitsProcessor(self.model, v, settings.guidance,
                                                            against=settings.guidance_against))
        return procs

    def _generate(self, model_inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
        seconds = model_inputs["seconds"]
        if params.get("seed") is not None:
            torch.manual_seed(int(params["seed"]))
        procs = self._processors({**model_inputs, "grammar": params.get("grammar", True)})
        interrupted = False
        try:
            out = generate_long(
                self.model, self.tokenizer, model_inputs["input_ids"].tolist(), seconds,
                num_samples=int(params.get("num_samples", 1)), max_window=params.get("max_window"),
                step=params.get("step"), logits_processor=procs, max_new_tokens=params.get("max_new_tokens"),
                progress=params.get("progress", False), **model_inputs["settings"].generate_kwargs())
        except GenerationInterrupted as err:  # Ctrl-C: keep what was made, skip the critic
            out, interrupted = err.output, True
        scores = [math.nan] * len(out.sequences)
        if not interrupted:
            try:
                scores = critic_scores(self.model, self.tokenizer, out.sequences, seconds,
                                       max_window=params.get("max_window"))
            except KeyboardInterrupt:
                interrupted = True
        return {"sequences": out.sequences, "finished": out.finished, "seconds": out.seconds, "scores": scores,
                "primer_seconds": model_inputs.get("primer_seconds", 0.0), "interrupted": interrupted,
                "instruments": model_inputs.get("instruments"), "asked_from": model_inputs.get("asked_from"),
                "prompt_length": len(model_inputs["input_ids"])}

    def postprocess(self, model_outputs: dict[str, Any], rerank: bool = False,
                    min_note_rate: float = MIN_NOTE_RATE) -> list[dict[str, Any]]:
        n = len(model_outputs["sequences"])
        interrupted = bool(model_outputs.get("interrupted"))
        order = _rank(model_outputs["scores"]) if rerank and not interrupted else list(range(n))
        primer_seconds = float(model_outputs.get("primer_seconds", 0.0))
        results = []
        for i in order:
            ids = [int(t) for t in model_outputs["sequences"][i]]
            seconds = float(model_outputs["seconds"][i])
            check = None if interrupted else check_piece(  # what the new music is, and what fails the request
                self.tokenizer.vocabulary, ids, model_outputs["prompt_length"], seconds, primer_seconds,
                model_outputs.get("instruments"), model_outputs.get("asked_from") or "the requested instruments",
                float(min_note_rate))
            results.append({
                "midi": self.tokenizer.decode_to_midi(ids),  # closes every note still sounding at the end
                "tokens": ids,
                "seconds": seconds,
                "primer_seconds": primer_seconds,
                "critic_score": float(model_outputs["scores"][i]),
                "finished": bool(model_outputs["finished"][i]),
                "check": check,
            })
        if interrupted:
            raise GenerationInterrupted(results=results)
        return results


_rank = rerank  # the postprocess argument shadows the function's name


def register_pipeline() -> None:
    """Register ``musenet-generation`` (and the musenet Auto classes) with Transformers; idempotent."""
    from transformers import AutoModelForCausalLM
    from transformers.pipelines import PIPELINE_REGISTRY

    register_auto_classes()
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is not MuseNetGenerationPipeline:
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MuseNetGenerationPipeline, pt_model=AutoModelForCausalLM)


__all__ = ["DEFAULT_PRIMER_SECONDS", "TASK", "THREADS_ENV", "MuseNetGenerationPipeline", "coverage_warning",
           "register_pipeline", "resolve_threads", "trained_labels"]
