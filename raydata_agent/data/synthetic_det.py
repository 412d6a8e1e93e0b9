"""A generated YOLO-format detection set: coloured rectangles and ellipses on a noisy dark
background, 4 classes, 1-4 boxes per image; optionally with annotation noise and near-duplicates.

Noise (`data.label_noise`, a share of TRAINING images; validation is always clean) gives each noisy
image one corruption, the three an annotator makes (KINDS): a box's class changed (wrong_class), one
box's label line dropped (missing_box: only where the image has 2+ boxes, else another kind), or a
box drawn loose (loose_box: 1.3-1.8x larger per side, shifted by up to 20% of its size, and still
around the object, clipped to the image). Near-duplicates (`data.duplicates`) are copies of another
training image moved a few pixels (the boxes with it), brightness-jittered and re-noised, with that
image's clean labels. Which images is data/corruption.py's plan; the ground truth goes to
TRUTH_FILE (`is_noisy`, `is_wrong_class`, `is_missing_box`, `is_loose_box`, `is_duplicate`).

Written once per settings (the folder's name holds them all) and reused.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from raydata_agent.data.corruption import image_rng, jitter, plan, shift, shift_amount
from raydata_agent.data.truth import write_truth

NAMES = ("red_rect", "green_rect", "blue_ellipse", "yellow_ellipse")
COLOURS = ((40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 220, 230))  # BGR
KINDS = ("wrong_class", "missing_box", "loose_box")


def folder_name(size: int, num_train: int, num_val: int, seed: int, label_noise: float = 0.0,
                duplicates: float = 0.0) -> str:
    """Every setting is in the name, so a clean and a noisy set never share a folder."""
    return (f"synthetic_det_{size}px_{num_train}_{num_val}_s{seed}" + (f"_noise{label_noise:g}" if label_noise else "")
            + (f"_dup{duplicates:g}" if duplicates else ""))


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[list]]:
    """One image (uint8 BGR [S, S, 3]) and its boxes [[cls, x0, y0, w, h]] in pixels."""
    import cv2

    img = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)  # noisy dark background
    boxes = []
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(0, len(NAMES)))
        w, h = rng.uniform(0.12, 0.4, 2) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        colour = tuple(int(c) for c in np.clip(np.array(COLOURS[cls]) + rng.integers(-30, 30, 3), 0, 255))
        if cls < 2:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, -1)
        else:
            cv2.ellipse(img, (int(x0 + w / 2), int(y0 + h / 2)), (int(w / 2), int(h / 2)), 0, 0, 360, colour, -1)
        boxes.append([cls, x0, y0, w, h])
    return img, boxes


def label_lines(boxes: list[list], size: int) -> str:
    """YOLO label text: `class cx cy w h`, normalised, one box a line."""
    return "\n".join(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}"
                     for cls, x0, y0, w, h in boxes) + "\n"


def _clip(cls: int, x0: float, y0: float, x1: float, y1: float, size: int) -> list:
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(size)), min(y1, float(size))
    return [cls, x0, y0, x1 - x0, y1 - y0]


def corrupt(boxes: list[list], rng: np.random.Generator, size: int) -> tuple[list[list], str]:
    """(boxes with one annotation error, its kind). The input is not changed."""
    boxes = [list(b) for b in boxes]
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind == "missing_box" and len(boxes) < 2:  # dropping the only box would make a background image
        kind = ("wrong_class", "loose_box")[int(rng.integers(2))]
    j = int(rng.integers(len(boxes)))
    cls, x0, y0, w, h = boxes[j]
    if kind == "wrong_class":
        boxes[j][0] = (cls + int(rng.integers(1, len(NAMES)))) % len(NAMES)
    elif kind == "missing_box":
        del boxes[j]
    else:  # loose: larger per side; the shift (up to 20% of the side) keeps the object inside the box
        sx, sy = rng.uniform(1.3, 1.8, 2)
        dx = np.clip(rng.uniform(-0.2, 0.2) * w, -(sx - 1) / 2 * w, (sx - 1) / 2 * w)
        dy = np.clip(rng.uniform(-0.2, 0.2) * h, -(sy - 1) / 2 * h, (sy - 1) / 2 * h)
        cx, cy = x0 + w / 2 + dx, y0 + h / 2 + dy
        boxes[j] = _clip(cls, cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2, size)
    return boxes, kind


def near_copy(img: np.ndarray, boxes: list[list], rng: np.random.Generator, size: int):
    """A near-duplicate of (img, boxes): moved a few pixels (the uncovered margin is fresh background),
    boxes moved with it and clipped, brightness-jittered, with fresh pixel noise."""
    dx, dy = shift_amount(rng, size)
    moved = shift(img, dx, dy, rng.integers(0, 90, img.shape).astype(np.uint8))
    boxes = [_clip(c, x0 + dx, y0 + dy, x0 + w + dx, y0 + h + dy, size) for c, x0, y0, w, h in boxes]
    return jitter(moved, rng), boxes


def _write_train(tmp: Path, rng: np.random.Generator, count: int, size: int, seed: int, label_noise: float,
                 duplicates: float) -> None:
    """Every training image is drawn (so validation's stream is unchanged); a duplicate's drawing is
    replaced by a near-copy of its original, which is held in memory until the copies are written."""
    import cv2

    chosen = plan(count, label_noise, duplicates, seed)
    truth = {name: np.zeros(count, bool) for name in ("is_noisy", *(f"is_{k}" for k in KINDS))}
    truth["is_duplicate"] = chosen.is_duplicate

    def write(i: int, img: np.ndarray, boxes: list[list], r: np.random.Generator) -> None:
        if chosen.noisy[i]:
            boxes, kind = corrupt(boxes, r, size)
            truth["is_noisy"][i] = truth[f"is_{kind}"][i] = True
        cv2.imwrite(str(tmp / "images" / "train" / f"{i:05d}.png"), img)
        (tmp / "labels" / "train" / f"{i:05d}.txt").write_text(label_lines(boxes, size))

    keep, originals = chosen.sources, {}
    for i in range(count):
        img, boxes = draw(rng, size)
        if i in keep:
            originals[i] = img, boxes
        if chosen.source[i] < 0:
            write(i, img, boxes, image_rng(seed, i))
    for i in np.flatnonzero(chosen.is_duplicate):
        r = image_rng(seed, int(i))
        write(int(i), *near_copy(*originals[int(chosen.source[i])], r, size), r)
    if label_noise or duplicates:
        write_truth(tmp, [f"images/train/{i:05d}.png" for i in range(count)], truth)


def make_synthetic_detection(root: str | os.PathLike, num_train: int = 200, num_val: int = 50, size: int = 128,
                             seed: int = 0, label_noise: float = 0.0, duplicates: float = 0.0) -> Path:
    """Write the set under root/<folder_name(...)> once and reuse it; returns the data set YAML's path."""
    import cv2

    root = Path(root) / folder_name(size, num_train, num_val, seed, label_noise, duplicates)
    spec = root / "data.yaml"
    if spec.exists():
        return spec
    rng = np.random.default_rng(seed)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    for split in ("train", "val"):
        (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
        (tmp / "labels" / split).mkdir(parents=True, exist_ok=True)
    _write_train(tmp, rng, num_train, size, seed, label_noise, duplicates)
    for i in range(num_val):  # validation: clean, drawn after training from the same stream
        img, boxes = draw(rng, size)
        cv2.imwrite(str(tmp / "images" / "val" / f"{i:05d}.png"), img)
        (tmp / "labels" / "val" / f"{i:05d}.txt").write_text(label_lines(boxes, size))
    (tmp / "data.yaml").write_text(yaml.safe_dump(
        {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(NAMES))}))
    try:
        os.replace(tmp, root)  # atomic: concurrent workers never see a half-written set
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return spec
