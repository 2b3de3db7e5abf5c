"""Shared test helpers: the read-only reference fixture and small synthetic inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STABLEVITON_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "reference" / "parity"
OFFICIAL_KEYS = SHARED / "reference" / "official_keys.tsv"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (set STABLEVITON_SHARED to the shared/ folder)")
    return path


def toy_inputs(height: int = 128, width: int = 96, seed: int = 0) -> dict:
    """Random but structured uint8 inputs: smooth colour fields, a rectangular garment region to generate."""
    rng = np.random.default_rng(seed)

    def image():
        coarse = rng.integers(0, 256, (height // 16, width // 16, 3)).astype(np.uint8)
        return np.kron(coarse, np.ones((16, 16, 1), np.uint8)) // 2 + rng.integers(0, 128, (height, width, 3),
                                                                                     dtype=np.uint8)

    mask = np.zeros((height, width), np.uint8)
    mask[height // 4: 3 * height // 4, width // 5: 4 * width // 5] = 255
    person = image()
    agnostic = person.copy()
    agnostic[mask > 0] = 128
    return dict(agnostic_image=agnostic, agnostic_mask=mask, densepose_image=image(), garment_image=image(),
                person_image=person)


def pack_tiny_demo(root: Path, seed: int = 5) -> Path:
    """`tiny_pipeline(seed)` packed like the shipped synthetic demo model; returns the folder (for
    $STABLEVITON_DEMO_DIR): the demo code path with random weights, no quality implied."""
    from stableviton.synthetic.build_demo import pack
    from stableviton.synthetic.demo import NAME
    from stableviton.tiny import tiny_pipeline

    root = Path(root)
    tiny_pipeline(seed).save_pretrained(root / "pipe")
    pack(root / "pipe", root / "packed", NAME)
    pack(root / "pipe" / "vae", root / "packed", "vae")
    return root / "packed"
