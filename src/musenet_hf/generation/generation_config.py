"""Every sampling default of a MuseNet checkpoint, its per-label presets, and the one resolver.

:class:`MuseNetGenerationConfig` is a :class:`transformers.GenerationConfig` saved in the checkpoint's
``generation_config.json``. Beside Transformers' own sampling fields (``do_sample``, ``temperature``,
``top_p``, ``top_k``) it holds MuseNet's: instrument steering, composer guidance, the texture rules,
the primer's default length and the length tolerance, and ``presets``: a list of

    {"when": {"label": "palestrina", "revoiced": true}, "set": {"min_voices": 2}}

entries that change settings for requests whose first composer/style label is ``label`` (and, with
``"revoiced": true``, only for those that ask for an instrument the label's own training pieces
never had). :meth:`MuseNetGenerationConfig.resolve` is the one place a request's settings are decided:
the config's defaults, then every matching preset in list order, then the call's own values;
:func:`check_setting` the one place a value is validated. Checkpoints saved before this class kept
their per-label settings in ``config.json`` (``guidance``, ``guidance_against``,
``sampling_by_label``); :meth:`MuseNetGenerationConfig.from_model` reads those into presets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from transformers import GenerationConfig

from ..defaults import DEFAULT_GUIDANCE, DEFAULT_PRIMER_SECONDS, DEFAULT_STEERING_STRENGTH
from ..tokenizer.vocabulary import style_token

STEERING_MODES = ("auto", "soft", "hard", "none")


@dataclass(frozen=True)
class SamplingSettings:
    """The settings of one request, resolved (:meth:`MuseNetGenerationConfig.resolve`).

    Attributes:
        do_sample, temperature, top_p, top_k: Transformers' sampling (``temperature`` 0: greedy).
        steering: ``"auto"`` (soft toward the named or the label's usual instruments, off with a
            primer), ``"soft"``, ``"hard"`` or ``"none"``.
        steering_strength: the soft steering odds, in logits.
        guidance: the composer guidance scale (1 = off).
        guidance_against: the label guidance steers away from (None: no label).
        max_polyphony: the most notes at once (None: no limit).
        min_voices: time moves on only while this many notes sound (None: off).
        max_note_seconds: no note lasts longer (None: off).
        primer_seconds: how much of a primer opens the piece when the request does not say.
        length_tolerance: how far from the requested length a piece may end (0.1: 10%).
    """

    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 0
    steering: str = "auto"
    steering_strength: float = DEFAULT_STEERING_STRENGTH
    guidance: float = DEFAULT_GUIDANCE
    guidance_against: str | None = None
    max_polyphony: int | None = None
    min_voices: int | None = None
    max_note_seconds: float | None = None
    primer_seconds: float = DEFAULT_PRIMER_SECONDS
    length_tolerance: float = 0.1

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of Transformers' ``generate()`` these settings stand for."""
        if not self.do_sample or self.temperature == 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}


SETTING_NAMES = tuple(f.name for f in fields(SamplingSettings))
_OFF_WHEN_ZERO = ("max_polyphony", "min_voices", "max_note_seconds")  # 0 or None: off


def check_setting(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` takes it (``"none"`` and 0 turn the optional ones off);
    ``ValueError`` naming the setting and what it accepts otherwise."""
    if name not in SETTING_NAMES:
        raise ValueError(f"unknown sampling setting {name!r}; the settings are {', '.join(SETTING_NAMES)}")
    if name == "do_sample":
        if not isinstance(value, bool):
            raise ValueError(f"do_sample must be true or false, got {value!r}")
        return value
    if name == "steering":
        value = "none" if value in (None, False) else str(value).lower()
        if value not in STEERING_MODES:
            raise ValueError(f"steering must be one of {', '.join(STEERING_MODES)}, got {value!r}")
        return value
    if name == "guidance_against":
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        if not isinstance(value, str) or not value:
            raise ValueError(f"guidance_against must be a composer/style name or 'none', got {value!r}")
        return value.lower()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        if value is None and name in _OFF_WHEN_ZERO:
            return None
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if name in ("max_polyphony", "min_voices", "top_k"):
        if value < 0 or int(value) != value:
            raise ValueError(f"{name} must be a whole number >= 0{' (0: off)' if name != 'top_k' else ''}, got {value!r}")
        value = int(value)
    elif name == "top_p" and not 0 < value <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {value!r}")
    elif name == "length_tolerance" and not 0 <= value < 1:
        raise ValueError(f"length_tolerance must be in [0, 1), got {value!r}")
    elif name != "steering_strength" and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if name in _OFF_WHEN_ZERO:
        return value or None
    return float(value) if name not in ("top_k",) else value


def check_preset(preset: Any, where: str = "presets") -> dict[str, Any]:
    """A preset ``{"when": {"label": ..., "revoiced": ...}, "set": {...}}``, checked and normalised."""
    if not isinstance(preset, dict) or set(preset) != {"when", "set"}:
        raise ValueError(f"{where} must be {{'when': {{'label': ...}}, 'set': {{...}}}}, got {preset!r}")
    when, values = preset["when"], preset["set"]
    if not isinstance(when, dict) or not isinstance(when.get("label"), str) or set(when) - {"label", "revoiced"}:
        raise ValueError(f"{where}['when'] needs a 'label' (a composer/style name) and may say 'revoiced', got {when!r}")
    if "revoiced" in when and not isinstance(when["revoiced"], bool):
        raise ValueError(f"{where}['when']['revoiced'] must be true or false, got {when['revoiced']!r}")
    if not isinstance(values, dict) or not values:
        raise ValueError(f"{where}['set'] must be a non-empty dict of settings, got {values!r}")
    return {"when": {**when, "label": style_token(when["label"], -1)},
            "set": {k: check_setting(k, v) for k, v in values.items()}}


def _shown(value: Any) -> str:
    """A setting's value as ``musenet list`` prints it (None: off)."""
    return "off" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class MuseNetGenerationConfig(GenerationConfig):
    """A MuseNet checkpoint's sampling defaults and per-label presets (see the module docs).

    Args:
        steering, steering_strength, guidance, guidance_against, max_polyphony, min_voices,
        max_note_seconds, primer_seconds, length_tolerance: defaults of :class:`SamplingSettings`.
        presets: list of ``{"when": {"label", "revoiced"?}, "set": {setting: value}}``.
        kwargs: Transformers' ``GenerationConfig`` fields (``do_sample`` defaults to True, ``top_p``
            to 0.95, ``top_k`` to 0: nucleus sampling, as MuseNet was sampled).
    """

    def __init__(self, steering: str = "auto", steering_strength: float = DEFAULT_STEERING_STRENGTH,
                 guidance: float = DEFAULT_GUIDANCE, guidance_against: str | None = None,
                 max_polyphony: int | None = None, min_voices: int | None = None,
                 max_note_seconds: float | None = None, primer_seconds: float = DEFAULT_PRIMER_SECONDS,
                 length_tolerance: float = 0.1, presets: list[dict[str, Any]] | None = None, **kwargs: Any):
        kwargs.setdefault("do_sample", True)
        kwargs.setdefault("top_p", 0.95)
        kwargs.setdefault("top_k", 0)
        kwargs["_from_model_config"] = False  # its MuseNet fields are its own: keep them when loaded
        super().__init__(**kwargs)
        own = dict(steering=steering, steering_strength=steering_strength, guidance=guidance,
                   guidance_against=guidance_against, max_polyphony=max_polyphony, min_voices=min_voices,
                   max_note_seconds=max_note_seconds, primer_seconds=primer_seconds, length_tolerance=length_tolerance)
        for name, value in own.items():
            setattr(self, name, check_setting(name, value))
        self.presets = [check_preset(p, f"presets[{i}]") for i, p in enumerate(presets or [])]

    def defaults(self) -> dict[str, Any]:
        """Every setting's default, before presets: ``{name: value}`` over :data:`SETTING_NAMES`."""
        base = {name: getattr(self, name, None) for name in SETTING_NAMES}
        base["temperature"] = 1.0 if base["temperature"] is None else base["temperature"]
        return base

    def matching_presets(self, label: str | None, revoiced: bool = False) -> list[dict[str, Any]]:
        """The presets that apply to a request whose first label is ``label``, in the order they apply."""
        if not label:
            return []
        label = style_token(label, -1)
        return [p for p in self.presets
                if p["when"]["label"] == label and p["when"].get("revoiced", revoiced) == revoiced]

    def resolve(self, label: str | None = None, revoiced: bool = False, **overrides: Any) -> SamplingSettings:
        """The settings of a request: defaults, then the presets for ``label`` (and ``revoiced``),
        then ``overrides`` (the call's own values; None means not given)."""
        values = self.defaults()
        for preset in self.matching_presets(label, revoiced):
            values.update(preset["set"])
        for name, value in overrides.items():
            if value is not None:
                values[name] = check_setting(name, value)
        return SamplingSettings(**values)

    @classmethod
    def from_legacy(cls, model_config: Any, **kwargs: Any) -> "MuseNetGenerationConfig":
        """The settings of a checkpoint saved before this class, from its model config: ``guidance``,
        ``guidance_against`` (and any of ``max_polyphony``, ``min_voices``, ``max_note_seconds``) as
        defaults, ``sampling_by_label`` (``{label: {setting: value, "revoiced": {...}}}``) as presets."""
        for name in ("guidance", "guidance_against", "max_polyphony", "min_voices", "max_note_seconds"):
            value = getattr(model_config, name, None)
            if value is not None and name not in kwargs:
                kwargs[name] = value
        presets = list(kwargs.pop("presets", None) or [])
        by_label = getattr(model_config, "sampling_by_label", None) or getattr(model_config, "guidance_by_label", None)
        for label, entry in (by_label or {}).items():
            entry = dict(entry)
            revoiced = entry.pop("revoiced", None)
            if entry:
                presets.append({"when": {"label": label}, "set": entry})
            if revoiced:
                presets.append({"when": {"label": label, "revoiced": True}, "set": dict(revoiced)})
        return cls(presets=presets, **kwargs)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "MuseNetGenerationConfig":
        """A checkpoint folder's settings, from its ``generation_config.json`` (and, for a checkpoint
        saved before this class, its ``config.json``), without loading the model."""
        folder = Path(folder)
        read = lambda name: json.loads((folder / name).read_text()) if (folder / name).is_file() else {}  # noqa: E731
        return cls._from_saved(read("generation_config.json"), SimpleNamespace(**read("config.json")))

    def describe(self) -> list[str]:
        """The settings in words, one line each: the defaults, then each preset (``musenet list``)."""
        base = self.defaults()
        lines = ["defaults: " + ", ".join(f"{k} {_shown(v)}" for k, v in base.items())]
        for p in self.presets:
            when = p["when"]["label"] + (" re-voiced" if p["when"].get("revoiced") else "")
            lines.append(f"{when}: " + ", ".join(f"{k} {_shown(v)}" for k, v in p["set"].items()))
        return lines

    @classmethod
    def from_model(cls, model: Any) -> "MuseNetGenerationConfig":
        """The model's generation config as this class: its own when it already is one (a
        checkpoint's ``generation_config.json`` with MuseNet's fields), else read from the older
        layout (:meth:`from_legacy`), keeping the Transformers fields it has."""
        current = getattr(model, "generation_config", None)
        if isinstance(current, cls):
            return current
        return cls._from_saved(current.to_diff_dict() if current is not None else {}, model.config)

    @classmethod
    def _from_saved(cls, saved: dict[str, Any], model_config: Any) -> "MuseNetGenerationConfig":
        """A saved generation config's fields as this class: as they are when they are MuseNet's own
        (``presets``, ``steering``), else with the older layout's settings from ``model_config``."""
        saved = {k: v for k, v in saved.items() if k not in ("transformers_version", "_from_model_config")}
        if "presets" in saved or "steering" in saved:
            return cls(**saved)
        return cls.from_legacy(model_config, **saved)


__all__ = ["MuseNetGenerationConfig", "SETTING_NAMES", "STEERING_MODES", "SamplingSettings", "check_preset",
           "check_setting"]
