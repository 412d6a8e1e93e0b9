"""A generated `imagefolder` set of real JPEG files: the shapes classes drawn at any size, or any
in-memory set (`write_data_folder`, e.g. a long-tailed noisy held-out benchmark set).

It exists so that the file-reading path (decode, augment, prefetch) can be measured and trained
from disk, here and on a GPU machine, with nothing downloaded. Written once from a seed; a folder
that already holds a complete set (its `.complete` marker matches the settings) is left alone.
A written set's ground truth (is_noisy, ...) goes beside it in TRUTH_FILE, which the imagefolder
reader turns into the pool's truth columns.
"""
from __future__ import annotations

import json
from pathlib import Path

from raydata_agent.data.files import TRUTH_FILE
from raydata_agent.data.shapes import SHAPES, make_shapes

CHUNK = 256  # images generated at a time: a 224px set never sits in memory whole


def write_image_folder(root: str | Path, train: int = 20_000, val: int = 2_000, size: int = 224, seed: int = 0,
                       quality: int = 90, progress: bool = False) -> Path:
    """root/{train,val}/<shape>/<index>.jpg; returns root."""
    from PIL import Image

    root = Path(root).expanduser()
    settings = {"train": train, "val": val, "size": size, "seed": seed, "quality": quality}
    marker = root / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    for split, count, split_seed in (("train", train, seed), ("val", val, seed + 10_000)):
        for name in SHAPES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for start in range(0, count, CHUNK):
            n = min(CHUNK, count - start)
            images, labels = make_shapes(n, size, seed=split_seed * 1_000_003 + start)
            for offset, (image, label) in enumerate(zip(images, labels)):
                path = root / split / SHAPES[label] / f"{start + offset:06d}.jpg"
                Image.fromarray(image.transpose(1, 2, 0)).save(path, quality=quality)
            if progress:
                print(f"\r[raydata-agent] {split}: {start + n}/{count} images", end="", flush=True)
        if progress:
            print(flush=True)
    marker.write_text(json.dumps(settings))
    return root


def write_data_folder(root: str | Path, config: dict, quality: int = 95) -> Path:
    """Write the in-memory classification set that `config` (data.* keys, without the prefix) names as
    root/{train,val}/<class index>/<index>.jpg, each image under its (possibly noisy) training label,
    plus TRUTH_FILE; returns root. Deterministic: the same config writes the same files."""
    import csv

    from PIL import Image

    from raydata_agent.config import DataConfig
    from raydata_agent.data.classification import load_dataset

    root = Path(root).expanduser()
    settings = {**config, "quality": quality}
    marker = root / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    train, val, num_classes = load_dataset(DataConfig(**config))
    truth = train.truth or {}
    rows = []
    for split, data in (("train", train), ("val", val)):
        for c in range(num_classes):
            (root / split / f"{c:02d}").mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(data.images, data.labels)):
            rel = f"{split}/{label:02d}/{i:06d}.jpg"
            Image.fromarray(image.transpose(1, 2, 0)).save(root / rel, quality=quality)
            if split == "train":
                rows.append([rel, *(int(col[i]) for col in truth.values())])
    with (root / TRUTH_FILE).open("w", newline="") as f:
        csv.writer(f).writerows([["file", *truth], *rows])
    marker.write_text(json.dumps(settings))
    return root
