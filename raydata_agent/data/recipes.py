"""Standard classification recipes: training augmentation, per-channel normalisation, decode threads.

Augmentation follows the standard recipes: random crop with 4-pixel (reflect) padding and a
horizontal flip for small in-memory sets (CIFAR), RandomResizedCrop and a flip for `imagefolder`
(applied to the decoded image before it is resized, as torchvision's ImageNet recipe does). It
applies to the training split only, per sample, so the per-sample loss the pool records is the loss
of the view that was trained on. Normalisation lives in the model (`Normalize`, the first layer), so
evaluation, checkpoints and the user's inference all see the same inputs.

`data.augment` / `data.normalize` left unset take the data set's standard: on for `cifar10`,
`cifar100` and `imagefolder`; off for the generated `shapes` / `mixture` sets (their figures in
benchmarks/RESULTS.md are measured without) and for `digits` (a flipped digit is another digit).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from raydata_agent.config import STANDARD_RECIPE

NORM_SAMPLE = 512  # images read to estimate a file-backed set's channel statistics


def wants(setting: bool | None, data_name: str) -> bool:
    """An explicit true/false wins; unset means the data set's standard recipe."""
    return data_name in STANDARD_RECIPE if setting is None else setting


def augment_batch(x: torch.Tensor, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """Augment a float batch [B, C, H, W] per sample. `kind`: "crop_flip" (random crop of the image
    padded by 4 px, reflect) or "resized_crop_flip" (RandomResizedCrop: scale 0.08-1, ratio 3/4-4/3).

    The random draws come from `rng` (seeded per run, rank and epoch), not torch's global RNG, which
    the model and the agent's acting also draw from: so a seed gives the same views whatever thread
    prepares the batch. The pixel operations are torchvision's."""
    from torchvision.transforms.v2 import functional as TF

    b, _, h, w = x.shape
    if kind == "crop_flip":
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
        offsets = rng.integers(0, 9, size=(b, 2))
        out = torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets)])
    else:
        out = torch.stack([TF.resized_crop(x[i], *_resized_crop_params(rng, h, w), [h, w], antialias=True)
                           for i in range(b)])
    flip = torch.from_numpy(rng.random(b) < 0.5)
    out[flip] = out[flip].flip(-1)
    return out


def _resized_crop_params(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3), drawn from `rng`."""
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    return 0, 0, h, w  # the whole image, as torchvision falls back to


class Normalize(nn.Module):
    """(x - mean) / std per channel, as buffers: saved with the model, applied in train and eval."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def channel_stats(data) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a training set in [0, 1]: all images when in memory, else a
    seeded sample of NORM_SAMPLE decoded files (exact enough, and cheap at start-up)."""
    if data.images is not None:
        x = torch.from_numpy(data.images).float().div_(255.0)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()
    ids = np.random.default_rng(0).permutation(len(data))[:NORM_SAMPLE]
    x, _ = data.batch(np.sort(ids))  # no rng: the images as stored
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


_DECODERS: dict[int, ThreadPoolExecutor] = {}


def decode_pool(threads: int) -> ThreadPoolExecutor:
    """One pool per worker process: PIL releases the GIL while it decodes, so threads scale."""
    if threads not in _DECODERS:
        _DECODERS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
    return _DECODERS[threads]
