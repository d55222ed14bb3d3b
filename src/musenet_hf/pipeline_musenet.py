"""The ``musenet-generation`` pipeline: a composer, instruments and a length in, MIDI out.

Example::

    >>> from transformers import pipeline
    >>> import musenet_hf  # registers the model classes and this pipeline
    >>> pipe = pipeline("musenet-generation", model="checkpoints/musenet-small-music21")
    >>> out = pipe(composer="bach", instruments="piano,violin", seconds=60, num_samples=4,
    ...            rerank=True, steering="soft", seed=0)
    >>> out[0]["midi"].save("bach.mid"); out[0]["seconds"], out[0]["critic_score"]

Keyword inputs (also accepted as one dict as the first argument):
``composer`` (a name, or a pair to blend), ``instruments`` (``"piano,violin"`` or a list),
``primer`` (a MIDI path, bytes or ``mido.MidiFile``) with ``primer_seconds`` or ``primer_notes``,
``seconds`` (default 30), ``steering`` (``"soft"``, ``"hard"`` or None) and ``strength``,
``temperature``, ``top_p``, ``top_k``, ``num_samples``, ``rerank``, ``seed``, and the long-form
knobs ``max_window``, ``step``, ``tolerance``, ``max_polyphony``, ``progress``.

Returns a list with one dict per sample (best first with ``rerank=True``): ``midi``
(``mido.MidiFile``), ``tokens`` (ids, prompt included), ``seconds``, ``critic_score`` (the
critic head's logit, averaged over windows; higher = more like real music), ``finished``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import Pipeline

from .generation import build_prompt, critic_scores, default_logits_processors, generate_long, rerank

TASK = "musenet-generation"

_PREPROCESS = ("composer", "instruments", "primer", "primer_seconds", "primer_notes", "seconds", "tempo")
_FORWARD = ("steering", "strength", "temperature", "top_p", "top_k", "num_samples", "seed", "max_window",
            "step", "tolerance", "max_polyphony", "progress", "max_new_tokens", "grammar")
_POSTPROCESS = ("rerank",)


def tokenizer_for_model(model: Any) -> Any:
    """The tokenizer saved with ``model`` (its ``vocabulary.json``), else the preset its size matches."""
    from .tokenization_musenet import VOCAB_FILE, MuseNetTokenizer

    path = getattr(model, "name_or_path", "") or ""
    if path and (Path(path) / VOCAB_FILE).is_file():
        return MuseNetTokenizer.from_pretrained(path)
    size = model.config.vocab_size
    for preset in ("musenet", "extended"):
        tok = MuseNetTokenizer.from_preset(preset)
        v = tok.vocabulary
        # A checkpoint may stop before the trailing pad id: the notes and conditioning ids still match.
        if size == len(v) or (size == v.pad_id and v.pad_id == len(v) - 1):
            return tok
    raise ValueError(f"no tokenizer found for this model (vocab_size {size}): pass tokenizer=MuseNetTokenizer...")


def coverage_warning(coverage: dict[str, Any] | None, vocabulary: Any, composer: Any, instruments: Any) -> str | None:
    """What a request asks for that the model never trained on, as one sentence (None: all seen).

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
    known = sorted(lb for lb in labels if lb)
    problems = []
    for name in ([composer] if isinstance(composer, str) else list(composer or [])):
        if name.lower() not in labels:
            problems.append(f"composer/style {name!r} (it knows {', '.join(known)})")
    if instruments:
        names = {vocabulary.instruments[i].name for i in resolve_instruments(vocabulary, instruments)}
        seen = set(coverage.get("revoiced", []))
        for label in ([composer] if isinstance(composer, str) else list(composer or [])) or list(labels):
            for inst in labels.get(str(label).lower(), {}):
                seen |= {vocabulary.instruments[i].name for i in vocabulary.instruments_for_groups(inst.split("_"))
                         } if inst else set()
        missing = sorted(names - seen)
        if missing:
            problems.append(f"instruments {', '.join(missing)} with this composer/style")
    if not problems:
        return None
    return ("this model never trained on " + " nor ".join(problems)
            + ": expect weaker music (held notes, stray instruments); model.config.training_coverage lists what it trained on")


class MuseNetGenerationPipeline(Pipeline):
    """Generates pieces with :func:`~musenet_hf.generation.generate_long` (see the module docs)."""

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
        return super().__call__({} if inputs is None else inputs, **kwargs)

    def _sanitize_parameters(self, **kwargs: Any):
        unknown = set(kwargs) - set(_PREPROCESS + _FORWARD + _POSTPROCESS)
        if unknown:
            raise TypeError(f"unknown musenet-generation arguments: {', '.join(sorted(unknown))}")
        pick = lambda names: {k: kwargs[k] for k in names if kwargs.get(k) is not None}  # noqa: E731
        return pick(_PREPROCESS), pick(_FORWARD), pick(_POSTPROCESS)

    def preprocess(self, inputs: dict[str, Any] | str, **params: Any) -> dict[str, Any]:
        if isinstance(inputs, str):
            inputs = {"composer": inputs}
        params = {**params, **{k: v for k, v in dict(inputs).items() if v is not None}}
        unknown = set(params) - set(_PREPROCESS)
        if unknown:
            raise TypeError(f"unknown prompt fields: {', '.join(sorted(unknown))}")
        seconds = float(params.pop("seconds", 30.0))
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        instruments = params.get("instruments")
        ids = build_prompt(self.tokenizer, **params)
        message = coverage_warning(getattr(self.model.config, "training_coverage", None), self.tokenizer.vocabulary,
                                   params.get("composer"), instruments)
        if message and message not in self._warned:  # once per request kind, not once per call
            self._warned.add(message)
            warnings.warn(message, UserWarning, stacklevel=2)
        if instruments is None:  # steering follows the primer's instruments
            v = self.tokenizer.vocabulary
            groups = [t for t in ids if v.is_instrumentation[t]]
            instruments = v.instrumentation_groups(groups[-1]) if groups else None
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "seconds": seconds, "instruments": instruments}

    def _forward(self, model_inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
        v = self.tokenizer.vocabulary
        seconds = model_inputs["seconds"]
        if params.get("seed") is not None:
            torch.manual_seed(int(params["seed"]))
        steering = params.get("steering")
        procs = default_logits_processors(
            v, seconds, instruments=model_inputs["instruments"] if steering else None, steering=steering,
            strength=params.get("strength", 3.0), tolerance=params.get("tolerance", 0.1),
            grammar=params.get("grammar", True), max_polyphony=params.get("max_polyphony"))
        sampling = {k: params[k] for k in ("temperature", "top_p", "top_k") if k in params}
        sampling.setdefault("top_p", 0.95)
        sampling.setdefault("top_k", 0)
        out = generate_long(
            self.model, self.tokenizer, model_inputs["input_ids"].tolist(), seconds,
            num_samples=int(params.get("num_samples", 1)), max_window=params.get("max_window"),
            step=params.get("step"), logits_processor=procs, max_new_tokens=params.get("max_new_tokens"),
            progress=params.get("progress", False), **sampling)
        scores = critic_scores(self.model, self.tokenizer, out.sequences, seconds, max_window=params.get("max_window"))
        return {"sequences": out.sequences, "finished": out.finished, "seconds": out.seconds, "scores": scores}

    def postprocess(self, model_outputs: dict[str, Any], rerank: bool = False) -> list[dict[str, Any]]:
        n = len(model_outputs["sequences"])
        order = _rank(model_outputs["scores"]) if rerank else list(range(n))
        results = []
        for i in order:
            ids = [int(t) for t in model_outputs["sequences"][i]]
            results.append({
                "midi": self.tokenizer.decode_to_midi(ids),
                "tokens": ids,
                "seconds": float(model_outputs["seconds"][i]),
                "critic_score": float(model_outputs["scores"][i]),
                "finished": bool(model_outputs["finished"][i]),
            })
        return results


_rank = rerank  # the postprocess argument shadows the function's name


def register_pipeline() -> None:
    """Register ``musenet-generation`` (and the musenet Auto classes) with Transformers; idempotent."""
    from transformers import AutoModelForCausalLM
    from transformers.pipelines import PIPELINE_REGISTRY

    try:
        from .modeling_musenet import register_auto_classes
    except ImportError:  # the model module is optional for the pipeline (any causal LM works)
        pass
    else:
        register_auto_classes()
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is not MuseNetGenerationPipeline:
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MuseNetGenerationPipeline, pt_model=AutoModelForCausalLM)


__all__ = ["TASK", "MuseNetGenerationPipeline", "coverage_warning", "register_pipeline", "tokenizer_for_model"]
