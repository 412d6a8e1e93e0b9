"""The score store: a Ray actor that owns the sample pool and the selector.

Workers send it `(ids, signals)` batches from their training step (fire and forget, a few
thousand samples per call), ask it for each epoch's subset, and rank 0 closes each epoch here:
selector update, Parquet snapshot, and one MLflow log of the epoch's metrics. Keeping all of this
in one actor makes the pool the single source of truth, whatever the number of workers.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from raydata_agent.checkpoint import CheckpointError
from raydata_agent.config import Config, from_dict, is_uri
from raydata_agent.pool import NEVER, SamplePool
from raydata_agent.selectors import Selection, build_selector
from raydata_agent.signals import idu, label_agreement, minmax
from raydata_agent.tracking import Tracker

WEIGHT_BINS = 100
WEIGHT_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


class ScoreStore:
    def __init__(self, config: dict, labels: np.ndarray, sources, num_classes: int,
                 tracker: Tracker | None, snapshot_dir: str, agent=None, truth: dict | None = None,
                 publish_on_commit: bool = False):
        self.cfg: Config = from_dict(config)
        try:
            self.pool = SamplePool(labels, sources, source_prefix=self.cfg.data.name, truth=truth)
        except UnicodeEncodeError:  # Arrow strings are UTF-8: name the row, not pyarrow's position in it
            from raydata_agent.data.files import DataError, not_utf8

            row = next(i for i, source in enumerate(sources) if not_utf8(source))
            raise DataError(f"the source of row {row}, {sources[row]!a}, is not valid UTF-8") from None
        self.num_classes = num_classes
        self.class_counts = self._per_class(self.pool.ids)
        extra = {"agent": agent, "agent_cfg": self.cfg.agent} if agent is not None else {}
        self.selector = build_selector(self.cfg.selection, len(self.pool), self.cfg.train.epochs,
                                       seed=self.cfg.train.seed, **extra)
        self.tracker = tracker
        self.snapshot_dir = snapshot_dir  # a path on this node, or a pyarrow.fs URI (s3://...) all nodes share
        self.plans: dict[int, Selection] = {}
        self.history: list[dict] = []
        self.cumulative_cost = 0  # sample forward-backward passes so far
        self.published: set[int] = set()  # epochs whose row is in MLflow: each is logged once
        self.snapshots: dict[int, Path] = {}  # epoch -> local snapshot file, until it is logged
        # Under Ray Train an epoch is logged when the controller commits its checkpoint (runner.EpochCommits);
        # elsewhere (a session in a user's own loop) when it finishes.
        self.publish_on_commit = publish_on_commit
        self.resumed_from = 0  # epochs restored at the first start (a resumed run): the driver does not print them again
        # What a run that failed before its first checkpoint rolls back to.
        self._initial = (labels, sources, truth, self.selector.state_dict())
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self.epoch_passes = 0
        self.reward_sum = 0.0
        self.reward_sq_sum = 0.0
        self.w_sum = 0.0  # adaptive w, weighted by batch size
        self.select_time = 0.0
        self.record_time = 0.0  # seconds inside record() this epoch (overhead breakdown)
        self.observe_time = 0.0  # ... of which in selector.observe (the Data Agent's act/observe)

    def _per_class(self, ids: np.ndarray) -> np.ndarray:
        labels = self.pool.label[ids]
        return np.bincount(labels[labels >= 0], minlength=self.num_classes)  # -1: no single class

    # --- called by workers -------------------------------------------------------------------
    def plan(self, epoch: int) -> Selection:
        """This epoch's subset; computed once, every worker gets the same one."""
        if epoch not in self.plans:
            start = time.perf_counter()
            selection = self.selector.select(self.pool, epoch)
            if selection.weights is not None:
                self.pool.weight[:] = selection.weights
            else:
                self.pool.weight[:] = 0.0
                self.pool.weight[selection.ids] = selection.loss_weights
            self.pool.mark_selected(selection.ids)
            self.select_time += time.perf_counter() - start
            self.plans = {epoch: selection}  # older plans are never asked for again
        return self.plans[epoch]

    def num_samples(self) -> int:
        return len(self.pool)

    def planned_epoch(self) -> int | None:
        """The latest planned epoch: Ray Data's selection filter polls it (cheap) per block."""
        return next(iter(self.plans), None)

    def planned_selection(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The latest plan's (epoch, ids sorted, their loss weights), fetched once per epoch per reader."""
        epoch, selection = next(iter(self.plans.items()))
        order = np.argsort(selection.ids, kind="stable")
        return epoch, selection.ids[order], selection.loss_weights[order]

    def record(self, epoch: int, ids: np.ndarray, loss: np.ndarray, entropy: np.ndarray,
               uncertainty: np.ndarray, difficulty: np.ndarray, score: np.ndarray | None, adaptive_w: float,
               features: np.ndarray | None = None, predicted_change: np.ndarray | None = None,
               acted: dict | None = None, fit: np.ndarray | None = None) -> None:
        """One training batch's signals (vectorised: one call per batch, not per sample).

        `score` is the reward variant's value; the selector turns it into the stored reward
        (action * score for the Data Agent, the score itself otherwise). A history variant
        (score None) is scored here, where each sample's previous IDU lives. `acted`: the Data
        Agent's worker-side actions; each becomes its sample's selection weight in the pool. `fit`:
        the task's p(given label) (boxes, masks), which the agreement tracks; None: exp(-loss).
        """
        started = time.perf_counter()
        ids = np.asarray(ids, np.int64)
        loss = np.asarray(loss, np.float32)
        change = np.zeros_like(loss) if predicted_change is None else np.asarray(predicted_change, np.float32)
        seen = self.pool.last_epoch_seen[ids] != NEVER
        previous = np.where(seen, self.pool.idu[ids], loss)  # O(batch), not O(N)
        utility = idu(previous, loss, change, self.cfg.reward.idu_smoothing)
        if score is None:
            score = minmax(utility)
        observe_start = time.perf_counter()
        reward = np.asarray(self.selector.observe(epoch, ids, features, score, acted), np.float32)
        self.observe_time += time.perf_counter() - observe_start
        agreement = label_agreement(self.pool.agreement[ids], loss, seen, self.cfg.agent.agreement_decay, fit)
        extra = {} if acted is None else {"weight": acted["action"]}
        self.pool.update(ids, epoch=epoch, loss=loss, entropy=entropy, uncertainty=uncertainty,
                         difficulty=difficulty, reward=reward, idu=utility, agreement=agreement, **extra)
        n = len(ids)
        self.epoch_passes += n
        self.reward_sum += float(np.sum(reward))
        self.reward_sq_sum += float(np.sum(np.square(reward, dtype=np.float64)))
        self.w_sum += adaptive_w * n
        self.record_time += time.perf_counter() - started

    def record_batches(self, batches: list[tuple]) -> None:
        """Several training batches' `record` arguments in one call, recorded in order, each as its
        own batch (the batch-local signals stay batch-local). A worker sends these so that the Ray
        call and its deserialisation are paid once per few thousand samples, not per batch."""
        for args in batches:
            self.record(*args)

    def progress(self, since: int = 0) -> dict:
        """Epoch rows finished after the first `since`, and the current epoch's count so far."""
        plan = next(iter(self.plans.values()), None)
        new = [{k: v for k, v in row.items() if not isinstance(v, list)} for row in self.history[since:]]
        return {"new": new, "passes": self.epoch_passes, "planned": 0 if plan is None else len(plan.ids),
                "resumed_from": self.resumed_from}

    # --- called by rank 0 at the end of an epoch ----------------------------------------------
    def finish_epoch(self, epoch: int, metrics: dict) -> dict:
        n = len(self.pool)
        plan = self.plans[epoch]
        start = time.perf_counter()
        selector_metrics = self.selector.update(self.pool, epoch)
        update_time = time.perf_counter() - start
        self.cumulative_cost += self.epoch_passes
        passes = max(self.epoch_passes, 1)
        reward_mean = self.reward_sum / passes
        selected_per_class = self._per_class(plan.ids)
        row = {
            **metrics,
            "epoch": epoch,
            "selected": len(plan.ids),
            "selected_fraction": len(plan.ids) / n,
            "full_epoch": int(plan.full),
            # Share of the budget forced in by staleness rather than chosen by the selector (0: a full epoch,
            # or a selector that forces nothing).
            "forced_share": plan.forced / max(len(plan.ids), 1),
            "passes": self.epoch_passes,
            "cumulative_cost": self.cumulative_cost,
            "cumulative_cost_epochs": self.cumulative_cost / n,
            "cost_fraction": self.cumulative_cost / (n * (epoch + 1)),
            "reward_mean": reward_mean,
            "reward_var": max(self.reward_sq_sum / passes - reward_mean**2, 0.0),
            "adaptive_w": self.w_sum / passes,
            "pool_loss_mean": float(self.pool.loss[self.pool.seen].mean()) if self.pool.seen.any() else 0.0,
            "selection_time_s": self.select_time + update_time,
            # Overhead breakdown (benchmarks/overhead.py): store-side seconds of this epoch.
            "plan_s": self.select_time, "selector_update_s": update_time,
            "store_record_s": self.record_time, "selector_observe_s": self.observe_time,
            **selector_metrics,
        }
        if "agent_act_time_s" in row:  # worker acting (this epoch) + learner (its last reported epoch)
            row["agent_time_s"] = row["agent_act_time_s"] + row.get("agent_learner_time_s", 0.0)
            if metrics.get("train_time_s"):
                row["agent_overhead"] = row["agent_time_s"] / metrics["train_time_s"]  # agent time per training second
        selection_epochs = [h for h in self.history + [row] if not h["full_epoch"]]
        if selection_epochs:
            row["selection_cost_fraction"] = float(np.mean([h["selected_fraction"] for h in selection_epochs]))
            row["selection_forced_share"] = float(np.mean([h.get("forced_share", 0.0) for h in selection_epochs]))
        for name, group in self.pool.truth.items():  # ground truth (benchmarks): share of each group trained on
            row[f"trained_{name}"] = float(group[plan.ids].sum() / max(group.sum(), 1))
            if selection_epochs:
                row[f"selection_trained_{name}"] = float(np.mean([h[f"trained_{name}"] for h in selection_epochs]))
        hist, _ = np.histogram(np.clip(self.pool.weight, 0, 1), bins=WEIGHT_BINS, range=(0, 1))
        row["weight_hist"] = hist.tolist()
        # For weights.png: the weights' spread per epoch, and the epoch's histogram on the range they span
        # (an agent's weights often sit in a band 0.03 wide, invisible on [0, 1]).
        weights = self.pool.weight.astype(np.float64)
        row["weight_quantiles"] = np.quantile(weights, WEIGHT_QUANTILES).tolist()
        lo, hi = row["weight_quantiles"][1], row["weight_quantiles"][-2]
        if hi - lo < 1e-3:  # one value (e.g. every weight 1): a bar of visible width around it
            lo, hi = lo - 5e-4, hi + 5e-4
        fit, _ = np.histogram(weights, bins=40, range=(lo, hi))
        row["weight_fit_hist"], row["weight_fit_range"] = fit.tolist(), [lo, hi]
        row["class_selected_fraction"] = (selected_per_class / np.maximum(self.class_counts, 1)).tolist()
        self.history.append(row)
        start = time.perf_counter()
        if self._snapshot_due(epoch):
            self.snapshots[epoch] = self._snapshot(f"pool_epoch_{epoch + 1:03d}.parquet")
        row["snapshot_s"] = time.perf_counter() - start
        if not self.publish_on_commit:  # no Ray Train controller to wait for (a session in a user's loop)
            self.publish(epoch)
        self._reset_epoch()
        return {k: v for k, v in row.items() if not isinstance(v, list)}

    def _snapshot_due(self, epoch: int) -> bool:
        """Every `tracking.snapshot_every` epochs and the last: at 10M rows a snapshot is hundreds of MB."""
        every = self.cfg.tracking.snapshot_every
        return epoch == self.cfg.train.epochs - 1 or (every > 0 and (epoch + 1) % every == 0)

    def _snapshot(self, name: str) -> Path:
        """Write the pool's Parquet snapshot to the storage path; returns a local copy for MLflow."""
        columns = self.cfg.tracking.snapshot_columns
        if not is_uri(self.snapshot_dir):
            return self.pool.snapshot(Path(self.snapshot_dir) / name, columns=columns)
        import tempfile

        from pyarrow import fs

        local = self.pool.snapshot(Path(tempfile.mkdtemp(prefix="raydata_agent_pool_")) / name, columns=columns)
        filesystem, root = fs.FileSystem.from_uri(self.snapshot_dir)
        filesystem.create_dir(root, recursive=True)
        fs.copy_files(str(local), f"{root}/{name}", destination_filesystem=filesystem)
        return local

    def publish(self, epoch: int) -> None:
        """Log an epoch's row (and snapshot) to MLflow, once. The Ray Train controller calls this when the
        checkpoint holding the epoch is committed, so MLflow never shows an epoch that a restart will redo."""
        if epoch in self.published or self.tracker is None:
            return
        row = next((h for h in self.history if h["epoch"] == epoch), None)
        if row is None:
            return
        start = time.perf_counter()
        # People count epochs from 1: MLflow's steps and its `epoch` metric match the console and the plots.
        self.tracker.log_metrics({**row, "epoch": epoch + 1}, step=epoch + 1)
        snapshot = self.snapshots.pop(epoch, None)
        if snapshot is not None and snapshot.is_file():
            if self.cfg.tracking.log_snapshots:
                self.tracker.log_artifact(snapshot, "pool")
            if is_uri(self.snapshot_dir):  # the local copy was only for MLflow
                import shutil

                shutil.rmtree(snapshot.parent, ignore_errors=True)
        row["mlflow_log_s"] = time.perf_counter() - start
        self.tracker.log_metrics({"mlflow_log_s": row["mlflow_log_s"]}, step=epoch + 1)
        self.published.add(epoch)

    def publish_all(self) -> None:
        """Log every finished epoch not logged yet (the end of a run, or after a restore)."""
        for row in self.history:
            self.publish(row["epoch"])

    def get_history(self) -> list[dict]:
        return self.history

    # --- checkpoints --------------------------------------------------------------------------
    def checkpoint_state(self) -> tuple[pa.Table, dict]:
        """The pool and selector state, returned by value so any worker node can write them."""
        return self.pool.table(), {"selector": self.selector.state_dict(), "history": self.history,
                                   "cumulative_cost": self.cumulative_cost}

    def restore(self, table: pa.Table | None, state: dict | None) -> int:
        """Roll the pool, selector (and agent), history and cost back to a checkpoint, or to the start
        when there is none. Called by rank 0 whenever training (re)starts: after a worker failure
        this actor has absorbed part of the failed epoch, which must not count. Returns the epochs done."""
        first_start = not (self.plans or self.history or self.epoch_passes)
        if table is None:
            if first_start:
                return 0  # nothing happened yet: the first start, nothing to roll back
            labels, sources, truth, selector_state = self._initial
            pool = SamplePool(labels, sources, source_prefix=self.cfg.data.name, truth=truth)
            state = {"selector": selector_state, "history": [], "cumulative_cost": 0}
        else:
            pool = SamplePool.from_table(table)
            state = copy.deepcopy(state)  # arrays that came through Ray are read-only; selectors update theirs
        if len(pool) != len(self.pool):
            raise CheckpointError(f"the checkpoint holds a pool of {len(pool)} rows, this data has "
                                  f"{len(self.pool)}: it belongs to another data set")
        self.pool = pool
        self.selector.load_state_dict(state["selector"])
        self.history = state["history"]
        if first_start and table is not None:
            self.resumed_from = len(self.history)
        self.cumulative_cost = state["cumulative_cost"]
        self.plans = {}
        self._reset_epoch()
        if self.tracker is not None:  # what an earlier attempt or driver already logged stays logged, once
            logged = self.tracker.client.get_metric_history(self.tracker.run_id, "epoch")
            self.published = {m.step - 1 for m in logged}
        self.publish_all()
        return len(self.history)
