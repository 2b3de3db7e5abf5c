"""User photo -> StableVITON inputs, offline on CPU.

    >>> from preprocessing import prepare_person, prepare_garment, paste_back
    >>> person = prepare_person("me.jpg", size=(512, 384))
    >>> person.agnostic, person.agnostic_mask, person.densepose, person.image   # model inputs
    >>> garment = prepare_garment("shirt.jpg", size=(512, 384))               # cloth (+ mask)
    >>> full = paste_back(person.original, result_512x384, person.framing, person.agnostic_mask)

Stages (one module each): framing (load, 3:4 fit, paste back), pose (MediaPipe -> OpenPose
BODY_25), parsing (CIHP labels; offline pose-geometry or SCHP ONNX), densepose (VITON-HD colours;
offline part renderer or detectron2), agnostic (HR-VITON / VITON-HD recipe), garment.
No model or UI imports: this package only turns pictures into pictures.
"""
from .agnostic import AgnosticResult, agnostic_from_user_mask, make_agnostic
from .densepose import DENSEPOSE_COLORS, DensePoseResult, render_index
from .errors import (
    BackendUnavailableError, EmptyFileError, GarmentNotFoundError, ImageTooLargeError,
    ImageTooSmallError, InvalidImageError, NoPersonError, NotAnImageError, PersonCutOffError,
    PreprocessingError, TruncatedImageError,
)
from .framing import SIZE_512, SIZE_1024, Framing, LoadedImage, load_image, paste_back
from .garment import GarmentInputs, prepare_garment
from .parsing import CIHP_LABELS, ParsingResult
from .pipeline import PersonInputs, prepare_person
from .pose import BODY25_NAMES, Keypoints, draw_keypoints

__all__ = [
    "AgnosticResult", "BODY25_NAMES", "BackendUnavailableError", "CIHP_LABELS", "DENSEPOSE_COLORS",
    "DensePoseResult", "EmptyFileError", "Framing", "GarmentInputs", "GarmentNotFoundError",
    "ImageTooLargeError", "ImageTooSmallError", "InvalidImageError", "Keypoints", "LoadedImage",
    "NoPersonError", "NotAnImageError", "ParsingResult", "PersonCutOffError", "PersonInputs",
    "PreprocessingError", "SIZE_1024", "SIZE_512", "TruncatedImageError", "agnostic_from_user_mask",
    "draw_keypoints", "load_image", "make_agnostic", "paste_back", "prepare_garment",
    "prepare_person", "render_index",
]
