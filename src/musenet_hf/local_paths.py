"""A model folder that is not there is called missing, from whatever folder the user works in.

Transformers reads a name that is no folder as a Hugging Face Hub id: with the Hub switched off
(``import musenet_hf`` does that, see the package docs) a mistyped or relative local path such as
``checkpoints/musenet-small-music21``, run from another folder, failed with "We couldn't connect to
'https://huggingface.co'" (issue 34). :func:`explain_missing_folders` makes Transformers' file
lookup say instead which folder it looked for; the error is still an ``OSError`` (a
``FileNotFoundError``), so code that catches Transformers' own keeps working.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any


def missing_folder_message(name: str | os.PathLike, hub: bool = False) -> str:
    """``model folder NAME not found (looked for /abs/NAME)``; ``hub``: and no cached Hub model by that name."""
    where = Path(name).expanduser().absolute()
    text = f"model folder {name} not found" + (f" (looked for {where})" if str(where) != str(name) else "")
    if hub:
        text += ("; nothing is downloaded: the Hugging Face Hub is off (HF_HUB_OFFLINE=1, which musenet_hf sets "
                 "unless you set it first) and no Hub model of that name is cached")
    return text


def explain_missing_folders() -> None:
    """Wrap ``transformers.utils.hub.cached_files`` (every ``from_pretrained`` and ``pipeline()``
    resolves files through it) so that a name that is no folder, and no cached or valid Hub id,
    raises :class:`FileNotFoundError` with :func:`missing_folder_message`. Idempotent."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    from transformers.utils import hub

    if getattr(hub.cached_files, "_musenet_explains", False):
        return
    original = hub.cached_files

    @functools.wraps(original)
    def cached_files(path_or_repo_id: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(path_or_repo_id, *args, **kwargs)
        except OSError as err:
            cause, offline = err.__cause__, bool(constants.HF_HUB_OFFLINE)
            if os.path.isdir(path_or_repo_id) or not (isinstance(cause, HFValidationError)
                                                       or offline and isinstance(cause, LocalEntryNotFoundError)):
                raise  # a folder, or the Hub is on and could not be reached: Transformers says it best
            # no valid Hub id at all, or offline and not cached: what was meant is a local folder, and
            # Transformers' "couldn't connect" would only mislead
            raise FileNotFoundError(missing_folder_message(path_or_repo_id, hub=offline)) from None

    cached_files._musenet_explains = True
    hub.cached_files = cached_files


__all__ = ["explain_missing_folders", "missing_folder_message"]
