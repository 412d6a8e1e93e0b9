"""A generated `imagefolder` set of real JPEG files: the shapes classes drawn at any size.

It exists so that the file-reading path (decode, augment, prefetch) can be measured and trained
from disk, here and on a GPU machine, with nothing downloaded. Written once from a seed; a folder
that already holds a complete set (its `.complete` marker matches the settings) is left alone.
"""
from __future__ import annotations

import json
from pathlib import Path

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
