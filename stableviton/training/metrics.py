"""Image metrics of the try-on papers: SSIM and LPIPS (paired), FID and KID (unpaired).

- SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, data range 1, on RGB in
  [0, 1], over the valid region, averaged over channels and pixels (= `skimage.metrics.structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)`).
- LPIPS v0.1 (Zhang et al. 2018): the `lpips` package's network (AlexNet by default, or VGG16) rebuilt here without
  torchvision; weights = torchvision's ImageNet backbone + the package's linear layers, from local paths, the
  installed `lpips` package, the torch hub cache, or downloaded.
- FID / KID as clean-fid computes them (the official StableVITON code imports clean-fid): images resized to
  299x299 with PIL bicubic per channel in float, features of the TorchScript Inception-v3
  (`inception-2015-12-05.pt`, the TF FID network ported by NVIDIA); FID by the Frechet distance, KID by the
  unbiased cubic-polynomial MMD over 100 subsets of up to 1000 images.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn


class MetricWeightsError(FileNotFoundError):
    """Pretrained weights of a metric network are not available; the message says where to put them."""


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "STABLEVITON_OFFLINE")
    return any(os.environ.get(v, "0").lower() in ("1", "true", "yes") for v in flags)


def find_weights(what: str, explicit: str | None, env: str, candidates: list[Path], url: str,
                 filename: str, allow_download: bool | None = None) -> Path:
    """Explicit path > $env > known locations > download from `url` into the torch hub cache."""
    for p in [explicit, os.environ.get(env)]:
        if p:
            if not Path(p).expanduser().is_file():
                raise MetricWeightsError(f"{what} weights not found at {p}")
            return Path(p).expanduser()
    for p in candidates:
        if p.is_file():
            return p
    if allow_download is None:
        allow_download = not _offline()
    target = _hub_dir() / filename
    if allow_download:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target))
            return target
        except Exception as e:  # noqa: BLE001 - any failure ends in the same advice
            reason = f"download failed ({type(e).__name__}: {e})"
    else:
        reason = "downloads are off (offline)"
    raise MetricWeightsError(f"{what} weights not available: {reason}. Download {url} and pass its path "
                             f"(or set ${env}, or put it at {target}).")


# -- SSIM ------------------------------------------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM of (B, C, H, W) images in [0, data_range] -> (B,)."""
    a, b = a.double(), b.double()
    c = a.shape[1]
    w = _gaussian_window(window, sigma).to(a.device).expand(c, 1, window, window)
    filt = lambda x: F.conv2d(x, w, groups=c)  # noqa: E731 - valid region only
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


# -- LPIPS -----------------------------------------------------------------------------------------------------
BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}
LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"


def _alexnet_features() -> tuple[nn.Sequential, list[int], list[int]]:
    layers = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    return layers, [2, 5, 8, 10, 12], [64, 192, 384, 256, 256]  # slice ends (after each ReLU), channels


def _vgg16_features() -> tuple[nn.Sequential, list[int], list[int]]:
    layers, ch = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU()]
            ch = v
    return nn.Sequential(*layers), [4, 9, 16, 23, 30], [64, 128, 256, 512, 512]


class LPIPS(nn.Module):
    """LPIPS v0.1 (`lpips.LPIPS(net=..., version='0.1')` in eval mode); inputs in [-1, 1]."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"LPIPS net must be one of {sorted(BACKBONES)}")
        self.net = net
        self.features, self.ends, channels = {"alex": _alexnet_features, "vgg": _vgg16_features}[net]()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    @classmethod
    def from_pretrained(cls, net: str = "alex", lin_path: str | None = None, backbone_path: str | None = None,
                        allow_download: bool | None = None) -> "LPIPS":
        model = cls(net)
        filename, url = BACKBONES[net]
        backbone = find_weights(f"LPIPS backbone ({net})", backbone_path, "LPIPS_BACKBONE", [_hub_dir() / filename],
                                url, filename, allow_download)
        candidates = [_hub_dir() / f"lpips_v0.1_{net}.pth"]
        try:
            import importlib.util

            spec = importlib.util.find_spec("lpips")
            if spec is not None and spec.origin:
                candidates.insert(0, Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth")
        except (ImportError, ValueError):
            pass
        lin = find_weights(f"LPIPS linear layers ({net})", lin_path, "LPIPS_WEIGHTS", candidates,
                           LPIPS_URL.format(net=net), f"lpips_v0.1_{net}.pth", allow_download)
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        model.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                        if k.startswith("features.") and int(k.split(".")[1]) < model.ends[-1]})
        lins = torch.load(lin, map_location="cpu", weights_only=True)
        model.lins.load_state_dict({f"{k[3]}.weight": v for k, v in lins.items() if k.endswith("model.1.weight")})
        return model.eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B,) distances."""
        xa, xb = (a - self.shift) / self.scale, (b - self.shift) / self.scale
        total = 0
        start = 0
        for end, lin in zip(self.ends, self.lins):
            xa, xb = self.features[start:end](xa), self.features[start:end](xb)
            start = end
            na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(2, 3))
        return total[:, 0]


# -- FID / KID -------------------------------------------------------------------------------------------------
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


class InceptionFeatures(nn.Module):
    """2048-d pool features of the TorchScript FID Inception (clean-fid's 'clean' mode preprocessing)."""

    def __init__(self, path: str | None = None, allow_download: bool | None = None):
        super().__init__()
        found = find_weights("FID Inception", path, "FID_INCEPTION_WEIGHTS",
                             [_hub_dir() / INCEPTION_FILE, Path(tempfile.gettempdir()) / INCEPTION_FILE], INCEPTION_URL,
                             INCEPTION_FILE, allow_download)
        self.base = torch.jit.load(str(found), map_location="cpu").eval()

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> float32 (3, 299, 299) in [0, 255]: PIL bicubic per channel in float (clean-fid)."""
        chans = [np.asarray(PIL.Image.fromarray(image[..., c].astype(np.float32), mode="F")
                            .resize((299, 299), resample=PIL.Image.BICUBIC)) for c in range(3)]
        return np.clip(np.stack(chans), 0, 255).astype(np.float32)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.base(images, return_features=True).reshape(images.shape[0], -1)


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = feats1.mean(0), feats2.mean(0)
    s1, s2 = np.cov(feats1, rowvar=False), np.cov(feats2, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kernel_inception_distance(feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random subsets (clean-fid's KID)."""
    rng = np.random.default_rng(seed)
    n = feats1.shape[1]
    m = min(len(feats1), len(feats2), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 images on each side")
    t = 0.0
    for _ in range(num_subsets):
        x = feats2[rng.choice(len(feats2), m, replace=False)]
        y = feats1[rng.choice(len(feats1), m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)
