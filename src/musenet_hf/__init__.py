"""musenet-hf: MuseNet (OpenAI, 2019) for the Hugging Face ecosystem.

Importing the package registers the ``musenet`` model type with ``AutoConfig``,
``AutoModel``, ``AutoModelForCausalLM`` and ``AutoTokenizer``, and the
``musenet-generation`` pipeline, so checkpoints load with the standard Auto classes
and no remote code.

**Offline.** Importing the package also switches the Hugging Face Hub off for the process
(``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``), so loading a checkpoint or a LoRA adapter never
waits on the network: a missing local folder fails at once. Set either variable yourself (e.g.
``HF_HUB_OFFLINE=0``) before the import to decide otherwise.
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

from .errors import MidiReadError, MidiReadWarning  # noqa: E402
from .vocabulary import MuseNetVocabulary  # noqa: E402

__version__ = "0.1.0"


def _register() -> None:
    from transformers import AutoTokenizer

    from .configuration_musenet import MuseNetConfig
    from .modeling_musenet import register_auto_classes
    from .pipeline_musenet import register_pipeline
    from .tokenization_musenet import MuseNetTokenizer

    register_auto_classes()
    AutoTokenizer.register(MuseNetConfig, slow_tokenizer_class=MuseNetTokenizer, exist_ok=True)
    register_pipeline()


_register()

from .configuration_musenet import MuseNetConfig  # noqa: E402
from .modeling_musenet import MuseNetForCausalLM, MuseNetModel  # noqa: E402
from .tokenization_musenet import MuseNetTokenizer  # noqa: E402

__all__ = [
    "MidiReadError",
    "MidiReadWarning",
    "MuseNetConfig",
    "MuseNetForCausalLM",
    "MuseNetModel",
    "MuseNetTokenizer",
    "MuseNetVocabulary",
    "__version__",
]
