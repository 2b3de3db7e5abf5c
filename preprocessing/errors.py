"""Exception and warning types of the preprocessing package.

Every failure a user can cause (wrong file, no person, blank garment, ...) raises a subclass of
:class:`PreprocessingError` whose message can be shown in a UI as is; programming errors stay
ordinary Python exceptions. Warnings are plain strings collected in the results, because a UI
shows them next to the images rather than through :mod:`warnings`.
"""
from __future__ import annotations


class PreprocessingError(Exception):
    """Base class: the input cannot be turned into model inputs; ``str(err)`` is user-readable."""


# --- image loading -------------------------------------------------------------------------------
class InvalidImageError(PreprocessingError):
    """The input is not a usable image (base class of the loading errors)."""


class EmptyFileError(InvalidImageError):
    """A 0-byte file or empty buffer."""


class NotAnImageError(InvalidImageError):
    """The bytes are not in any image format Pillow can decode (e.g. a text file renamed .png)."""


class TruncatedImageError(InvalidImageError):
    """The header is fine but the pixel data is cut short or corrupt."""


class ImageTooLargeError(InvalidImageError):
    """More pixels than we are willing to decode (guards memory and time)."""


class ImageTooSmallError(InvalidImageError):
    """A side shorter than the minimum: too few pixels to find a body in."""


# --- person ----------------------------------------------------------------------------------------
class NoPersonError(PreprocessingError):
    """No human body was detected in the photo."""


class PersonCutOffError(PreprocessingError):
    """A person was found but the part the garment goes on (shoulders/torso) is not in the photo."""


# --- garment ---------------------------------------------------------------------------------------
class GarmentNotFoundError(PreprocessingError):
    """The garment photo is blank (e.g. all white) or nothing separates from the background."""


# --- optional backends -----------------------------------------------------------------------------
class BackendUnavailableError(PreprocessingError):
    """An optional backend (SCHP parser, detectron2 DensePose, mediapipe) is not installed or has no weights."""
