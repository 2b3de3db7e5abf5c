"""VITON-HD and DressCode (upper body) try-on datasets, paired and unpaired, for training and batch inference.

VITON-HD layout (as the official code reads it; its README names two folders differently):

    root/train_pairs.txt, root/test_pairs.txt           lines "person.jpg cloth.jpg"
    root/{train,test}/image/{person}                    the photo (the training target)
    root/{train,test}/agnostic-v3.2/{person}            the photo with the garment area in gray 128
    root/{train,test}/agnostic-mask/{stem}_mask.png     white = area to generate
    root/{train,test}/image-densepose/{person}          DensePose rendering
    root/{train,test}/cloth/{cloth}, cloth-mask/{cloth} the garment on white, its mask
    root/{train,test}/gt_cloth_warped_mask/{person}     the garment's area on the person (ATV loss only; not in
                                                        the public release: make it from the parsing)

DressCode has no agnostic images, masks or DensePose renderings: make them with this project's `preprocessing`
and put them next to `images/` under the category folder (see `DRESSCODE_UPPER`). Paired mode uses each person's
own garment (VITON-HD: the same file name in `cloth/`; DressCode: `{id}_1.jpg` for `{id}_0.jpg`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from .augment import AugmentConfig, augment


class DatasetError(FileNotFoundError):
    """A dataset file or folder is missing or unreadable; the message names it."""


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Layout:
    """Where each input lives, as path templates relative to the split folder.

    Templates see `{person}`, `{person_stem}`, `{cloth}`, `{cloth_stem}` and `{split}`.
    """

    name: str
    split_dir: str  # relative to the root, may use {split}
    pairs: dict[str, str]  # split -> list file relative to the root
    files: dict[str, str] = field(default_factory=dict)  # role -> template relative to split_dir
    paired_cloth: Callable[[str], str] = staticmethod(lambda person: person)


VITONHD = Layout(
    name="vitonhd",
    split_dir="{split}",
    pairs={"train": "train_pairs.txt", "test": "test_pairs.txt"},
    files={
        "image": "image/{person}",
        "agnostic": "agnostic-v3.2/{person}",
        "agnostic_mask": "agnostic-mask/{person_stem}_mask.png",
        "densepose": "image-densepose/{person}",
        "cloth": "cloth/{cloth}",
        "cloth_mask": "cloth-mask/{cloth}",
        "warped_mask": "gt_cloth_warped_mask/{person}",
    },
)

DRESSCODE_UPPER = Layout(
    name="dresscode",
    split_dir="upper_body",
    pairs={"train": "upper_body/train_pairs.txt", "test": "upper_body/test_pairs_unpaired.txt"},
    files={
        "image": "images/{person}",
        "agnostic": "agnostic/{person}",
        "agnostic_mask": "agnostic-mask/{person_stem}_mask.png",
        "densepose": "image-densepose/{person}",
        "cloth": "images/{cloth}",
        "cloth_mask": "cloth-mask/{cloth}",
        "warped_mask": "gt_cloth_warped_mask/{person}",
    },
    paired_cloth=staticmethod(lambda person: person.replace("_0.", "_1.")),
)

LAYOUTS = {"vitonhd": VITONHD, "dresscode": DRESSCODE_UPPER, "dresscode_upper": DRESSCODE_UPPER}
IMAGES = ("image", "agnostic", "densepose", "cloth")
MASKS = ("agnostic_mask", "cloth_mask", "warped_mask")


def dataset_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(LAYOUTS)}") from None


def read_pairs(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DatasetError(f"pairs file not found: {path}")
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path}:{n}: expected 'person cloth', got {line!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DatasetError(f"pairs file is empty: {path}")
    return pairs


class TryOnDataset(Dataset):
    """One (person, garment) pair per item, as float tensors ready for the model.

    Items: `image`, `agnostic`, `densepose`, `cloth` (3, H, W) in [-1, 1] (`u / 127.5 - 1`); `agnostic_mask`
    (1, H, W) in [0, 1], 1 = generate (the pipeline's convention; the model's mask channel is `1 - it`);
    `cloth_mask`, `warped_mask` (1, H, W) in [0, 1]; `person`, `cloth_name`: file names.
    Masks are thresholded at 128, then resized bilinearly with everything else (soft edges, as the official
    `A.Resize` of the thresholded masks). Index with an int, or with `(index, seed)` to draw the augmentation
    from `seed` (the trainer's deterministic sampler does that, which makes resuming exact).
    """

    def __init__(self, root: str | Path, split: str = "train", mode: str = "paired", height: int = 512,
                 width: int = 384, layout: str | Layout = "vitonhd", pairs_file: str | None = None,
                 augment_config: AugmentConfig | dict | None = None, load_warped_mask: bool = False,
                 load_cloth_mask: bool = False, verify: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset root not found: {self.root}")
        if mode not in ("paired", "unpaired"):
            raise ValueError(f"mode must be 'paired' or 'unpaired', got {mode!r}")
        self.layout = dataset_layout(layout) if isinstance(layout, str) else layout
        self.split, self.mode, self.height, self.width = split, mode, height, width
        self.split_dir = self.root / self.layout.split_dir.format(split=split)
        if not self.split_dir.is_dir():
            raise DatasetError(f"{self.layout.name} split folder not found: {self.split_dir}")
        pairs_path = self.root / (pairs_file or self.layout.pairs[split])
        pairs = read_pairs(pairs_path)
        if mode == "paired":
            pairs = [(p, self.layout.paired_cloth(p)) for p, _ in pairs]
        self.pairs = pairs
        if isinstance(augment_config, dict):
            augment_config = AugmentConfig.from_dict(augment_config)
        self.augment_config = augment_config
        self.roles = ["image", "agnostic", "agnostic_mask", "densepose", "cloth"]
        if load_cloth_mask:
            self.roles.append("cloth_mask")
        if load_warped_mask:
            self.roles.append("warped_mask")
        if verify:
            self.verify()

    def __len__(self) -> int:
        return len(self.pairs)

    def path(self, role: str, person: str, cloth: str) -> Path:
        template = self.layout.files[role]
        return self.split_dir / template.format(person=person, person_stem=_stem(person), cloth=cloth,
                                                cloth_stem=_stem(cloth), split=self.split)

    def verify(self) -> None:
        """Fail early, naming the first missing folder or file (and how many are missing)."""
        for role in self.roles:
            folder = self.path(role, "x", "x").parent
            if not folder.is_dir():
                hint = " (needed for the ATV loss; not in the public VITON-HD release)" if role == "warped_mask" else ""
                raise DatasetError(f"{self.layout.name}: folder for '{role}' not found: {folder}{hint}")
        missing = [self.path(r, p, c) for p, c in self.pairs for r in self.roles if not self.path(r, p, c).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetError(f"{self.layout.name}: missing file {missing[0]}{more}")

    def _read(self, role: str, person: str, cloth: str) -> np.ndarray:
        path = self.path(role, person, cloth)
        try:
            with PIL.Image.open(path) as im:
                arr = np.array(im.convert("L" if role in MASKS else "RGB"))
        except FileNotFoundError:
            raise DatasetError(f"{self.layout.name}: missing file {path}") from None
        except OSError as e:
            raise DatasetError(f"{self.layout.name}: cannot read {path}: {e}") from None
        if role in MASKS:
            arr = np.where(arr >= 128, 255, 0).astype(np.uint8)
        if arr.shape[:2] != (self.height, self.width):
            arr = cv2.resize(arr, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return arr

    def load_arrays(self, index: int) -> dict[str, np.ndarray]:
        person, cloth = self.pairs[index]
        return {role: self._read(role, person, cloth) for role in self.roles}

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        person, cloth = self.pairs[index]
        arrays = self.load_arrays(index)
        if self.augment_config is not None:
            rng = np.random.default_rng([0 if seed is None else int(seed), int(index)])
            arrays = augment(arrays, rng, self.augment_config)
        item = {k: torch.from_numpy(np.ascontiguousarray(arrays[k])).permute(2, 0, 1).float() / 127.5 - 1.0
                for k in IMAGES}
        for k in MASKS:
            if k in arrays:
                item[k] = torch.from_numpy(np.ascontiguousarray(arrays[k])).float()[None] / 255.0
            else:
                item[k] = torch.zeros(1, self.height, self.width)
        item["person"], item["cloth_name"] = person, cloth
        return item
