"""What degrades a generated detection or segmentation training set (issue 29): which images carry
annotation noise, which are near-duplicates of another image, and how a near-copy is made.

Real detection and segmentation sets are both: annotators mislabel, miss and loosely draw objects,
and collections are full of near-identical frames. The plan is drawn from its own random stream and
each image's corruption from a stream of its own (`image_rng`), never from the stream that draws the
images, so a clean set (no noise, no duplicates) is the same set, file for file, as before either
existed, and a noisy set holds the same clean images apart from the ones it corrupts or copies.
Validation sets are never corrupted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAM = 29  # the plan's and the images' streams: default_rng([seed, STREAM, ...]), apart from the images'


@dataclass
class CorruptionPlan:
    source: np.ndarray  # int [N]: the image each near-duplicate copies; -1 for an original
    noisy: np.ndarray  # bool [N]: the image's annotation is corrupted (one kind, drawn per image)

    @property
    def is_duplicate(self) -> np.ndarray:
        return self.source >= 0

    @property
    def sources(self) -> set[int]:
        """The originals some duplicate copies: a generator keeps these in memory until it is done."""
        return set(self.source[self.source >= 0].tolist())


def plan(n: int, label_noise: float, duplicates: float, seed: int) -> CorruptionPlan:
    """round(label_noise * n) noisy images and round(duplicates * n) near-duplicates, drawn
    independently (a duplicate may be noisy too: it is annotated again). Each duplicate copies an
    original drawn with replacement, so some originals have several copies, as in the wild."""
    rng = np.random.default_rng([seed, STREAM])
    n_dup = min(round(duplicates * n), n - 1)  # at least one original to copy
    dup = rng.choice(n, n_dup, replace=False)
    source = np.full(n, -1, np.int64)
    source[dup] = rng.choice(np.setdiff1d(np.arange(n), dup), n_dup)
    noisy = np.zeros(n, bool)
    noisy[rng.choice(n, round(label_noise * n), replace=False)] = True
    return CorruptionPlan(source, noisy)


def image_rng(seed: int, i: int) -> np.random.Generator:
    """Image i's corruption stream: its draws do not depend on which other images are corrupted."""
    return np.random.default_rng([seed, STREAM, i])


def shift_amount(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """A small translation (dx, dy) in pixels, not both zero: up to 4% of the side (3 px at 64 px)."""
    most = max(2, round(0.04 * size))
    while True:
        dx, dy = (int(v) for v in rng.integers(-most, most + 1, 2))
        if dx or dy:
            return dx, dy


def shift(array: np.ndarray, dx: int, dy: int, fill: np.ndarray | int) -> np.ndarray:
    """`array` ([H, W, ...]) moved right by dx and down by dy; the uncovered margin takes `fill`
    (an array of the same shape, or a value). No wrap-around: a shape leaving one side does not
    come back on the other, so the moved labels stay true."""
    out = np.empty_like(array)
    out[...] = fill
    h, w = array.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = array[max(-dy, 0):h - max(dy, 0),
                                                                       max(-dx, 0):w - max(dx, 0)]
    return out


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness jitter (x0.85 to x1.15) and fresh pixel noise (sd 6 grey levels) on a uint8 image:
    the copy is near, not exact, as a re-shot or re-encoded frame is."""
    out = image.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0.0, 6.0, image.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
