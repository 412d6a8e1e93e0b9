"""`data.name=mixture`: a generated set that gives data selection something to find.

The training set mixes three kinds of coloured-shape images (the shapes set's 10 classes):
- near-duplicates (DUPLICATE_SHARE): copies of a few clean prototypes per class, each with a
  1-pixel shift and faint noise. Easy and redundant: training on all of them wastes passes;
- hard samples (HARD_SHARE): two shapes of different classes blended, the labelled one only a
  little stronger (55-70%), small, on a noisy background: close to a class boundary;
- the rest: ordinary shapes images, as in `data.name=shapes`.
`data.label_noise` then flips a share of all training labels (`is_noisy`).

Ground truth (`is_duplicate`, `is_hard`; `is_noisy` from the flip) goes into the pool as extra
columns and its snapshots, for benchmarks to measure what each selector trained on. Selectors
never read it. The validation set has no duplicates and clean labels, and HARD_SHARE_VAL of it
is hard: the metric rewards learning the boundary, not memorising prototypes.
"""
from __future__ import annotations

import numpy as np

from raydata_agent.data.shapes import SHAPES, _mask

DUPLICATE_SHARE = 0.5  # of the training set: near-duplicates of PROTOTYPES_PER_CLASS clean images per class
HARD_SHARE = 0.15  # of the training set: blended shapes near a class boundary
HARD_SHARE_VAL = 0.3
PROTOTYPES_PER_CLASS = 4


def _shape_image(rng, label: int, size: int, noise: float, radius: tuple[float, float]) -> np.ndarray:
    """float [3, size, size] in [0, 1]: one shape on a flat background with Gaussian noise."""
    img = np.broadcast_to(rng.uniform(0.0, 0.5, 3)[:, None, None], (3, size, size)).copy()
    r = rng.uniform(size * radius[0], size * radius[1])
    cx, cy = rng.uniform(r, size - r, 2)
    img[:, _mask(SHAPES[label], size, cx, cy, r)] = rng.uniform(0.4, 1.0, 3)[:, None]
    return img + rng.normal(0.0, noise, img.shape)


def _hard_image(rng, label: int, size: int) -> np.ndarray:
    """The labelled shape blended with another class's shape at the same place, only a little stronger."""
    other = (label + rng.integers(1, len(SHAPES))) % len(SHAPES)
    bg = rng.uniform(0.0, 0.5, 3)[:, None, None]
    r = rng.uniform(size * 0.18, size * 0.28)
    cx, cy = rng.uniform(r, size - r, 2)
    colour = rng.uniform(0.5, 1.0, 3)[:, None, None]
    alpha = rng.uniform(0.55, 0.7)
    own = _mask(SHAPES[label], size, cx, cy, r).astype(np.float32)
    foreign = _mask(SHAPES[other], size, cx, cy, r).astype(np.float32)
    ink = np.clip(alpha * own + (1 - alpha) * foreign, 0, 1)[None]
    img = bg * (1 - ink) + colour * ink
    return img + rng.normal(0.0, 0.15, img.shape)


def make_mixture(num: int, size: int = 32, seed: int = 0, duplicate_share: float = DUPLICATE_SHARE,
                 hard_share: float = HARD_SHARE) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images uint8 [N, 3, size, size], labels int64 [N], {"is_duplicate", "is_hard"} bool [N])."""
    rng = np.random.default_rng(seed)
    n_dup, n_hard = int(round(duplicate_share * num)), int(round(hard_share * num))
    kind = np.array([0] * n_dup + [1] * n_hard + [2] * (num - n_dup - n_hard))  # 0 dup, 1 hard, 2 ordinary
    rng.shuffle(kind)
    labels = np.arange(num) % len(SHAPES)
    rng.shuffle(labels)
    prototypes = {(c, p): _shape_image(rng, c, size, 0.03, (0.3, 0.4))
                  for c in range(len(SHAPES)) for p in range(PROTOTYPES_PER_CLASS)}
    images = np.empty((num, 3, size, size), np.uint8)
    for i, (k, label) in enumerate(zip(kind, labels)):
        if k == 0:
            base = prototypes[(int(label), int(rng.integers(PROTOTYPES_PER_CLASS)))]
            img = np.roll(base, tuple(rng.integers(-1, 2, 2)), axis=(1, 2)) + rng.normal(0.0, 0.02, base.shape)
        elif k == 1:
            img = _hard_image(rng, int(label), size)
        else:
            img = _shape_image(rng, int(label), size, 0.25 * rng.uniform(0.2, 1.0), (0.18, 0.38))
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64), {"is_duplicate": kind == 0, "is_hard": kind == 1}
