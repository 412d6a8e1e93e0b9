"""The training recipe that runs on every Ray Train worker, one epoch at a time:

    select -> train on the subset (signals flow to the score store) -> evaluate -> report + checkpoint

It reads top to bottom; the only state it shares with the rest of the system is the score store.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch

from raydata_agent.config import Config, from_dict
from raydata_agent.selectors import SELECTORS
from raydata_agent.score_store import write_checkpoint_state
from raydata_agent.signals import batch_signals, predicted_loss_change
from raydata_agent.tasks import build_task

MAX_PENDING_RECORDS = 32  # back-pressure: at most this many signal batches in flight to the store


class NonFiniteLossError(RuntimeError):
    """A sample's loss was NaN or inf; the message names the samples, epoch and step."""


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.train.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum,
                           weight_decay=cfg.train.weight_decay, nesterov=cfg.train.momentum > 0)


def shard(ids: np.ndarray, weights: np.ndarray, rank: int, world: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the epoch's subset the same way on every worker and give each an equal share.

    Shares are padded to equal length (as DistributedSampler does) so DDP workers take the same
    number of steps and never wait on each other's all-reduce.
    """
    order = np.random.default_rng(seed).permutation(len(ids))
    pad = (-len(order)) % world
    order = np.concatenate([order, order[:pad]])[rank::world]
    return ids[order], weights[order]


def restore(model, optimizer, scheduler, cfg: Config) -> int:
    """Load model and optimizer state from Ray Train's checkpoint (worker restart) or train.resume_from.

    Returns the first epoch to run. The pool and selector are restored by the driver.
    """
    checkpoint = ray.train.get_checkpoint()
    directory = None
    if checkpoint is not None:
        directory = checkpoint.to_directory()
    elif cfg.train.resume_from:
        directory = cfg.train.resume_from
    if directory is None:
        return 0
    state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=False)
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["epoch"] + 1


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


def train_loop_per_worker(loop_config: dict) -> None:
    cfg = from_dict(loop_config["config"])
    store = loop_config["store"]
    tracker = loop_config.get("tracker")  # rank 0 logs task artifacts (example predictions) with it
    quiet_report_logs()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(cfg.train.cpus_per_worker)
    device = ray.train.torch.get_device()

    # Setup: every worker regenerates/reads the same data, so no images cross the network.
    task = build_task(cfg)
    train_data, val_data = task.load_data()
    model = ray.train.torch.prepare_model(task.build_model())  # DDP when world > 1
    optimizer = build_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    start_epoch = restore(model, optimizer, scheduler, cfg)
    send_features = SELECTORS[cfg.selection.selector].needs_features  # only the agent's state needs them

    for epoch in range(start_epoch, cfg.train.epochs):
        epoch_start = time.perf_counter()
        # 1. Select: the score store turns the pool's latest signals into this epoch's subset.
        selection = ray.get(store.plan.remote(epoch))
        ids, loss_weights = shard(selection.ids, selection.loss_weights, rank, world,
                                  seed=cfg.train.seed * 1000 + epoch)

        # 2. Train on the subset; each step's forward pass also yields the selection signals.
        model.train()
        pending, loss_sum, steps = [], 0.0, 0
        for start in range(0, len(ids), cfg.train.batch_size):
            batch_ids = ids[start:start + cfg.train.batch_size]
            out = task.forward(model, train_data.batch(batch_ids), device)
            if not torch.isfinite(out.loss).all():
                bad = batch_ids[~torch.isfinite(out.loss).cpu().numpy()]
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, step {steps} for sample ids {bad[:10].tolist()}; "
                    f"checkpoints and pool snapshots of earlier epochs are kept")
            weights = torch.from_numpy(loss_weights[start:start + len(batch_ids)]).to(device)
            lr = optimizer.param_groups[0]["lr"]
            loss = (out.loss * weights).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            steps += 1

            sig = batch_signals(out.loss, out.probs, cfg.reward.variant, cfg.reward.clip_quantile,
                                uncertainty=out.uncertainty)
            change = None if out.grad_norm is None else predicted_loss_change(
                out.grad_norm, out.loss, weights, lr, world).cpu().numpy()
            pending.append(store.record.remote(
                epoch, batch_ids, sig.loss.cpu().numpy(), sig.entropy.cpu().numpy(),
                sig.uncertainty.cpu().numpy(), sig.difficulty.cpu().numpy(),
                None if sig.score is None else sig.score.cpu().numpy(), sig.weight,
                out.features.float().cpu().numpy() if send_features else None, change))
            if len(pending) >= MAX_PENDING_RECORDS:
                ray.get(pending[: len(pending) // 2])
                pending = pending[len(pending) // 2:]
        ray.get(pending)  # every signal of this worker is in the pool
        scheduler.step()
        if world > 1:
            torch.distributed.barrier()  # ... and every worker's

        metrics = {"train_loss": loss_sum / max(steps, 1), "lr": scheduler.get_last_lr()[0],
                   "train_time_s": time.perf_counter() - epoch_start}
        # 3. Evaluate, close the epoch in the store, checkpoint: rank 0 only.
        if rank != 0:
            ray.train.report(metrics, checkpoint=None)
            continue
        val = task.evaluate(unwrap(model), val_data, device)
        metrics.update(val, val_metric=val[task.metric], epoch_time_s=time.perf_counter() - epoch_start)
        metrics = ray.get(store.finish_epoch.remote(epoch, metrics))
        if epoch == cfg.train.epochs - 1 and tracker is not None and hasattr(task, "log_examples"):
            with tempfile.TemporaryDirectory() as tmp:  # e.g. prediction-vs-mask images
                for path in task.log_examples(unwrap(model), val_data, device, tmp):
                    tracker.log_artifact(path, "examples")
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch}, os.path.join(tmp, "model.pt"))
            write_checkpoint_state(tmp, *ray.get(store.checkpoint_state.remote()))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
