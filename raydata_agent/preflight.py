"""Everything that can be checked without a cluster, checked before Ray starts.

A mistake found here costs a second and one line; found after `ray.init` it costs a cluster
start-up, a Train worker group and a traceback. Config values are checked when the config loads
(config.py); this adds what needs the outside world: the tracking store answers, the checkpoint to
resume from is whole, the storage folder is writable, and the data set opens and its first
samples decode.
"""
from __future__ import annotations

import os
from pathlib import Path

from raydata_agent import checkpoint
from raydata_agent.config import Config, ConfigError, is_uri
from raydata_agent.tasks import build_task
from raydata_agent.tracking import check_reachable


def _writable(key: str, folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:  # created on first use
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ConfigError(f"{key}={str(folder)!r} cannot be written ({existing} is not a writable folder)")


def preflight(cfg: Config):
    """(task, train data, val data), opened and read once; raises ConfigError / DataError / CheckpointError
    with one line naming the key, file or URI."""
    check_reachable(cfg.tracking_uri)
    if not is_uri(cfg.ray.storage_path):  # shared storage (s3://...) is Ray Train's to reach
        _writable("ray.storage_path", Path(cfg.ray.storage_path))
    if cfg.train.resume_from and not is_uri(cfg.train.resume_from):
        try:
            checkpoint.verify(cfg.train.resume_from)
        except checkpoint.CheckpointError as err:
            raise ConfigError(f"train.resume_from: {err}") from None
    task = build_task(cfg)
    train, val = task.load_data()
    for name, data in (("training", train), ("validation", val)):
        if len(data) == 0:
            raise ConfigError(f"the {name} split of data.name={cfg.data.name} is empty")
        data.batch([0])  # the first sample decodes: a wrong format fails here, not mid-epoch
    return task, train, val
