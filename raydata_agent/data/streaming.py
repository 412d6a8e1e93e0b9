"""The streaming input path (`data.pipeline=ray_data`): each epoch's subset reaches the workers through Ray Data.

The driver turns the training set's metadata (id, label, and the file path, or the pixels of an
in-memory set) into a dataset filtered at read time to the epoch's selection (the session's
`selected_ids_dataset`). Decoding and augmentation run in `map_batches` on CPU tasks of the
cluster, possibly on other nodes than the trainers; each Train worker reads its shard
(`get_dataset_shard`, a `streaming_split` of equal size) with `iter_torch_batches`, prefetching.
Sample ids travel in every batch, so `session.record(ids, loss)` attributes each loss to its row.

A file that fails to decode mid-stream does not stop the run: its row comes with `ok=False` (and a
blank image, so every worker still takes the same steps under DDP); the worker leaves it out of the
loss and the signals and counts it (`data_skipped_stream` in MLflow).
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch


def cluster_cpus(num_cpus: int | None = None, address: str | None = None) -> float | None:
    """CPUs of the cluster a run will use, when known before it starts: Ray already up in this process
    (its size now), else the local cluster a run starts (`num_cpus`, default all of this machine's).
    None when it joins a cluster by address (RAY_ADDRESS): that one may scale up."""
    import ray

    if address or os.environ.get("RAY_ADDRESS"):
        return None
    if ray.is_initialized():
        return float(ray.cluster_resources().get("CPU", 0.0))
    return float(num_cpus or os.cpu_count() or 1)


def ray_data_starved(cpus: float | None, num_workers: int, cpus_per_worker: float, task_cpus: float) -> bool:
    """Whether the Train workers leave Ray Data's tasks no room: Ray Train holds the workers' CPUs for
    the whole run, and a Ray Data task that does not fit in the rest waits for good (Ray Data only warns
    that the cluster resources are not enough). An unknown cluster size (None) is not judged."""
    return cpus is not None and cpus - num_workers * cpus_per_worker < task_cpus


def epoch_dataset(session, data, cfg):
    """The training set as a Ray Data dataset of each epoch's selected rows: id, y, x (uint8 [C, H, W],
    augmented per data.augment; `worker_batches` scales it to [0, 1]), ok. `data` is the driver's ImageData (labels and sources,
    or in-memory pixels)."""
    columns = {"label": data.labels}
    if data.images is not None:
        columns["image"] = data.images
    else:
        columns["path"] = np.asarray(data.files, dtype=object)
    selected = session.selected_ids_dataset(columns=columns, num_cpus=cfg.data.stream_cpus)
    return selected.map_batches(
        decode_batch, batch_format="numpy", num_cpus=cfg.data.stream_cpus,
        fn_kwargs={"image_size": data.image_size, "channels": data.channels, "augment": data.augment,
                   "seed": cfg.train.seed, "threads": cfg.data.decode_threads})


def decode_batch(batch: dict, image_size: int, channels: int, augment: str | None, seed: int, threads: int) -> dict:
    """Ray Data map_batches UDF: metadata rows -> training tensors. The augmentation draws come from
    (seed, epoch, the batch's ids), so a run's views repeat with its seed wherever the task runs."""
    from raydata_agent.data.classification import ImageData

    ids = np.asarray(batch["id"], np.int64)
    if "image" in batch:
        ok = np.ones(len(ids), bool)
        x = torch.from_numpy(np.asarray(batch["image"])).float().div_(255.0)
    else:  # the in-memory path's reader: threads, and a file that fails to decode is skipped and logged
        files = ImageData(np.asarray(batch["label"], np.int64), files=[str(p) for p in batch["path"]],
                          image_size=image_size, channels=channels, decode_threads=threads)
        read, decoded, _ = files.read(np.arange(len(ids)))
        ok = np.zeros(len(ids), bool)
        ok[read] = True  # a failed row stays as a blank image, masked out of the loss (equal DDP steps)
        x = torch.zeros(len(ids), channels, image_size, image_size)
        x[torch.from_numpy(read)] = decoded
    if augment and len(ids):
        from raydata_agent.data.recipes import augment_batch

        epoch = int(batch["epoch"][0]) if "epoch" in batch else 0
        x = augment_batch(x, augment, np.random.default_rng([seed, epoch, len(ids), int(ids.min()), int(ids.sum())]))
    # uint8 on the wire: a quarter of float32's bytes through the object store; the worker scales it
    pixels = x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return {"id": ids, "x": pixels, "y": np.asarray(batch["label"], np.int64), "ok": ok}


def worker_batches(shard, batch_size: int, prefetch_batches: int):
    """This worker's batches of the epoch: (ids, (x, y), seconds waited for the batch, ok mask)."""
    batches = iter(shard.iter_torch_batches(batch_size=batch_size, prefetch_batches=prefetch_batches))
    while True:
        wait_start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        x = batch["x"].float().div_(255.0)  # on the worker's device (iter_torch_batches moved it)
        yield batch["id"], (x, batch["y"]), time.perf_counter() - wait_start, batch["ok"]
