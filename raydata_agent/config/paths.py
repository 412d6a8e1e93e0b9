"""Paths in a config: made absolute in the driver, before workers on other nodes and folders read them."""
from __future__ import annotations

from pathlib import Path


def is_uri(path: str) -> bool:
    """A pyarrow.fs URI (s3://bucket/dir, gs://..., file:///...) rather than a path on this machine."""
    return "://" in path


def generated_data_folder(data) -> Path:
    """Where a generated on-disk data set (synthetic_seg) goes when data.path is unset: one folder
    per settings under ./data_cache in the working directory (noise and duplicates named when set)."""
    return Path.cwd() / "data_cache" / (f"{data.name}-n{data.num_samples}-v{data.val_samples}"
                                        f"-s{data.image_size}-seed{data.seed}"
                                        + (f"-noise{data.label_noise:g}" if data.label_noise else "")
                                        + (f"-dup{data.duplicates:g}" if data.duplicates else ""))


def resolve_paths(cfg):
    """A copy with every path absolute, made in the driver: Ray Train workers run in their own
    working directory (Ray Train 2.60: the run's folder under /tmp/ray/session_*), where a relative
    path, or a generated set's default under ./data_cache, would point somewhere else."""
    cfg = cfg.model_copy(deep=True)
    cfg.tracking.uri = cfg.tracking_uri  # the default SQLite store is under the driver's cwd
    if cfg.data.path is None and cfg.data.name == "synthetic_seg":
        cfg.data.path = str(generated_data_folder(cfg.data))
    if cfg.data.path is None and cfg.data.name == "synthetic_det":
        cfg.data.path = "data_cache"  # the generator names its own sub-folder after the settings
    if cfg.data.path is not None:
        cfg.data.path = str(Path(cfg.data.path).expanduser().resolve())
    if not is_uri(cfg.ray.storage_path):
        cfg.ray.storage_path = str(Path(cfg.ray.storage_path).expanduser().resolve())
    if cfg.train.resume_from and not is_uri(cfg.train.resume_from):
        cfg.train.resume_from = str(Path(cfg.train.resume_from).expanduser().resolve())
    return cfg
