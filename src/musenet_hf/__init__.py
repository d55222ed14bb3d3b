"""musenet-hf: MuseNet (OpenAI, 2019) for the Hugging Face ecosystem.

Importing the package registers the ``musenet`` model type with ``AutoConfig``,
``AutoModel``, ``AutoModelForCausalLM`` and ``AutoTokenizer``, and the
``musenet-generation`` pipeline, so checkpoints load with the standard Auto classes
and no remote code.
"""

from .errors import MidiReadError, MidiReadWarning
from .vocabulary import MuseNetVocabulary

__version__ = "0.1.0"


def _register() -> None:
    from transformers import AutoTokenizer

    from .configuration_musenet import MuseNetConfig
    from .modeling_musenet import register_auto_classes
    from .tokenization_musenet import MuseNetTokenizer

    register_auto_classes()
    AutoTokenizer.register(MuseNetConfig, slow_tokenizer_class=MuseNetTokenizer, exist_ok=True)
    try:
        from .pipeline_musenet import register_pipeline
    except ModuleNotFoundError as err:  # the generation module is optional while it is built
        if err.name != f"{__name__}.pipeline_musenet":
            raise
    else:
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
