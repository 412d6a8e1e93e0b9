"""A generated image-classification set: 10 classes of coloured shapes on noisy backgrounds.

It lets every run and test work with no data set on disk. Seeded, so every Ray worker
regenerates exactly the same images instead of receiving them over the network.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("disc", "square", "triangle", "cross", "ring", "hbar", "vbar", "diamond", "xmark", "frame")


def _mask(kind: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    t = max(1.5, r / 3)  # stroke width
    if kind == "disc":
        return dx**2 + dy**2 <= r**2
    if kind == "square":
        return (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
    if kind == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == "cross":
        return ((np.abs(dx) <= t) & (np.abs(dy) <= r)) | ((np.abs(dy) <= t) & (np.abs(dx) <= r))
    if kind == "ring":
        d = np.sqrt(dx**2 + dy**2)
        return (d <= r) & (d >= r - t)
    if kind == "hbar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= t)
    if kind == "vbar":
        return (np.abs(dy) <= r) & (np.abs(dx) <= t)
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if kind == "xmark":
        return ((np.abs(dx - dy) <= t) | (np.abs(dx + dy) <= t)) & (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if kind == "frame":
        outer = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
        inner = (np.abs(dx) <= r * 0.85 - t) & (np.abs(dy) <= r * 0.85 - t)
        return outer & ~inner
    raise ValueError(kind)


def make_shapes(num: int, size: int = 32, seed: int = 0, noise: float = 0.25,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N, 3, size, size], labels int64 [N]), classes balanced unless `labels`
    are given (a long-tailed profile, data/longtail.py)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = np.arange(num) % len(SHAPES)
        rng.shuffle(labels)
    labels = np.asarray(labels, np.int64)
    images = np.empty((len(labels), 3, size, size), np.uint8)
    for i, label in enumerate(labels):
        bg = rng.uniform(0.0, 0.5, 3)[:, None, None]
        img = np.broadcast_to(bg, (3, size, size)).copy()
        r = rng.uniform(size * 0.18, size * 0.38)
        cx, cy = rng.uniform(r, size - r, 2)
        colour = rng.uniform(0.4, 1.0, 3)
        mask = _mask(SHAPES[label], size, cx, cy, r)
        img[:, mask] = colour[:, None]
        img += rng.normal(0.0, noise * rng.uniform(0.2, 1.0), img.shape)  # per-image noise: some are hard
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
