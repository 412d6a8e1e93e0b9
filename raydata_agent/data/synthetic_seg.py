"""A generated segmentation set in the ADE20K layout: coloured shapes on textured backgrounds.

It lets segmentation runs and tests work with no data set on disk, through the same reader as a
real ADE20K copy (JPEG images, PNG masks, `reduce_zero_label`). Each image has one large shape (so
its dominant class varies) and up to two small ones; a one-pixel band around every shape is mask
value 0, "unlabelled", which `reduce_zero_label` turns into the ignored 255, as ADE20K's 0 is.

Training images can carry annotation noise (`data.label_noise`: one error on one shape per noisy
image, KINDS: a class-swapped region, a coarse mask, an eroded mask) and near-duplicates
(`data.duplicates`: another training image moved a few pixels, re-lit and re-noised, with its clean
mask); validation is always clean. Which images is data/corruption.py's plan; the ground truth goes
to TRUTH_FILE (`is_noisy`, `is_class_swap`, `is_coarse`, `is_eroded`, `is_duplicate`), which the
reader gives the pool.

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
from raydata_agent.data.corruption import image_rng, jitter, plan, shift, shift_amount
from raydata_agent.data.files import DataError
from raydata_agent.data.shapes import _mask as shape_mask
from raydata_agent.data.truth import write_truth

CLASSES = ("background", "disc", "square", "triangle", "ring", "cross")  # after reduce_zero_label
NUM_CLASSES = len(CLASSES)
# Per class colour (RGB in [0, 1]); each shape jitters around it, so colour helps but is not enough.
COLOURS = np.array([[0.0, 0.0, 0.0], [0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [0.25, 0.35, 0.95],
                    [0.95, 0.85, 0.2], [0.85, 0.3, 0.9]])
MARKER = "synthetic_seg.json"
KINDS = ("class_swap", "coarse", "eroded")  # annotation errors (data.label_noise): is_<kind> in the pool


def _band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of the shape's edge (dilation minus erosion, 4-neighbourhood)."""
    padded = np.pad(mask, 1)
    shifted = [padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    return np.logical_or.reduce(shifted) & ~np.logical_and.reduce(shifted)


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """One (image uint8 [S, S, 3], raw mask uint8 [S, S]: 0 unlabelled, 1 background, 2.. shapes,
    shapes [(class, region bool [S, S])] in drawing order: what a corruption picks from)."""
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
    regions = []
    for cls, rel, centre in shapes:
        r, (cx, cy) = rel * size, centre * size
        region = shape_mask(CLASSES[cls], size, cx, cy, r)
        image[region] = np.clip(COLOURS[cls] + rng.normal(0, 0.12, 3), 0, 1)
        mask[region] = cls + 1
        mask[_band(region)] = 0
        regions.append((int(cls), region))
    image = image + rng.normal(0, rng.uniform(0.02, 0.12), image.shape)  # per-image noise: some are hard
    return np.clip(image * 255, 0, 255).astype(np.uint8), mask, regions


def _disk(k: int) -> np.ndarray:
    yy, xx = np.ogrid[-k:k + 1, -k:k + 1]
    return yy ** 2 + xx ** 2 <= k * k


def corrupt(mask: np.ndarray, shapes: list[tuple[int, np.ndarray]], rng: np.random.Generator,
            size: int) -> tuple[np.ndarray, str]:
    """(raw mask with one annotation error on one shape, its kind); the input is not changed.

    class_swap: the shape's pixels get another shape class. coarse: the shape's mask becomes its
    bounding box (where that adds 20%+ of its area), else it is dilated; either way only background
    and unlabelled pixels are taken, never another shape's. eroded: the shape's mask is eroded and
    the lost ring becomes background (half the shape kept where 2 px allow). Dilation and erosion use a disk
    of 4-8% of the side (3-5 px at 64).
    """
    from scipy.ndimage import binary_dilation, binary_erosion

    mask = mask.copy()
    kind = KINDS[int(rng.integers(len(KINDS)))]
    disk = _disk(max(2, round(rng.uniform(0.04, 0.08) * size)))
    own = [region & (mask == cls + 1) for cls, region in shapes]  # the shape's labelled, visible pixels
    choices = [j for j, o in enumerate(own) if o.any()] or [0]
    j = choices[int(rng.integers(len(choices)))]
    cls, region = shapes[j]
    if kind == "class_swap":  # shape classes are 1..C-1: move to another of them (mask value class + 1)
        other = 1 + (cls - 1 + int(rng.integers(1, NUM_CLASSES - 1))) % (NUM_CLASSES - 1)
        mask[own[j]] = other + 1
    elif kind == "coarse":
        ys, xs = np.nonzero(region)
        box = np.zeros_like(region)
        box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        grown = box if rng.random() < 0.5 and box.sum() >= 1.2 * region.sum() else binary_dilation(region, disk)
        mask[grown & (mask <= 1)] = cls + 1
    else:  # a thin shape (a ring) keeps half its pixels where it can: the erosion shrinks, to 2 px at least
        k = len(disk) // 2
        while k > 2 and (own[j] & binary_erosion(region, _disk(k), border_value=1)).sum() < own[j].sum() / 2:
            k -= 1
        mask[own[j] & ~binary_erosion(region, _disk(k), border_value=1)] = 1
    return mask, kind


def near_copy(image: np.ndarray, mask: np.ndarray, shapes: list[tuple[int, np.ndarray]],
              rng: np.random.Generator, size: int):
    """A near-duplicate: image and mask moved a few pixels (the image's margin repeats its edge, the
    mask's is unlabelled), brightness-jittered, with fresh pixel noise; the same clean labels."""
    dx, dy = shift_amount(rng, size)
    rows, cols = np.clip(np.arange(size) - dy, 0, size - 1), np.clip(np.arange(size) - dx, 0, size - 1)
    moved = [(cls, shift(region, dx, dy, False)) for cls, region in shapes]
    return jitter(image[rows][:, cols], rng), shift(mask, dx, dy, 0), moved


def _write_training(root: Path, count: int, size: int, seed: int, label_noise: float, duplicates: float) -> None:
    """Training images: every one drawn from the split's stream; a duplicate's drawing replaced by a
    near-copy of its original (held in memory until then); noisy ones corrupted; TRUTH_FILE."""
    from PIL import Image

    chosen = plan(count, label_noise, duplicates, seed)
    truth = {name: np.zeros(count, bool) for name in ("is_noisy", *(f"is_{k}" for k in KINDS))}
    truth["is_duplicate"] = chosen.is_duplicate
    names = [f"synthetic_training_{i:06d}" for i in range(count)]

    def write(i: int, image: np.ndarray, mask: np.ndarray, shapes, r: np.random.Generator) -> None:
        if chosen.noisy[i]:
            mask, kind = corrupt(mask, shapes, r, size)
            truth["is_noisy"][i] = truth[f"is_{kind}"][i] = True
        Image.fromarray(image).save(root / "images" / "training" / f"{names[i]}.jpg", quality=95)
        Image.fromarray(mask, mode="L").save(root / "annotations" / "training" / f"{names[i]}.png")

    rng, keep, originals = np.random.default_rng(seed), chosen.sources, {}
    for i in range(count):
        drawn = draw(rng, size)
        if i in keep:
            originals[i] = drawn
        if chosen.source[i] < 0:
            write(i, *drawn, image_rng(seed, i))
    for i in np.flatnonzero(chosen.is_duplicate):
        r = image_rng(seed, int(i))
        write(int(i), *near_copy(*originals[int(chosen.source[i])], r, size), r)
    if label_noise or duplicates:
        write_truth(root, [f"images/training/{n}.jpg" for n in names], truth)


def write_synthetic_seg(root: Path, num_train: int, num_val: int, size: int, seed: int, label_noise: float = 0.0,
                        duplicates: float = 0.0) -> None:
    """Write the set under `root` (which must not exist yet) in the ADE20K layout; validation clean."""
    from PIL import Image

    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
    _write_training(root, num_train, size, seed, label_noise, duplicates)
    rng = np.random.default_rng(seed + 10_000)
    for i in range(num_val):
        image, mask, _ = draw(rng, size)
        name = f"synthetic_validation_{i:06d}"
        Image.fromarray(image).save(root / "images" / "validation" / f"{name}.jpg", quality=95)
        Image.fromarray(mask, mode="L").save(root / "annotations" / "validation" / f"{name}.png")


def ensure_synthetic_seg(cfg: DataConfig) -> Path:
    """The folder holding the set for these settings, generated on first use.

    `data.path`; unset, `./data_cache/synthetic_seg-<settings>`, which `load_config` writes, absolute,
    into data.path so that Ray workers (another working directory) read the driver's copy.
    """
    settings = {"num_samples": cfg.num_samples, "val_samples": cfg.val_samples, "image_size": cfg.image_size,
                "seed": cfg.seed, "classes": list(CLASSES), "label_noise": cfg.label_noise,
                "duplicates": cfg.duplicates}
    root = Path(cfg.path).expanduser() if cfg.path else generated_data_folder(cfg)
    marker = root / MARKER
    if marker.is_file():
        found = {"label_noise": 0.0, "duplicates": 0.0, **json.loads(marker.read_text())}  # older: clean
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
        write_synthetic_seg(tmp, cfg.num_samples, cfg.val_samples, cfg.image_size, cfg.seed, cfg.label_noise,
                            cfg.duplicates)
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
