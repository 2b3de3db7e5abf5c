"""Where the optional preprocessing models come from, resolved the way `stableviton/weights.py` finds the checkpoint.

Order for every learned backend: an explicit path, then its environment variable, then the local Hugging Face
Hub cache (no network, works with ``HF_HUB_OFFLINE=1``), then a download from the Hub when allowed. Nothing
happens at import time. A miss raises :class:`~preprocessing.errors.BackendUnavailableError` whose message says
what was tried and how to get the files, so callers can fall back to the offline backends with a note.

The cache folder is read when a function is called (``HF_HUB_CACHE``, else ``$HF_HOME/hub``), not when
`huggingface_hub` was imported, so a process (or a test) can point it elsewhere at any time.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import BackendUnavailableError


@dataclass(frozen=True)
class HubFile:
    """One file of one Hub repository (model, space or dataset)."""

    repo_id: str
    filename: str
    repo_type: str = "model"

    def __str__(self) -> str:
        kind = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"hf://{kind}{self.repo_id}/{self.filename}"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but at call time."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> str | None:
    """The Hub cache folder to use: explicit, ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, else the library default."""
    if cache_dir:
        return str(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def has_module(name: str) -> bool:
    """Whether a package is importable, without importing it (cheap enough for a UI listing)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cached_file(file: HubFile, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The file from the local Hub cache, or None; never touches the network."""
    if not has_module("huggingface_hub"):
        return None
    from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

    try:
        hit = try_to_load_from_cache(file.repo_id, file.filename, cache_dir=hub_cache_dir(cache_dir),
                                     repo_type=file.repo_type)
    except Exception:  # noqa: BLE001 - a malformed cache is a miss, not a crash
        return None
    return Path(hit) if isinstance(hit, str) and os.path.isfile(hit) else None


def download_allowed(allow_download: bool | None) -> bool:
    """None means "unless offline", like the checkpoint loader."""
    return (not hub_offline()) if allow_download is None else bool(allow_download)


def fetch_file(file: HubFile, *, allow_download: bool | None = None,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache first, then (when allowed) a download; raises BackendUnavailableError on a miss."""
    hit = cached_file(file, cache_dir)
    if hit is not None:
        return hit
    if not download_allowed(allow_download):
        raise BackendUnavailableError(f"{file} is not in the local Hugging Face cache and downloads are off "
                                      "(HF_HUB_OFFLINE=1 or allow_download=False).")
    try:
        from huggingface_hub import hf_hub_download  # noqa: PLC0415

        return Path(hf_hub_download(file.repo_id, file.filename, repo_type=file.repo_type,
                                    cache_dir=hub_cache_dir(cache_dir)))
    except Exception as err:  # noqa: BLE001 - network, auth, missing file: all mean "not available"
        raise BackendUnavailableError(f"download of {file} failed ({type(err).__name__}: {err})") from err


def fetch_first(groups: Iterable[tuple[HubFile, ...]], *, allow_download: bool | None = None,
                cache_dir: str | os.PathLike | None = None) -> tuple[tuple[Path, ...], tuple[HubFile, ...]]:
    """(paths, group) of the first group of files (e.g. ATR + LIP of one repo) that is complete. Every group's
    cache is tried before any download, so files cached from a later source never cause a download."""
    groups = list(groups)
    for group in groups:
        hits = [cached_file(f, cache_dir) for f in group]
        if all(h is not None for h in hits):
            return tuple(hits), group
    errors = []
    if download_allowed(allow_download):
        for group in groups:
            try:
                return tuple(fetch_file(f, allow_download=True, cache_dir=cache_dir) for f in group), group
            except BackendUnavailableError as err:
                errors.append(str(err))
    tried = ", ".join(dict.fromkeys(repo_label(f) for group in groups for f in group))
    why = "; ".join(errors) if errors else "downloads are off (HF_HUB_OFFLINE=1 or allow_download=False)"
    raise BackendUnavailableError(f"not in the local Hugging Face cache (tried {tried}); {why}.")


def repo_label(file: HubFile) -> str:
    """``spaces/owner/name`` or ``owner/name``: how a user finds the repo on huggingface.co."""
    return ("" if file.repo_type == "model" else f"{file.repo_type}s/") + file.repo_id
