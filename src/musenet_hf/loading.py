"""Model loading, in one place: the bundled model's folder, a checkpoint or LoRA adapter folder as a
model, and the tokenizer that goes with a model.

``musenet generate``/``list``, the ``musenet-generation`` pipeline, the demo, ``musenet evaluate``,
``musenet train-critic``, the composer map and the examples all load through here:

* :func:`bundled_checkpoint`: the bundled model's folder (``musenet_hf.bundled_checkpoint()``).
* :func:`load_model`: a local folder (a ``save_pretrained`` checkpoint, or a LoRA adapter merged into
  its base model, :func:`adapter_base_path`, with its own coverage, :func:`adapter_coverage`), offline.
* :func:`tokenizer_for_model`: the tokenizer saved with a model, else the preset its size matches.

Nothing here imports torch or transformers at module level: ``musenet generate`` checks its
arguments (the default model's folder included) before the package's heavy import (issue 34).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

BUNDLED = "musenet-small-music21"  # the model `musenet generate` uses without --model
ADAPTER_COVERAGE_FILE = "training_coverage.json"  # in a LoRA adapter folder: what it was fine-tuned on


def bundled_checkpoint() -> Path:
    """The bundled checkpoint ``musenet-small-music21``, wherever this install keeps it: an
    absolute path, so it loads from any working directory.

    A wheel (``pip install .``) carries it inside the package, as ``musenet_hf/bundled/<name>``
    (setup.py's ``build_py`` copies it there); a source checkout or an editable install reads the
    repository's ``checkpoints/<name>``. The package copy wins when both exist. When neither does,
    the source-tree path is returned and the caller reports it missing."""
    package = Path(__file__).resolve().parent
    installed = package / "bundled" / BUNDLED
    if (installed / "config.json").is_file():
        return installed
    return package.parents[1] / "checkpoints" / BUNDLED


def tokenizer_for_model(model: Any) -> Any:
    """The tokenizer saved with ``model`` (its ``vocabulary.json``), else the preset its size matches."""
    from .tokenizer.tokenization_musenet import VOCAB_FILE, MuseNetTokenizer

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


def adapter_base_path(adapter: str | Path) -> Path:
    """The base model folder of a LoRA adapter folder (``adapter_config.json``'s
    ``base_model_name_or_path``): absolute as recorded, else relative to the adapter folder, else to
    the working directory. Raises ``FileNotFoundError`` naming where it looked."""
    import json

    adapter = Path(adapter)
    recorded = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not recorded:
        raise FileNotFoundError(f"the LoRA adapter {adapter} does not record its base model "
                                "(adapter_config.json has no base_model_name_or_path)")
    base = Path(recorded).expanduser()
    looked = [base] if base.is_absolute() else [adapter / base, Path.cwd() / base]
    for cand in looked:
        if (cand / "config.json").is_file():
            return cand.resolve()
    raise FileNotFoundError(
        f"the base model of the LoRA adapter {adapter} is not there: it records {recorded!r}, and no model folder "
        f"is at {' nor at '.join(str(c) for c in looked)}. Put the base checkpoint back there, or edit "
        f"base_model_name_or_path in {adapter / 'adapter_config.json'} to its folder (nothing is downloaded)")


def adapter_coverage(adapter: str | Path) -> dict[str, Any] | None:
    """What a LoRA adapter was fine-tuned on (its ``training_coverage.json``, written by
    ``examples/finetune_lora.py``), which stands for its base model's coverage; None if not recorded."""
    import json

    path = Path(adapter) / ADAPTER_COVERAGE_FILE
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def load_model(path: str | Path, device: Any = None) -> Any:
    """A model from a local folder, offline: a checkpoint written by ``save_pretrained``, or a LoRA
    adapter folder (``adapter_config.json``; needs ``pip install -e ".[peft]"``), which is loaded on its
    base model (:func:`adapter_base_path`) and merged into it, with the adapter's own training
    coverage (:func:`adapter_coverage`) where it records one. Eval mode, on ``device`` when given.
    Raises ``FileNotFoundError`` for a missing folder or base model, ``ImportError`` without peft."""
    from transformers import AutoModelForCausalLM

    from .local_paths import missing_folder_message

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(missing_folder_message(path))
    if (path / "adapter_config.json").is_file():
        base = adapter_base_path(path)
        try:
            from peft import PeftModel
        except ImportError:
            raise ImportError(f"{path} is a LoRA adapter: loading it needs peft (pip install -e \".[peft]\")") from None
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
        with warnings.catch_warnings():  # peft calls a transformers property deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        coverage = adapter_coverage(path)
        if coverage is not None:  # what it was fine-tuned on, not the base's data
            model.config.training_coverage = coverage
    else:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    if device is not None:
        model = model.to(device)
    return model.eval()


__all__ = ["ADAPTER_COVERAGE_FILE", "BUNDLED", "adapter_base_path", "adapter_coverage", "bundled_checkpoint",
           "load_model", "tokenizer_for_model"]
