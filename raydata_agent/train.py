"""The training recipe that runs on every Ray Train worker, one epoch at a time:

    select -> train on the subset (signals flow to the score store) -> evaluate -> report + checkpoint

It reads top to bottom; the only state it shares with the rest of the system is the score store.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
import time

_IMPORT_START = time.time()  # start-up split (benchmarks/orchestration_tax.py): this module's imports
import numpy as np
import ray
import ray.train
import ray.train.torch
import torch

from raydata_agent import checkpoint as checkpoint_files
from raydata_agent.config import Config, is_uri
from raydata_agent.data import ImageData
from raydata_agent.session import SelectionSession
from raydata_agent.tasks import TaskOutput, build_task

_IMPORTED_AT = time.time()


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.train.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum,
                           weight_decay=cfg.train.weight_decay, nesterov=cfg.train.momentum > 0)


def prefetched(chunks: list, load):
    """Yield (chunk, load(chunk)) in order, loading the next chunk in a background thread while the
    caller trains on the current one, and how long the caller waited for it: decoding (and
    augmentation) overlaps the step instead of stalling it."""
    from concurrent.futures import ThreadPoolExecutor

    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(load, chunks[0])
        for i, chunk in enumerate(chunks):
            wait_start = time.perf_counter()
            batch = pending.result()
            waited = time.perf_counter() - wait_start
            if i + 1 < len(chunks):
                pending = pool.submit(load, chunks[i + 1])
            yield chunk, batch, waited


def epoch_batches(cfg: Config, ids: np.ndarray, rank: int, epoch: int, train_data, shard):
    """(ids, batch, seconds waited, ok mask or None) for this worker's share of the epoch: from its
    Ray Data shard (data.pipeline=ray_data), else read from `train_data` in a prefetch thread."""
    if shard is not None:
        from raydata_agent.data.streaming import worker_batches

        yield from worker_batches(shard, cfg.train.batch_size, cfg.data.prefetch_batches)
        return
    augment_rng = np.random.default_rng([cfg.train.seed, rank, epoch])

    def load(chunk):  # -> (ids read, batch): an image file that fails to decode mid-run is skipped
        if isinstance(train_data, ImageData):
            read_ids, x, y = train_data.read(chunk, rng=augment_rng)
            return read_ids, (x, y)
        return chunk, train_data.batch(chunk)

    chunks = [ids[start:start + cfg.train.batch_size] for start in range(0, len(ids), cfg.train.batch_size)]
    for _, (read_ids, batch), waited in prefetched(chunks, load):
        yield read_ids, batch, waited, None


def rows(out: TaskOutput, keep: torch.Tensor) -> TaskOutput:
    """The task output of the kept samples only."""
    return TaskOutput(**{f.name: None if getattr(out, f.name) is None else getattr(out, f.name)[keep]
                         for f in dataclasses.fields(TaskOutput)})


def all_workers_sum(value: int) -> int:
    """A count summed over the Train workers (rank 0 logs it)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    total = torch.tensor([value], dtype=torch.int64)
    if torch.distributed.get_backend() == "nccl":
        total = total.cuda()
    torch.distributed.all_reduce(total)
    return int(total.item())


def all_workers_union(items: set[str]) -> set[str]:
    """A set joined over the Train workers (each reads its own share of the files)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return set(items)
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, sorted(items))
    return set().union(*gathered)


def new_skips(train_data, counted: set[str]) -> int:
    """Files first found unreadable since the last call, on any worker; adds them to `counted`. A file
    skipped at load (in `counted` from the start: the run's `data_skipped`) or in an earlier epoch is
    not counted again, though every later read of it is skipped too."""
    found = all_workers_union({path for path, _ in train_data.skipped} - counted) - counted
    counted |= found
    return len(found)


def autocast(precision: str, device: torch.device):
    """The forward pass's autocast context for train.precision (fp32: none)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def restore(model, optimizer, scheduler, scaler, cfg: Config, store, rank: int) -> int:
    """Continue from Ray Train's latest committed checkpoint (a restart after a worker failure, or
    `raydata-agent resume`) or from train.resume_from; returns the first epoch to run.

    Model, optimizer, LR schedule, fp16 loss scale and RNG states load here on every worker. Rank 0 also rolls the
    score store back to the checkpoint's pool, selector and agent state, or to the start when there
    is none: after a failure the store has absorbed part of an epoch that will be run again.
    """
    checkpoint = ray.train.get_checkpoint()
    directory = checkpoint.to_directory() if checkpoint is not None else cfg.train.resume_from
    if directory and is_uri(directory):  # train.resume_from on shared storage (s3://...): fetched
        directory = ray.train.Checkpoint(directory).to_directory()
    state = checkpoint_files.read(directory, ("model", "pool", "store") if rank == 0 else ("model",)) \
        if directory else None
    if rank == 0:
        ray.get(store.restore.remote(state and state["pool"], state and state["store"]))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # no worker plans an epoch before the store is rolled back
    if state is None:
        return 0
    model_state = state["model"]
    unwrap(model).load_state_dict(model_state["model"])
    optimizer.load_state_dict(model_state["optimizer"])
    scheduler.load_state_dict(model_state["scheduler"])
    if "scaler" in model_state:  # fp16: the learned loss scale, not a fresh 65536 that overflows again
        scaler.load_state_dict(model_state["scaler"])
    if "torch_rng" in model_state:
        torch.set_rng_state(model_state["torch_rng"])
    return model_state["epoch"] + 1


def quiet_report_logs() -> None:
    """Ray Train 2.60 logs every report's whole metrics dict at INFO, from a logger named after its
    source file (so RunConfig's log level misses it); the driver prints one line per epoch instead."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def startup_times(setup_start: float) -> dict[str, float]:
    """When this worker process started (unix s), its boot to this module's end of import (Ray worker
    start-up and imports), and the loop's setup so far (data, model): logged with the first epoch."""
    import psutil

    created = psutil.Process().create_time()
    return {"worker_process_start_unix": created, "worker_import_s": _IMPORTED_AT - created,
            "worker_module_import_s": _IMPORTED_AT - _IMPORT_START, "worker_setup_s": time.time() - setup_start}


def train_loop_per_worker(loop_config: dict) -> None:
    setup_start = time.time()
    cfg: Config = loop_config["config"]
    session: SelectionSession = loop_config["session"]  # the same session a user's own loop talks to
    tracker = loop_config.get("tracker")  # rank 0 logs task artifacts (example predictions) with it
    quiet_report_logs()
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(cfg.train.cpus_per_worker)
    device = ray.train.torch.get_device()

    # Setup. in_memory: every worker regenerates/reads the same data, so no images cross the network.
    # ray_data: the training set streams in through this worker's shard; the driver sends what the
    # model is built from, and rank 0 gets the validation split to evaluate on.
    task = build_task(cfg)
    streaming = cfg.data.pipeline == "ray_data"
    if streaming:
        task.use_data_info(loop_config["data_info"])
        train_data, val_data = None, ray.get(loop_config["val_data"]) if rank == 0 else None
        train_shard = ray.train.get_dataset_shard("train")
    else:
        train_data, val_data = task.load_data()
    model = task.build_model()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # faster convolutions with autocast
    model = ray.train.torch.prepare_model(model)  # DDP when world > 1
    # fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    optimizer = build_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    start_epoch = restore(model, optimizer, scheduler, scaler, cfg, session.store, rank)
    counted_skips = {path for path, _ in train_data.skipped} if isinstance(train_data, ImageData) else set()
    checkpoint_s = 0.0  # the previous epoch's (logged with the next one: it comes after the epoch's log)
    startup = startup_times(setup_start)

    for epoch in range(start_epoch, cfg.train.epochs):
        epoch_start = time.perf_counter()
        # 1. Select: the score store turns the pool's latest signals into this epoch's subset.
        ids, _ = session.plan_epoch(epoch)  # this worker's share
        timings = {"plan_wait_s": time.perf_counter() - epoch_start, "forward_s": 0.0, "backward_s": 0.0,
                   "prev_checkpoint_s": checkpoint_s}  # overhead breakdown (benchmarks/overhead.py)
        if epoch == start_epoch:
            timings.update(startup)

        # 2. Train on the subset; each step's forward pass also yields the selection signals. The
        # next batch is read (decoded, augmented: seeded per run, rank and epoch) while this one trains.
        model.train()
        timings["data_wait_s"] = 0.0
        skipped = 0  # ray_data: rows whose file failed to decode mid-stream
        for batch_ids, batch, waited, ok in epoch_batches(cfg, ids, rank, epoch, train_data,
                                                          train_shard if streaming else None):
            timings["data_wait_s"] += waited
            if len(batch_ids) == 0:
                continue
            step_start = time.perf_counter()
            with autocast(cfg.train.precision, device):
                out = task.forward(model, batch, device)
            timings["forward_s"] += time.perf_counter() - step_start
            if ok is not None and not bool(ok.all()):
                ok = ok.to(out.loss.device)
                skipped += int((~ok).sum())
                batch_ids, out = batch_ids[ok.to(batch_ids.device)], rows(out, ok)
            if len(batch_ids):
                loss = session.record(batch_ids, out.loss.float(), probs=out.probs, features=out.features,
                                      uncertainty=out.uncertainty, grad_norm=out.grad_norm, fit=out.fit,
                                      lr=optimizer.param_groups[0]["lr"])  # weighted mean loss
            else:  # every file of the batch failed: a zero step keeps DDP workers in step
                loss = sum(p.sum() for p in model.parameters()) * 0.0
            backward_start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            timings["backward_s"] += time.perf_counter() - backward_start
        if streaming:
            timings["data_skipped_stream"] = all_workers_sum(skipped)
        session.flush()  # every signal of this worker is in the pool
        scheduler.step()

        if isinstance(train_data, ImageData):  # files first found unreadable this epoch (all workers)
            timings["skipped_files"] = new_skips(train_data, counted_skips)
        metrics = {"train_loss": session.train_loss, "lr": scheduler.get_last_lr()[0],
                   "train_time_s": time.perf_counter() - epoch_start, **timings}
        # 3. Evaluate (rank 0), close the epoch in the store (every worker), checkpoint (rank 0).
        if rank == 0:
            eval_start = time.perf_counter()
            with autocast(cfg.train.precision, device):
                val = task.evaluate(unwrap(model), val_data, device)
            metrics.update(val, val_metric=val[task.metric], eval_s=time.perf_counter() - eval_start,
                           epoch_time_s=time.perf_counter() - epoch_start)
        metrics = session.end_epoch(metrics)
        if rank != 0:
            ray.train.report(metrics, checkpoint=None)
            continue
        if epoch == cfg.train.epochs - 1 and tracker is not None and hasattr(task, "log_examples"):
            with tempfile.TemporaryDirectory() as tmp:  # e.g. prediction-vs-mask images
                for path in task.log_examples(unwrap(model), val_data, device, tmp):
                    tracker.log_artifact(path, "examples")
        checkpoint_start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint_files.write(tmp, {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                                         "epoch": epoch, "torch_rng": torch.get_rng_state()}, *session.checkpoint_state())
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        checkpoint_s = time.perf_counter() - checkpoint_start
