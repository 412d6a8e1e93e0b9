"""Semantic segmentation data in the ADE20K layout, read on demand:

    <root>/images/{training,validation}/<name>.jpg
    <root>/annotations/{training,validation}/<name>.png     (single-channel class indices)

Images and masks are resized (shorter side to `image_size`; bilinear for images, nearest for masks)
and centre-cropped to `image_size` x `image_size`, so batches stack. With `reduce_zero_label`
(ADE20K's convention) mask value 0 ("other") becomes 255, which no loss or metric counts, and every
other value drops by one.

Bad inputs. A pair that cannot be used but leaves the rest of the set sound is *skipped*, counted
(`skipped`, `skipped_reasons`) and logged: an image with no mask, an image whose mask has another
size (probably the wrong annotation). Data that is corrupt or contradicts the config is an *error*
naming the file (`DataError`), because going on would train on garbage or hide a config mistake: an
unreadable file (found when its header is read at load, else when it is first decoded), a mask
value outside [0, num_classes) other than 255 (wrong `data.num_classes` or `reduce_zero_label`?;
found when `labels` is first read, which the driver does before training starts, or at decode).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from raydata_agent.config import IGNORE_INDEX
from raydata_agent.data.files import DataError
from raydata_agent.data.truth import read_truth

log = logging.getLogger(__name__)

ADE20K_NUM_CLASSES = 150
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = {"train": "training", "val": "validation"}
DECODE_ERRORS = (OSError, SyntaxError, ValueError)  # what PIL raises on truncated or malformed files


def _open(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)  # reads the header only; pixels are decoded on first use
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read {path}: {err}") from err


def _header_size(path: str, mask: bool = False) -> tuple[int, int]:
    """Width and height from the header; a mask's mode is checked here too, at load, not at first decode."""
    with _open(path) as img:
        if mask:
            _check_mask_mode(img, path)
        return img.size


MASK_MODES = ("L", "P", "I", "I;16")


def _check_mask_mode(img, path: str) -> None:
    if img.mode not in MASK_MODES:
        raise DataError(f"mask {path} has mode {img.mode}; expected single-channel class indices (mode L or P)")


def _resize_crop(img, size: int, resample):
    """Shorter side to `size`, then the centre `size` x `size` square."""
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), resample)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


class SegData:
    """One split: image/mask file pairs. Satisfies the task adapter's data interface."""

    def __init__(self, root: str | os.PathLike, split: str, image_size: int, num_classes: int,
                 reduce_zero_label: bool = True):
        self.image_size = image_size
        self.num_classes = num_classes
        self.reduce_zero_label = reduce_zero_label
        self.images, self.masks, self.skipped_reasons = self._pair(Path(root).expanduser(), split)
        self._labels: np.ndarray | None = None
        # Ground truth of a generated training split (data/truth.py: is_noisy, ...) for the pool; None for a real set.
        self.truth = read_truth(Path(root).expanduser(), self.images) if split == "train" else None

    def _pair(self, root: Path, split: str) -> tuple[list[str], list[str], list[str]]:
        folder = SPLITS[split]
        image_dir, mask_dir = root / "images" / folder, root / "annotations" / folder
        if not image_dir.is_dir() or not mask_dir.is_dir():
            raise DataError(f"ADE20K layout needs {image_dir}/*.jpg and {mask_dir}/*.png")
        images, masks, skipped = [], [], []
        for image in sorted(image_dir.iterdir()):
            if image.name.startswith(".") or image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            mask = mask_dir / f"{image.stem}.png"
            if not mask.is_file():
                skipped.append(f"{image}: no mask {mask}")
                continue
            image_size, mask_size = _header_size(str(image)), _header_size(str(mask), mask=True)
            if image_size != mask_size:
                skipped.append(f"{image}: image is {image_size[0]}x{image_size[1]} but mask {mask} is "
                               f"{mask_size[0]}x{mask_size[1]}")
                continue
            images.append(str(image))
            masks.append(str(mask))
        if skipped:
            log.warning("%s: skipped %d of %d image/mask pairs, e.g. %s", image_dir, len(skipped),
                        len(skipped) + len(images), "; ".join(skipped[:3]))
        if not images:
            raise DataError(f"no usable image/mask pairs under {image_dir} and {mask_dir}"
                            + (f" ({len(skipped)} skipped, e.g. {skipped[0]})" if skipped else ""))
        return images, masks, skipped

    @property
    def skipped(self) -> int:
        return len(self.skipped_reasons)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sources(self) -> list[str]:
        return self.images

    @property
    def labels(self) -> np.ndarray:
        """Each image's dominant class over its labelled pixels (-1: none): the pool's label column.

        Reading it decodes every mask once (threads: PIL decodes outside the GIL) and checks values.
        """
        if self._labels is None:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                self._labels = np.fromiter(pool.map(self._dominant_class, range(len(self))), np.int64,
                                           count=len(self))
        return self._labels

    def _dominant_class(self, i: int) -> int:
        mask = self._mask(i, resize=False)
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=self.num_classes)
        return int(counts.argmax()) if counts.sum() else -1

    def _mask(self, i: int, resize: bool = True) -> np.ndarray:
        """Class indices (uint8 [H, W]), reduced and checked; 255 is ignored."""
        from PIL import Image

        path = self.masks[i]
        with _open(path) as img:
            _check_mask_mode(img, path)
            try:
                if resize:
                    img = _resize_crop(img, self.image_size, Image.NEAREST)
                mask = np.asarray(img).astype(np.int64)
            except DECODE_ERRORS as err:
                raise DataError(f"cannot read {path}: {err}") from err
        if self.reduce_zero_label:  # as mmseg's LoadAnnotations(reduce_zero_label=True)
            mask = np.where(mask == 0, IGNORE_INDEX, np.where(mask == IGNORE_INDEX, IGNORE_INDEX, mask - 1))
        bad = (mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))
        if bad.any():
            values = np.unique(mask[bad])[:5].tolist()
            raise DataError(f"mask {path} has class values {values} (after reduce_zero_label="
                            f"{self.reduce_zero_label}) outside [0, {self.num_classes}) and not "
                            f"{IGNORE_INDEX}; check data.num_classes and data.reduce_zero_label")
        return mask.astype(np.uint8)

    def _image(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.images[i]
        with _open(path) as img:
            try:
                img = _resize_crop(img.convert("RGB"), self.image_size, Image.BILINEAR)
                return np.asarray(img, np.uint8).transpose(2, 0, 1)
            except DECODE_ERRORS as err:
                raise DataError(f"cannot read {path}: {err}") from err

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 [3, S, S], mask uint8 [S, S]) of sample i."""
        return self._image(i), self._mask(i)

    def batch(self, ids) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float in [0, 1] [B, 3, S, S] (the model normalises) and masks as int64 [B, S, S]."""
        pairs = [self.read(int(i)) for i in np.asarray(ids, np.int64)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).float().div_(255.0)
        y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
        return x, y


def load_segmentation(cfg) -> tuple[SegData, SegData, int]:
    """(train, val, num_classes) for data.name ade20k or synthetic_seg (generated on first use)."""
    if cfg.name == "synthetic_seg":
        from raydata_agent.data.synthetic_seg import NUM_CLASSES, ensure_synthetic_seg

        root, num_classes = ensure_synthetic_seg(cfg), NUM_CLASSES
    elif cfg.name == "ade20k":
        root, num_classes = Path(cfg.path).expanduser(), cfg.num_classes or ADE20K_NUM_CLASSES
    else:
        raise KeyError(f"not a segmentation data set: {cfg.name!r}")
    splits = [SegData(root, split, cfg.image_size, num_classes, cfg.reduce_zero_label) for split in SPLITS]
    return splits[0], splits[1], num_classes
