"""A Hugging Face Hub cache on disk (`HF_HUB_CACHE` layout) holding files under real repo and file names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stableviton.weights import ENV_CHECKPOINT, ENV_FILENAME, ENV_REPO, ENV_REPO_TYPE, ENV_VARIANT

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubCache:
    def __init__(self, root: Path):
        self.root = root

    def repo_dir(self, repo_id: str, repo_type: str = "model") -> Path:
        return self.root / f"{repo_type}s--{repo_id.replace('/', '--')}"

    def snapshot(self, repo_id: str, repo_type: str = "model", commit: str = COMMIT) -> Path:
        repo = self.repo_dir(repo_id, repo_type)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        return snap

    def put(self, repo_id: str, repo_type: str, filename: str, content: bytes | Path) -> Path:
        target = self.snapshot(repo_id, repo_type) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
        return target


@pytest.fixture
def hub(tmp_path, monkeypatch) -> HubCache:
    """An empty Hub cache that huggingface_hub (and diffusers) use, offline, with no StableVITON env overrides."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for var in (ENV_CHECKPOINT, ENV_REPO, ENV_REPO_TYPE, ENV_FILENAME, ENV_VARIANT):
        monkeypatch.delenv(var, raising=False)
    return HubCache(root)
