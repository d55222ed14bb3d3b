"""musenet-hf: MuseNet (OpenAI, 2019) for the Hugging Face ecosystem.

Importing the package registers the ``musenet`` model type with ``AutoConfig``,
``AutoModel``, ``AutoModelForCausalLM`` and ``AutoTokenizer``, and the
``musenet-generation`` pipeline, so checkpoints load with the standard Auto classes
and no remote code.
"""

from .errors import MidiReadError, MidiReadWarning

__version__ = "0.1.0"

__all__ = ["MidiReadError", "MidiReadWarning", "__version__"]
