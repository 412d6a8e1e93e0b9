"""Data sets for the classification task, all local: nothing is downloaded at run time.

Every reader returns `ImageData`: uint8 images in memory (or image files read on demand) and
labels, indexable by sample id so a worker can fetch exactly the selected ids.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from raydata_agent.config import DataConfig
from raydata_agent.data.files import TRUTH_FILE, DataError, printable_path, unreadable_image
from raydata_agent.data.recipes import wants

log = logging.getLogger(__name__)


@dataclass
class ImageData:
    labels: np.ndarray  # int64 [N]
    images: np.ndarray | None = None  # uint8 [N, C, H, W] when held in memory
    files: list[str] | None = None  # image paths when read on demand (ImageFolder)
    image_size: int = 32
    channels: int = 3
    # Ground truth known to benchmarks, never to selectors: bool [N] columns such as is_noisy (label
    # flipped), is_duplicate, is_hard. The pool stores them next to the scores (and in snapshots).
    truth: dict[str, np.ndarray] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) dropped at load
    augment: str | None = None  # training split: "crop_flip" | "resized_crop_flip" (data/recipes.py)
    decode_threads: int = 1  # files decoded side by side per batch (PIL releases the GIL)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sources(self) -> list[str] | None:
        return self.files

    def batch(self, ids: np.ndarray, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float in [0, 1] and labels, for the given sample ids (those whose file is
        readable); augmented (training) when this split has an augmentation and `rng` draws it."""
        return self.read(ids, rng)[1:]

    def read(self, ids: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(ids read, images, labels). A file that passed the header check at load but cannot be
        decoded now (truncated, changed on disk) is skipped, counted in `skipped` and logged once,
        not fatal: the run goes on without it, and its id is left out of the ids read."""
        ids = np.asarray(ids, np.int64)
        if self.images is not None:
            x = torch.from_numpy(self.images[ids]).float().div_(255.0)
        else:
            if self.decode_threads > 1:
                from raydata_agent.data.recipes import decode_pool

                decoded = list(decode_pool(self.decode_threads).map(self._decode, ids))
            else:
                decoded = [self._decode(i) for i in ids]
            ok = np.array([d is not None for d in decoded], bool)
            ids = ids[ok]
            x = torch.stack([d for d in decoded if d is not None]) if ok.any() else \
                torch.empty(0, self.channels, self.image_size, self.image_size)
        if self.augment and rng is not None and len(ids):
            from raydata_agent.data.recipes import augment_batch

            x = augment_batch(x, self.augment, rng)
        return ids, x, torch.from_numpy(self.labels[ids])

    def _decode(self, i: int) -> torch.Tensor | None:
        try:
            return _read_image(self.files[i], self.image_size)
        except DataError as err:
            if all(f != self.files[i] for f, _ in self.skipped):
                self.skipped.append((self.files[i], f"mid-run: {err}"))
                log.warning("skipped %s (%d skipped so far): %s", self.files[i], len(self.skipped), err)
            return None


def _read_image(path: str, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size, size))
            arr = np.asarray(img, np.uint8).transpose(2, 0, 1).copy()
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(arr).float().div_(255.0)


def _flip_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int,
                 kind: str = "symmetric") -> tuple[np.ndarray, np.ndarray]:
    """Replace a fraction of labels by another class: a uniform other class (symmetric noise), or
    the class's fixed partner c+1 mod C (class-pair, asymmetric noise: Patrini et al. 2017).

    Returns (labels, flipped mask): the mask is the `is_noisy` ground truth."""
    if fraction <= 0:
        return labels, np.zeros(len(labels), bool)
    rng = np.random.default_rng(seed + 1)
    labels = labels.copy()
    flip = rng.random(len(labels)) < fraction
    shift = rng.integers(1, num_classes, flip.sum()) if kind == "symmetric" else 1
    labels[flip] = (labels[flip] + shift) % num_classes
    return labels, flip


def _train_labels(cfg: DataConfig, num_classes: int) -> np.ndarray | None:
    """A long-tailed label list when data.imbalance > 1 (data/longtail.py), else None (balanced)."""
    if cfg.imbalance <= 1:
        return None
    from raydata_agent.data.longtail import long_tail_counts, long_tail_labels

    counts = long_tail_counts(cfg.num_samples, num_classes, cfg.imbalance)
    return long_tail_labels(counts, np.random.default_rng([cfg.seed, 7]))


def _shapes(cfg: DataConfig):
    from raydata_agent.data.shapes import SHAPES, make_shapes

    x_tr, y_tr = make_shapes(cfg.num_samples, cfg.image_size, seed=cfg.seed, labels=_train_labels(cfg, len(SHAPES)))
    x_va, y_va = make_shapes(cfg.val_samples, cfg.image_size, seed=cfg.seed + 10_000)
    return x_tr, y_tr, x_va, y_va, len(SHAPES)


def _textures(cfg: DataConfig):
    from raydata_agent.data.textures import CLASSES, make_textures

    x_tr, y_tr = make_textures(cfg.num_samples, cfg.image_size, seed=cfg.seed, labels=_train_labels(cfg, CLASSES))
    x_va, y_va = make_textures(cfg.val_samples, cfg.image_size, seed=cfg.seed + 10_000)
    return x_tr, y_tr, x_va, y_va, CLASSES


def _mixture(cfg: DataConfig):
    from raydata_agent.data.mixture import HARD_SHARE_VAL, SHAPES, make_mixture

    x_tr, y_tr, truth = make_mixture(cfg.num_samples, cfg.image_size, seed=cfg.seed)
    x_va, y_va, _ = make_mixture(cfg.val_samples, cfg.image_size, seed=cfg.seed + 10_000, duplicate_share=0.0,
                                 hard_share=HARD_SHARE_VAL)
    return x_tr, y_tr, x_va, y_va, len(SHAPES), truth


def _digits(cfg: DataConfig):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    n_val = len(images) // 5
    va, tr = order[:n_val], order[n_val:]
    return images[tr], digits.target[tr], images[va], digits.target[va], 10


def _cifar(cfg: DataConfig):
    import torchvision

    cls = torchvision.datasets.CIFAR10 if cfg.name == "cifar10" else torchvision.datasets.CIFAR100
    root = Path(cfg.path).expanduser()
    folder = root / cls.base_folder
    if not folder.is_dir():
        raise DataError(f"cannot read {cfg.name} from {root}: {folder} does not exist (torchvision's on-disk "
                        f"format, as unpacked from {cls.filename}; nothing is downloaded at run time)")
    try:
        train = cls(str(root), train=True, download=False)
        val = cls(str(root), train=False, download=False)
    except Exception as err:  # torchvision's own message suggests download=True, which does not apply here
        reason = str(err).split(" You can use download=True")[0]
        raise DataError(f"cannot read {cfg.name} from {folder}: {reason} (a file is missing or its checksum "
                        f"does not match)") from None
    to_nchw = lambda d: np.ascontiguousarray(d.data.transpose(0, 3, 1, 2))  # noqa: E731
    return (to_nchw(train), np.asarray(train.targets), to_nchw(val), np.asarray(val.targets),
            len(train.classes))


def _image_folder(cfg: DataConfig) -> tuple[ImageData, ImageData, int]:
    """`root/{train,val}/<class>/<image>`; images are read on demand, so the pool can be large.

    Every file's header is read at load (threads): a zero-byte or undecodable file, or one whose name
    is not UTF-8, is skipped, counted and logged (as the YOLO reader does), and a class left with no
    image stops the run, since the model would get an output for a class it never sees.
    """
    from concurrent.futures import ThreadPoolExecutor

    root = Path(cfg.path).expanduser()
    splits = []
    classes = None
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"ImageFolder layout needs {folder}/<class>/<image files> (a generated set of "
                            f"JPEG files: raydata-agent make-imagefolder {root})")
        # Not torchvision's find_classes / make_dataset: they take hidden folders (.ipynb_checkpoints) as
        # classes, walk into subfolders, filter by extension before the header check, and raise their
        # own FileNotFoundError for an empty class, where this names the file and the skip reason.
        names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is None:
            classes = names
        elif names != classes:
            raise DataError(f"class folders of {folder} differ from those of {root / 'train'}")
        if not names:
            raise DataError(f"no class folders under {folder} (ImageFolder layout: {folder}/<class>/<image files>)")
        candidates = [(label, f) for label, name in enumerate(names) for f in sorted((folder / name).iterdir())
                      if f.is_file() and not f.name.startswith(".")]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(unreadable_image, [f for _, f in candidates]))
        files, labels, skipped = [], [], []
        for (label, f), reason in zip(candidates, reasons):
            if reason:
                skipped.append((printable_path(f), reason))
            else:
                files.append(str(f))
                labels.append(label)
        if skipped:
            log.warning("%s: skipped %d of %d files, e.g. %s", folder, len(skipped), len(candidates),
                        "; ".join(f"{f}: {r}" for f, r in skipped[:3]))
        counts = np.bincount(np.asarray(labels, np.int64), minlength=len(names))
        if (counts == 0).any():
            empty = printable_path(folder / names[int(np.argmin(counts))])
            raise DataError(f"class folder {empty} has no readable image"
                            + (f" ({sum(1 for f, _ in skipped if str(Path(f).parent) == empty)} skipped)"
                               if skipped else ""))
        splits.append(ImageData(np.asarray(labels, np.int64), files=files, image_size=cfg.image_size,
                                skipped=skipped, decode_threads=cfg.decode_threads,
                                truth=_folder_truth(root, files) if split == "train" else None,
                                augment="resized_crop_flip" if split == "train" and wants(cfg.augment, cfg.name) else None))
    return splits[0], splits[1], len(classes)


def _folder_truth(root: Path, files: list[str]) -> dict[str, np.ndarray] | None:
    """Ground truth of a generated folder (`root/truth.csv`: file, is_noisy, is_tail, ... per training
    image, written by data/jpeg_folder.py), for the pool's columns; None when there is none."""
    import csv

    path = root / TRUTH_FILE
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        table = {row.pop("file"): row for row in csv.DictReader(f)}
    missing = [f for f in files if os.path.relpath(f, root) not in table]
    if missing:
        raise DataError(f"{printable_path(path)} has no row for {len(missing)} training images, e.g. "
                        f"{printable_path(missing[0])}")
    rows = [table[os.path.relpath(f, root)] for f in files]
    return {name: np.array([r[name] == "1" for r in rows], bool) for name in (rows[0] if rows else {})}


def load_dataset(cfg: DataConfig) -> tuple[ImageData, ImageData, int]:
    """(train, val, num_classes) for the configured data set."""
    if cfg.name == "imagefolder":
        return _image_folder(cfg)
    reader = {"shapes": _shapes, "mixture": _mixture, "digits": _digits, "textures": _textures, "cifar10": _cifar,
              "cifar100": _cifar}[cfg.name]
    x_tr, y_tr, x_va, y_va, num_classes, *extra = reader(cfg)
    truth = dict(extra[0]) if extra else {}
    y_tr = np.asarray(y_tr, np.int64)
    if cfg.imbalance > 1:  # long-tailed: mark the samples of the rarest classes (by their true label)
        from raydata_agent.data.longtail import tail_classes

        truth["is_tail"] = np.isin(y_tr, tail_classes(np.bincount(y_tr, minlength=num_classes)))
    y_tr, flipped = _flip_labels(y_tr, cfg.label_noise, num_classes, cfg.seed, cfg.noise_kind)
    if cfg.label_noise > 0 or cfg.name == "mixture":
        truth["is_noisy"] = flipped
    train = ImageData(y_tr, images=x_tr, image_size=x_tr.shape[-1], channels=x_tr.shape[1], truth=truth or None,
                      augment="crop_flip" if wants(cfg.augment, cfg.name) else None)
    val = ImageData(np.asarray(y_va, np.int64), images=x_va, image_size=x_va.shape[-1], channels=x_va.shape[1])
    return train, val, num_classes
