"""A generated set's ground truth on disk (TRUTH_FILE beside the images): which training images are
noisy, duplicates, ... Benchmarks read it through the pool's `is_*` columns; selectors never see it.

One row per training image: its path relative to the set's root, then 0/1 per column. The
imagefolder writer (data/jpeg_folder.py) and the detection and segmentation generators write it;
the readers turn it back into bool arrays aligned with the files they load.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from raydata_agent.data.files import TRUTH_FILE, DataError, printable_path


def write_truth(root: Path, files: list[str], truth: dict[str, np.ndarray]) -> None:
    """TRUTH_FILE under `root`: `files` (relative to root) and one 0/1 column per truth array."""
    with (Path(root) / TRUTH_FILE).open("w", newline="") as f:
        csv.writer(f).writerows([["file", *truth], *([rel, *(int(col[i]) for col in truth.values())]
                                                      for i, rel in enumerate(files))])


def read_truth(root: str | os.PathLike, files: list[str]) -> dict[str, np.ndarray] | None:
    """The truth columns for `files` (absolute, under root), in their order; None when root has no
    TRUTH_FILE (a real data set). A loaded file with no row is an error: the columns would misalign."""
    root = Path(root)
    path = root / TRUTH_FILE
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        table = {row.pop("file"): row for row in csv.DictReader(f)}
    rows = [table.get(os.path.relpath(f, root)) for f in files]
    missing = [f for f, row in zip(files, rows) if row is None]
    if missing:
        raise DataError(f"{printable_path(path)} has no row for {len(missing)} training images, e.g. "
                        f"{printable_path(missing[0])}")
    return {name: np.array([r[name] == "1" for r in rows], bool) for name in (rows[0] if rows else {})}
