"""`data.name=textures`: a generated set of oriented gratings, a visual family unlike the shapes.

Class c is a sinusoidal grating at orientation c * 180 / C degrees (jittered), at a random spatial
frequency and phase, tinted, with a weaker grating of random orientation on top and pixel noise: the
class lives in the texture's orientation, everywhere in the image, not in one object's outline.
Neighbouring classes are the nearest orientations (class C-1 wraps round to class 0), so
`data.noise_kind=pair` (c -> c+1) mimics the confusion a real annotator makes. No horizontal flip
applies (it mirrors the orientation into another class): it is an in-memory set with no augmentation.
"""
from __future__ import annotations

import numpy as np

CLASSES = 10
JITTER_DEG = 4.0  # orientation jitter (std): neighbours are 18 degrees apart


def make_textures(num: int, size: int = 32, seed: int = 0, labels: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, size, size], labels int64 [N]); balanced classes unless `labels` are given."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = np.arange(num) % CLASSES
        rng.shuffle(labels)
    labels = np.asarray(labels, np.int64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((len(labels), 3, size, size), np.uint8)
    for i, label in enumerate(labels):
        theta = np.deg2rad(label * 180.0 / CLASSES + rng.normal(0.0, JITTER_DEG))
        freq = rng.uniform(0.08, 0.22)  # cycles per pixel
        main = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
        phi = rng.uniform(0, np.pi)
        distractor = np.sin(2 * np.pi * rng.uniform(0.05, 0.25) * (xx * np.cos(phi) + yy * np.sin(phi))
                            + rng.uniform(0, 2 * np.pi))
        pattern = rng.uniform(0.25, 0.45) * main + rng.uniform(0.1, 0.3) * distractor
        tint = rng.uniform(0.5, 1.0, 3)[:, None, None]
        img = 0.5 + tint * pattern[None] + rng.normal(0.0, rng.uniform(0.1, 0.35), (3, size, size))
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images, labels
