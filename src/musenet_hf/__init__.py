"""musenet-hf: MuseNet (OpenAI, 2019) for the Hugging Face ecosystem.

Importing the package registers the ``musenet`` model type with ``AutoConfig``,
``AutoModel``, ``AutoModelForCausalLM`` and ``AutoTokenizer``, and the
``musenet-generation`` pipeline, so checkpoints load with the standard Auto classes
and no remote code. :func:`bundled_checkpoint` is the bundled model's folder (an absolute path,
so it loads from any working directory).

**generate(), the Transformers way.** The logits processors that keep generated tokens music
(:class:`MusicGrammarLogitsProcessor`, :class:`InstrumentSteeringLogitsProcessor`,
:class:`TargetLengthLogitsProcessor`, the texture rules :class:`MinVoicesLogitsProcessor` and
:class:`MaxNoteLengthLogitsProcessor`, :class:`ComposerGuidanceLogitsProcessor`, sharing one
:class:`NoteStateTracker`), :func:`build_prompt` and :func:`default_logits_processors` are exported
here: build the prompt, pass the processors to ``model.generate(logits_processor=...)``
(``examples/generate_with_processors.py``).

**Offline.** Importing the package also switches the Hugging Face Hub off for the process
(``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``), so loading a checkpoint or a LoRA adapter never
waits on the network: a missing local folder fails at once, as a ``FileNotFoundError`` naming the
folder it looked for (:mod:`musenet_hf.local_paths`), whatever the working directory. Set either
variable yourself (e.g. ``HF_HUB_OFFLINE=0``) before the import to decide otherwise.
"""

import os as _os
import sys as _sys


def _go_offline() -> None:
    if "HF_HUB_OFFLINE" in _os.environ or "TRANSFORMERS_OFFLINE" in _os.environ:
        return  # the user has decided
    _os.environ["HF_HUB_OFFLINE"] = _os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = _sys.modules.get("huggingface_hub.constants")  # read at its import: imported already?
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


_go_offline()

from .loading import bundled_checkpoint  # noqa: E402
from .errors import CoverageWarning, MidiReadError, MidiReadWarning  # noqa: E402
from .tokenizer.vocabulary import MuseNetVocabulary  # noqa: E402

from ._version import __version__  # noqa: E402


def _register() -> None:
    from transformers import AutoTokenizer

    from .model.configuration_musenet import MuseNetConfig
    from .local_paths import explain_missing_folders
    from .model.modeling_musenet import register_auto_classes
    from .generation.pipeline_musenet import register_pipeline
    from .tokenizer.tokenization_musenet import MuseNetTokenizer

    register_auto_classes()
    AutoTokenizer.register(MuseNetConfig, slow_tokenizer_class=MuseNetTokenizer, exist_ok=True)
    register_pipeline()
    explain_missing_folders()


_register()

from .model.configuration_musenet import MuseNetConfig  # noqa: E402
from .generation.generate import build_prompt, default_logits_processors  # noqa: E402
from .generation.guidance import ComposerGuidanceLogitsProcessor  # noqa: E402
from .generation.logits_processors import (  # noqa: E402
    InstrumentSteeringLogitsProcessor,
    MusicGrammarLogitsProcessor,
    NoteStateTracker,
    TargetLengthLogitsProcessor,
)
from .model.modeling_musenet import MuseNetForCausalLM, MuseNetModel  # noqa: E402
from .generation.texture import MaxNoteLengthLogitsProcessor, MinVoicesLogitsProcessor  # noqa: E402
from .tokenizer.tokenization_musenet import MuseNetTokenizer  # noqa: E402

__all__ = [
    "ComposerGuidanceLogitsProcessor",
    "CoverageWarning",
    "InstrumentSteeringLogitsProcessor",
    "MaxNoteLengthLogitsProcessor",
    "MidiReadError",
    "MidiReadWarning",
    "MinVoicesLogitsProcessor",
    "MuseNetConfig",
    "MuseNetForCausalLM",
    "MuseNetModel",
    "MuseNetTokenizer",
    "MuseNetVocabulary",
    "MusicGrammarLogitsProcessor",
    "NoteStateTracker",
    "TargetLengthLogitsProcessor",
    "__version__",
    "build_prompt",
    "bundled_checkpoint",
    "default_logits_processors",
]
