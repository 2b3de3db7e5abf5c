"""Reading checkpoint files without ever running code from them.

The released StableVITON files are raw PyTorch Lightning pickles: besides tensors they carry training metadata
(hyper-parameters as `argparse.Namespace`, callback states, ...) that `torch.load(weights_only=True)` refuses.
We list the file's non-tensor globals first, replace the known metadata classes by inert placeholders (they
swallow their state; no constructor of the real class runs), and refuse every other global by name.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

# Modules whose classes only describe training metadata in Lightning checkpoints.
METADATA_MODULES = (
    "argparse",
    "omegaconf",
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "typing",
    "pathlib",
    "enum",
    "numpy",
    "_codecs",
)


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: unreadable, corrupt, unsafe or of the wrong model."""


def _placeholder(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")

    def _new(cls, *args, **kwargs):
        return object.__new__(cls)

    def _init(self, *args, **kwargs):
        pass

    def _setstate(self, state):
        pass

    return type(name, (), {"__module__": module, "__qualname__": name, "__new__": _new, "__init__": _init,
                           "__setstate__": _setstate, "__reduce__": None})


def torch_load_without_code(path: str | os.PathLike) -> tuple[dict, list[str]]:
    """`torch.load(weights_only=True)` that tolerates Lightning metadata. Returns (object, skipped globals)."""
    path = Path(path)
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint (corrupt or truncated?): {e}") from e
    refused = [g for g in unsafe if g.split(".")[0] not in METADATA_MODULES]
    if refused:
        raise CheckpointError(
            f"refusing to load {path.name}: it references code that a weights file never needs "
            f"({', '.join(sorted(refused))}). Nothing from it was executed."
        )
    placeholders = [_placeholder(g) for g in unsafe]
    try:
        with torch.serialization.safe_globals(placeholders):
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path.name} could not be read as a PyTorch checkpoint: {e}") from e
    if unsafe:
        logger.info("skipped non-tensor metadata in %s: %s", path.name, ", ".join(sorted(unsafe)))
    return obj, sorted(unsafe)


def load_state_dict_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Tensors of a `.safetensors` or `.ckpt`/`.pt`/`.pth`/`.bin` file (Lightning's `state_dict` unwrapped).

    Returns (state dict, notes on what was skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    notes: list[str] = []
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path.name} is not a readable safetensors file: {e}") from e
        return sd, notes
    obj, skipped = torch_load_without_code(path)
    if skipped:
        notes.append("skipped non-tensor metadata classes: " + ", ".join(skipped))
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        other = sorted(k for k in obj if k != "state_dict")
        if other:
            notes.append("ignored Lightning entries outside state_dict: " + ", ".join(map(str, other)))
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    dropped = sorted(k for k in obj if k not in tensors)
    if dropped:
        notes.append(f"ignored {len(dropped)} non-tensor state_dict entries")
    return tensors, notes
