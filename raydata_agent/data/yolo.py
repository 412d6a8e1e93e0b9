"""YOLO-format detection data: an ultralytics data set YAML, image folders and `labels/*.txt`.

Labels are checked when the data set is opened, so a bad file fails here with its name and line,
not deep inside ultralytics mid-epoch:
- a malformed line, a class id out of range, or a box outside [0, 1] is an error (file:line);
- an unreadable or zero-byte image, or one whose file name is not UTF-8, is skipped and counted
  (`skipped`), so one broken file does not cost a run; the runner logs the list to MLflow;
- an image a split names twice (a `.txt` list repeating a line) is kept once, with a warning;
- an image with no label file is background (no boxes), as in ultralytics.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from raydata_agent.data.files import DataError, not_utf8, printable_path
from raydata_agent.data.truth import read_truth

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
BOX_TOLERANCE = 1e-3  # normalised coordinates a hair outside [0, 1] are rounding, not errors


def label_path(image: Path) -> Path:
    """ultralytics' convention: the last `images` folder in the path becomes `labels`, suffix .txt."""
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if idx is None:
        return image.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_labels(path: Path, num_classes: int) -> np.ndarray:
    """[n, 5] float32 rows `class cx cy w h`; raises DataError naming file and line."""
    if not path.exists():
        return np.zeros((0, 5), np.float32)  # background image
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 5:
            raise DataError(f"{path}:{lineno}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line!r}")
        try:
            cls = int(fields[0])
            box = [float(v) for v in fields[1:]]
        except ValueError:
            raise DataError(f"{path}:{lineno}: not numbers: {line!r}") from None
        if not 0 <= cls < num_classes:
            raise DataError(f"{path}:{lineno}: class id {cls} is outside 0..{num_classes - 1}")
        cx, cy, w, h = box
        lo, hi = -BOX_TOLERANCE, 1 + BOX_TOLERANCE
        if not (lo <= cx - w / 2 and cx + w / 2 <= hi and lo <= cy - h / 2 and cy + h / 2 <= hi and w > 0 and h > 0):
            raise DataError(f"{path}:{lineno}: box {box} is not inside [0, 1] (normalised cx cy w h)")
        rows.append([cls, *np.clip(box, 0.0, 1.0)])
    return np.asarray(rows, np.float32).reshape(-1, 5)


def image_ok(path: Path) -> str | None:
    """None if the image can be decoded, else the reason it is skipped."""
    if reason := not_utf8(path):
        return reason
    if path.stat().st_size == 0:
        return "zero-byte file"
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:  # PIL raises many kinds for a broken file
        return f"unreadable: {err}"
    return None


@dataclass
class DetectionData:
    files: list[str]
    boxes: list[np.ndarray]  # per image [n, 5]: class cx cy w h (normalised)
    num_classes: int
    image_size: int
    augment: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seed: int = 0
    # Ground truth of a generated set (data/truth.py: is_noisy, is_duplicate, ...), for the pool's
    # columns; None for a real set. Known to benchmarks, never to selectors.
    truth: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sources(self) -> list[str]:
        return self.files

    @property
    def labels(self) -> np.ndarray:
        """The pool's label column: each image's most frequent class, -1 for background."""
        return np.asarray([np.bincount(b[:, 0].astype(int)).argmax() if len(b) else -1 for b in self.boxes],
                          np.int64)

    def _image(self, i: int) -> np.ndarray:
        import cv2

        img = cv2.imread(self.files[i], cv2.IMREAD_COLOR)
        if img is None:  # passed the open check but failed to decode: name it
            raise DataError(f"cannot decode image {self.files[i]}")
        img = cv2.resize(img, (self.image_size, self.image_size), interpolation=cv2.INTER_LINEAR)
        return img[:, :, ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW

    def batch(self, ids) -> dict:
        """An ultralytics training batch: img [B,3,S,S] in [0,1], batch_idx, cls [n,1], bboxes [n,4] xywh.

        Augmentation is per image (horizontal flip, ultralytics' fliplr=0.5). Mosaic and mixup are
        off: they mix images, and a per-image loss must belong to one source image.
        """
        rng = np.random.default_rng()
        imgs, idx, cls, boxes = [], [], [], []
        for k, i in enumerate(np.asarray(ids)):
            img, b = self._image(int(i)), self.boxes[int(i)].copy()
            if self.augment and rng.random() < 0.5:
                img = img[:, :, ::-1]
                b[:, 1] = 1.0 - b[:, 1]
            imgs.append(np.ascontiguousarray(img))
            idx.append(np.full(len(b), k, np.float32))
            cls.append(b[:, :1])
            boxes.append(b[:, 1:])
        return {"img": torch.from_numpy(np.stack(imgs)).float().div_(255.0),
                "batch_idx": torch.from_numpy(np.concatenate(idx)),
                "cls": torch.from_numpy(np.concatenate(cls)),
                "bboxes": torch.from_numpy(np.concatenate(boxes))}


def _split_images(root: Path, entry) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    files: list[Path] = []
    for item in entries:
        p = (root / item) if not Path(item).is_absolute() else Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix == ".txt" and p.is_file():  # a list of image paths, one per line
            files += _listed_images(root, p)
        else:
            raise DataError(f"data set split {item!r} ({p}) is neither an image folder nor a .txt list")
    times = Counter(files)  # one pool row per image: a repeat would be trained on and scored twice
    repeated = [f for f, n in times.items() if n > 1]
    if repeated:
        log.warning("split %r of %s names %d image(s) more than once; each is kept once, e.g. %s", entry, root,
                    len(repeated), ", ".join(map(printable_path, repeated[:3])))
    return list(times)


def _listed_images(root: Path, listing: Path) -> list[Path]:
    """The images a `.txt` list names, relative to the data set root. A line that leads outside the
    root (`../../etc/...`, or an absolute path elsewhere) is an error: a list must not make the
    reader open files the data set does not hold."""
    inside = root.resolve()
    files = []
    # A name that is not UTF-8 is read as the file system writes it (surrogateescape): image_ok skips it by name.
    for lineno, line in enumerate(listing.read_text(errors="surrogateescape").splitlines(), 1):
        if not line.strip():
            continue
        path = (root / line.strip()).resolve()
        if not path.is_relative_to(inside):
            raise DataError(f"{listing}:{lineno}: {line.strip()!r} points outside the data set root {inside}")
        files.append(path)
    return files


def load_yolo(yaml_path: str | os.PathLike, image_size: int, augment: bool = True):
    """(train, val, class names) from an ultralytics data set YAML."""
    yaml_path = Path(yaml_path)
    try:
        spec = yaml.safe_load(yaml_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read data set YAML {yaml_path}: {err}") from err
    for key in ("train", "val", "names"):
        if key not in spec:
            raise DataError(f"data set YAML {yaml_path} lacks the key {key!r}")
    names = spec["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    root = Path(spec.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    splits = []
    for split in ("train", "val"):
        files, boxes, skipped = [], [], []
        for image in _split_images(root, spec[split]):
            reason = image_ok(image)
            if reason:
                skipped.append((printable_path(image), reason))
                continue
            boxes.append(read_labels(label_path(image), len(names)))
            files.append(str(image))
        if not files:
            raise DataError(f"no readable images in the {split!r} split of {yaml_path}")
        splits.append(DetectionData(files, boxes, len(names), image_size, augment and split == "train", skipped,
                                    truth=read_truth(root, files) if split == "train" else None))
    return splits[0], splits[1], names
