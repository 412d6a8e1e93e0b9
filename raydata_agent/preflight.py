"""Everything that can be checked without a cluster, checked before Ray starts.

A mistake found here costs a second and one line; found after `ray.init` it costs a cluster
start-up, a Train worker group and a traceback. Config values are checked when the config loads
(config.py); this adds what needs the outside world: the tracking store answers, the checkpoint to
resume from is whole, the storage folder is writable, the data set opens and its first
samples decode, and (data.pipeline=ray_data) the Train workers leave Ray Data a CPU's share.
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


def worker_group_request(cfg: Config) -> dict[str, float]:
    """What Ray Train's worker group reserves: per worker `train.cpus_per_worker` CPUs (and a GPU)."""
    workers = cfg.train.num_workers
    return {"CPU": workers * cfg.train.cpus_per_worker, **({"GPU": workers} if cfg.train.use_gpu else {})}


def shortfall(request: dict[str, float], cluster: dict[str, float]) -> str | None:
    """`3 CPUs (it has 2)` for each resource the cluster has too little of; None when the request fits."""
    short = [f"{need:g} {name}s (it has {cluster.get(name, 0):g})" for name, need in request.items()
             if cluster.get(name, 0) < need]
    return " and ".join(short) or None


def check_cluster_fits(cfg: Config) -> None:
    """The cluster a run will use, where its size is known before Ray starts (a cluster joined by address
    may autoscale: runner.run says what it waits for). A local cluster the run starts never grows: a worker
    group bigger than it would make Ray Train retry its start every minute, forever. With
    data.pipeline=ray_data the Train workers must also leave Ray Data's decode tasks a CPU's share, or the
    first epoch waits forever."""
    import ray

    from raydata_agent.data.streaming import cluster_cpus, ray_data_starved

    cpus = cluster_cpus(cfg.ray.num_cpus, cfg.ray.address)  # None: joined by address
    if cpus is None:
        return
    workers, per_worker = cfg.train.num_workers, cfg.train.cpus_per_worker
    if not ray.is_initialized():  # the local cluster this run starts (one already up is the caller's)
        import torch

        missing = shortfall(worker_group_request(cfg), {"CPU": cpus, "GPU": torch.cuda.device_count()})
        if missing:
            raise ConfigError(f"train.num_workers={workers} x train.cpus_per_worker={per_worker}"
                              f"{' with train.use_gpu' if cfg.train.use_gpu else ''} needs {missing} on the local "
                              f"cluster (ray.num_cpus={cfg.ray.num_cpus or 'unset: this machine'}): lower "
                              f"train.num_workers, or join a bigger cluster with ray.address")
    task_cpus = cfg.data.stream_cpus
    if cfg.data.pipeline == "ray_data" and ray_data_starved(cpus, workers, per_worker, task_cpus):
        raise ConfigError(f"data.pipeline=ray_data: train.num_workers={workers} x train.cpus_per_worker={per_worker} "
                          f"hold {workers * per_worker:g} of the cluster's {cpus:g} CPUs, leaving Ray Data's decode "
                          f"tasks less than data.stream_cpus={task_cpus:g}: training would wait forever; lower "
                          f"data.stream_cpus or train.num_workers, or raise ray.num_cpus")


def preflight(cfg: Config):
    """(task, train data, val data), opened and read once; raises ConfigError / DataError / CheckpointError
    with one line naming the key, file or URI."""
    check_cluster_fits(cfg)
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
