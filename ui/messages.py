"""User-facing messages for every failure the app can meet: plain sentences, never a traceback."""
from __future__ import annotations

import logging

from preprocessing import (
    EmptyFileError, ImageTooLargeError, ImageTooSmallError, NoPersonError, NotAnImageError, PreprocessingError,
)
from stableviton.inputs import InputError
from stableviton.weights import MissingWeightsError

log = logging.getLogger("stableviton.app")



class SettingsError(ValueError):
    """A setting or mask the user gave that cannot be used; the message says what is allowed."""


NO_PERSON_PHOTO = "Please add a photo of yourself (upload or webcam) first."
NO_GARMENT_PHOTO = "Please add a garment photo (upload or pick an example) first."
NOT_PREPARED = "Press “Prepare” first: the try-on needs the checked mask."
NO_RESULT = "Run a try-on first: the inspector shows the attention maps of the last run."


def user_message(exc: BaseException, what: str = "") -> str:
    """A sentence for `gr.Error` from any exception; unexpected ones are logged with their traceback."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, (EmptyFileError, NotAnImageError, ImageTooLargeError, ImageTooSmallError, NoPersonError)):
        return prefix + str(exc)
    if isinstance(exc, PreprocessingError):
        return prefix + str(exc)
    if isinstance(exc, MissingWeightsError):
        return "The try-on model is not loaded. " + str(exc)
    if isinstance(exc, SettingsError):
        return prefix + str(exc)
    if isinstance(exc, InputError):
        return prefix + f"The model refused these inputs: {exc}"
    if isinstance(exc, MemoryError):
        return prefix + "The server ran out of memory. Try fewer samples or fewer steps."
    log.exception("unexpected error%s", f" in {what}" if what else "")
    return (prefix + f"Something went wrong on our side ({type(exc).__name__}). "
            "Please try again; if it keeps happening, report it with the photo that caused it.")
