"""A generated segmentation set in the ADE20K layout: coloured shapes on textured backgrounds.

It lets segmentation runs and tests work with no data set on disk, through the same reader as a
real ADE20K copy (JPEG images, PNG masks, `reduce_zero_label`). Each image has one large shape (so
its dominant class varies) and up to two small ones; a one-pixel band around every shape is mask
value 0, "unlabelled", which `reduce_zero_label` turns into the ignored 255, as ADE20K's 0 is.

Seeded and written once: a folder holds `synthetic_seg.json` with the settings it was made with, and
is reused while they match. Writes go to a temporary folder renamed into place, so processes that
generate concurrently (the driver, Ray workers) never see a half-written set.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from raydata_agent.config import DataConfig, generated_data_folder
from raydata_agent.data.files import DataError
from raydata_agent.data.shapes import _mask as shape_mask

CLASSES = ("background", "disc", "square", "triangle", "ring", "cross")  # after reduce_zero_label
NUM_CLASSES = len(CLASSES)
# Per class colour (RGB in [0, 1]); each shape jitters around it, so colour helps but is not enough.
COLOURS = np.array([[0.0, 0.0, 0.0], [0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [0.25, 0.35, 0.95],
                    [0.95, 0.85, 0.2], [0.85, 0.3, 0.9]])
MARKER = "synthetic_seg.json"


def _band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of the shape's edge (dilation minus erosion, 4-neighbourhood)."""
    padded = np.pad(mask, 1)
    shifted = [padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    return np.logical_or.reduce(shifted) & ~np.logical_and.reduce(shifted)


def make_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 [S, S, 3], raw mask uint8 [S, S]: 0 unlabelled, 1 background, 2.. shapes)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 6) / size
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))[..., None] > 0
    dark, light = rng.uniform(0.0, 0.3, 3), rng.uniform(0.2, 0.5, 3)
    image = np.where(stripes, light, dark)
    mask = np.ones((size, size), np.uint8)
    # The large shape first, near the centre (it usually covers most of the image), then small ones.
    shapes = [(rng.integers(1, NUM_CLASSES), rng.uniform(0.42, 0.55), rng.uniform(0.35, 0.65, 2))]
    shapes += [(rng.integers(1, NUM_CLASSES), rng.uniform(0.1, 0.18), rng.uniform(0.15, 0.85, 2))
               for _ in range(rng.integers(0, 3))]
    for cls, rel, centre in shapes:
        r, (cx, cy) = rel * size, centre * size
        region = shape_mask(CLASSES[cls], size, cx, cy, r)
        image[region] = np.clip(COLOURS[cls] + rng.normal(0, 0.12, 3), 0, 1)
        mask[region] = cls + 1
        mask[_band(region)] = 0
    image = image + rng.normal(0, rng.uniform(0.02, 0.12), image.shape)  # per-image noise: some are hard
    return np.clip(image * 255, 0, 255).astype(np.uint8), mask


def write_synthetic_seg(root: Path, num_train: int, num_val: int, size: int, seed: int) -> None:
    """Write the set under `root` (which must not exist yet) in the ADE20K layout."""
    from PIL import Image

    for split, count, split_seed in (("training", num_train, seed), ("validation", num_val, seed + 10_000)):
        rng = np.random.default_rng(split_seed)
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(count):
            image, mask = make_image(rng, size)
            name = f"synthetic_{split}_{i:06d}"
            Image.fromarray(image).save(root / "images" / split / f"{name}.jpg", quality=95)
            Image.fromarray(mask, mode="L").save(root / "annotations" / split / f"{name}.png")


def ensure_synthetic_seg(cfg: DataConfig) -> Path:
    """The folder holding the set for these settings, generated on first use.

    `data.path`; unset, `./data_cache/synthetic_seg-<settings>`, which `load_config` writes, absolute,
    into data.path so that Ray workers (another working directory) read the driver's copy.
    """
    settings = {"num_samples": cfg.num_samples, "val_samples": cfg.val_samples,
                "image_size": cfg.image_size, "seed": cfg.seed, "classes": list(CLASSES)}
    root = Path(cfg.path).expanduser() if cfg.path else generated_data_folder(cfg)
    marker = root / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != settings:
            raise DataError(f"{root} holds a synthetic_seg set made with {found}, not {settings}; "
                            f"choose another data.path or remove it")
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(f"data.path={str(root)!r} is not empty and holds no {MARKER}; synthetic_seg "
                        f"writes only into a new or empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write_synthetic_seg(tmp, cfg.num_samples, cfg.val_samples, cfg.image_size, cfg.seed)
        (tmp / MARKER).write_text(json.dumps(settings))
        if root.exists():
            root.rmdir()  # empty (checked above); rename needs the name free
        os.rename(tmp, root)
    except OSError:
        if not marker.is_file():  # not another process finishing first: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
