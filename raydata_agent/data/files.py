"""Input files: the error that names a bad one, and the cheap checks that find it at load.

Every reader (image folders, YOLO, ADE20K) and the pool's snapshot writer use these, so a bad file
is reported the same way wherever it is met. Only PIL is imported, and only when a header is read.
"""
from __future__ import annotations

import os
from pathlib import Path


TRUTH_FILE = "truth.csv"  # a generated folder's ground truth: file (relative to the root), then 0/1 per group


class DataError(ValueError):
    """Bad input data: the message names the file or row."""


def printable_path(path: str | os.PathLike) -> str:
    """A path as text that always encodes: a name that is not UTF-8 shows its bytes (\\xff), where
    `str(path)` would hold surrogates that Arrow, MLflow and the console cannot write."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def not_utf8(path: str | os.PathLike) -> str | None:
    """Why a file name cannot be a pool row's source (Arrow strings are UTF-8), or None."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeError:  # bytes that are not UTF-8, or a str surrogate that no byte escapes
        return "file name is not valid UTF-8 (rename the file)"
    return None


def unreadable_image(path: Path) -> str | None:
    """Why an image cannot be used, from its name, size and header (not a full decode: cheap at load), or None."""
    from PIL import Image

    if reason := not_utf8(path):
        return reason
    try:
        if path.stat().st_size == 0:
            return "zero-byte file"
        with Image.open(path) as img:
            img.size  # noqa: B018 (the header parsed)
    except Exception as err:  # PIL raises many kinds for a file that is not an image
        return f"unreadable: {' '.join(str(err).split())}"
    return None
