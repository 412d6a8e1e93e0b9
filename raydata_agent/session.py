"""The selection session: the one object a training loop talks to (docs/design.md#the-selection-session).

A loop asks it for each epoch's subset (`plan_epoch`, or the `sampler()` that wraps it), hands it
every batch's per-sample losses (`record`, which also returns the loss to back-propagate, weighted),
and closes each epoch (`end_epoch`). Behind it sit the score store (pool + selector + MLflow
logging) and, for the Data Agent, the agent actor.

The store is either a `ScoreStore` object in this process (a single-process loop needs no Ray) or
the store's Ray actor (Ray Train workers, several processes). The session hides the difference:
our own recipe (train.py), a user's plain PyTorch loop, a user's Ray Train loop and the
ultralytics / mmengine integrations all run through the same calls.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from raydata_agent.config import Config
from raydata_agent.errors import NonFiniteLossError
from raydata_agent.progress import closing_lines, own_loop_epoch_line, say
from raydata_agent.sampling import SelectedSampler, rank_and_world, shard
from raydata_agent.selectors import SELECTORS
from raydata_agent.signals import batch_signals, predicted_loss_change

SEND_SAMPLES = 16384  # a worker sends its signals to a store actor once this many samples are buffered,
SEND_SECONDS = 1.0  # or once this long has passed since its last send (slow steps: the live count still moves)
MAX_PENDING_RECORDS = 8  # back-pressure: at most this many such sends in flight to a store actor


def _as_numpy_ids(ids) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _numpy(x: torch.Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().float().cpu().numpy()


class SelectionSession:
    """Plan the epoch, record each batch's signals, read the loss weights.

    Build one with `start_session(...)` (public); `SelectionSession(store, cfg)` wraps a store that
    already exists (our runner's actor). A session backed by a store actor is picklable: Ray Train
    workers each get a copy, the driver's copy owns the MLflow run and the actors.
    """

    def __init__(self, store, cfg: Config, *, tracker=None, agent=None, owner: bool = False,
                 progress: bool = False, plot_title: str = "", class_names: list[str] | None = None):
        self.store = store
        self.cfg = cfg
        self.tracker = tracker
        self.agent = agent
        self.owner = owner  # the creating process ends the MLflow run and the actors in close()
        self.progress = progress  # print one line per epoch (rank 0)
        self.plot_title, self.class_names = plot_title, class_names  # for the figures close() logs
        self._closed_history: list[dict] | None = None
        self.remote = hasattr(store.plan, "remote")  # a Ray actor handle, not an in-process ScoreStore
        self.acting = None  # the Data Agent's acting copy in this process (agent/acting.py), made at the first record
        self._reset()

    def _reset(self) -> None:
        self.epoch: int | None = None  # the open epoch
        self.ids = np.zeros(0, np.int64)  # this rank's share of the open epoch, in training order
        self.weights = np.zeros(0, np.float32)
        self._sorted_ids = self._sorted_weights = self._sorted_context = None
        self._payoff_refs = (None, None)
        self._pending: list = []
        self._outbox: list[tuple] = []  # signals not yet sent to the store actor (one tuple per batch)
        self._outbox_samples = 0
        self._last_send = time.perf_counter()
        self._last_epoch = -1
        self._epoch_start = 0.0
        self._loss_sum, self._weighted_loss_sum, self._steps, self._passes = 0.0, 0.0, 0, 0
        self._planned_total = 0
        self.timings = {"signals_s": 0.0, "act_s": 0.0, "send_s": 0.0, "flush_s": 0.0}

    # --- pickling: a copy travels to each Ray Train worker ------------------------------------
    def __getstate__(self):
        if not self.remote:
            raise TypeError("an in-process selection session cannot be sent to other processes; "
                            "start it with start_session(..., use_ray=True) for Ray Train workers")
        return {"store": self.store, "cfg": self.cfg, "tracker": self.tracker, "progress": self.progress,
                "agent": self.agent}

    def __setstate__(self, state):
        self.__init__(state["store"], state["cfg"], tracker=state["tracker"], agent=state["agent"],
                      progress=state["progress"])
        if self.agent is not None and self.needs_features:  # a worker that will act: import RLlib meanwhile
            from raydata_agent.agent.policy import preload

            preload()

    # --- store calls: in process, or on the actor ---------------------------------------------
    def _call(self, method: str, *args):
        if self.remote:
            import ray

            return ray.get(getattr(self.store, method).remote(*args))
        return getattr(self.store, method)(*args)

    @property
    def needs_features(self) -> bool:
        """Whether the selector uses each sample's pooled features (the agent's state): only then
        does `record` ship them."""
        return SELECTORS[self.cfg.selection.selector].needs_features

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

    # --- 1. plan ------------------------------------------------------------------------------
    def plan_epoch(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """This process's share of the epoch's subset: (ids in training order, loss weights).

        Every rank gets an equal, disjoint share (padded) of the same selection, shuffled by the
        seed and epoch. `epoch=None`: the open epoch while nothing is recorded in it yet, else the
        next one. An epoch still open is closed first, so a loop that never calls `end_epoch` still
        feeds the selector.
        """
        if epoch is None:
            epoch = self.epoch if self.epoch is not None and self._steps == 0 else self._last_epoch + 1
        epoch = int(epoch)
        if self.epoch == epoch:
            return self.ids, self.weights
        if self.epoch is not None:
            self.end_epoch()
        selection = self._call("plan", epoch)
        rank, world = rank_and_world()
        self.ids, self.weights = shard(selection.ids, selection.loss_weights, rank, world,
                                       seed=self.cfg.train.seed * 1000 + epoch)
        order = np.argsort(selection.ids, kind="stable")
        self._sorted_ids, self._sorted_weights = selection.ids[order], selection.loss_weights[order]
        # The Data Agent's per-sample history (looked up by id, like the loss weights) and payoff references.
        self._sorted_context = None if selection.context is None else selection.context[order]
        self._payoff_refs = (selection.baseline, selection.target_quantiles)
        self.epoch, self._last_epoch = epoch, epoch
        self._planned_total = len(selection.ids)
        self._epoch_start = time.perf_counter()
        self._loss_sum, self._weighted_loss_sum, self._steps, self._passes = 0.0, 0.0, 0, 0
        # Seconds this process spent in the session this epoch, logged with the epoch (benchmarks/overhead.py).
        self.timings = {"signals_s": 0.0, "act_s": 0.0, "send_s": 0.0, "flush_s": 0.0}
        return self.ids, self.weights

    def selected_ids_dataset(self, override_num_blocks: int | None = None, columns: dict | None = None,
                             num_cpus: float | None = None):
        """A Ray Data dataset of the pool's ids ("id"), filtered at read time to the epoch each
        worker planned, with each row's "loss_weight" and "epoch". Map your decoding over it, pass it to
        TorchTrainer(datasets=...), and every worker's `get_dataset_shard` carries its share of
        each epoch's selection; `record(batch["id"], ...)` sends the signals back.
        Every worker calls `plan_epoch(epoch)` before iterating its shard.

        `columns` (name -> array with one row per pool sample, e.g. file paths and labels): the rows
        carry them, so a worker's shard holds its own samples' sources and no one else's. The rows
        are then shuffled once (seeded) into `override_num_blocks` blocks (default: ~256 rows each),
        since a set stored class by class would otherwise stream one class at a time.
        `num_cpus`: what each filtering task reserves (default: Ray Data's 1).
        """
        from raydata_agent.selected_ids import selected_ids_dataset

        if not self.remote:
            raise TypeError("selected_ids_dataset needs the store as a Ray actor: start_session(..., use_ray=True)")
        return selected_ids_dataset(self.store, self._call("num_samples"), self.cfg.train.seed,
                                    override_num_blocks, columns, num_cpus)

    def sampler(self, shuffle: bool = True) -> "SelectedSampler":
        """A torch Sampler over this epoch's selected ids (this rank's share under DDP)."""
        return SelectedSampler(self, shuffle=shuffle)

    # --- 2. loss weights ----------------------------------------------------------------------
    def loss_weights(self, ids) -> torch.Tensor:
        """Each sample's multiplier in the loss this epoch (1/rho, InfoBatch's 1/(1-r), or 1)."""
        weights, _ = self._lookup(ids)
        return weights.to(ids.device) if isinstance(ids, torch.Tensor) else weights

    def _lookup(self, ids) -> tuple[torch.Tensor, np.ndarray]:
        """Loss weights of `ids`, and their rows in this epoch's sorted selection."""
        if self.epoch is None:
            raise RuntimeError("no epoch is planned: iterate the session's sampler or call plan_epoch() first")
        keys = _as_numpy_ids(ids)
        pos = np.clip(np.searchsorted(self._sorted_ids, keys), 0, max(len(self._sorted_ids) - 1, 0))
        found = len(self._sorted_ids) > 0 and bool(np.all(self._sorted_ids[pos] == keys))
        if not found:
            missing = keys[self._sorted_ids[pos] != keys][:5] if len(self._sorted_ids) else keys[:5]
            raise KeyError(f"sample ids {missing.tolist()} are not in epoch {self.epoch}'s selection; "
                           f"feed the loop from session.sampler() (or plan_epoch())")
        return torch.from_numpy(self._sorted_weights[pos]), pos

    # --- 3. record ----------------------------------------------------------------------------
    def record(self, ids, loss: torch.Tensor, *, probs: torch.Tensor | None = None,
               logits: torch.Tensor | None = None, features: torch.Tensor | None = None,
               uncertainty: torch.Tensor | None = None, grad_norm: torch.Tensor | None = None,
               lr: float | None = None, fit: torch.Tensor | None = None) -> torch.Tensor:
        """Record one training batch's per-sample signals; returns the weighted mean loss to back-propagate.

        `loss` is [B] (reduction="none"), with its graph. Optional: `probs` [B, C] or `logits`
        [B, C] (uncertainty = normalised entropy), or a task's own `uncertainty` [B] in [0, 1];
        `features` [B, d] (the agent's state); `grad_norm` [B] and `lr` (LEAD's predicted loss change); `fit`
        [B], the task's p(given label) (`TaskOutput.fit`; dropped if agent.fit_signal=loss). Signals are
        computed here (signals.py) and sent to the store; the store never sees tensors.
        """
        if self.epoch is None:
            raise RuntimeError("no epoch is planned: iterate the session's sampler or call plan_epoch() first")
        np_ids = _as_numpy_ids(ids)
        loss = loss.reshape(-1)
        if loss.shape[0] != len(np_ids):
            raise ValueError(f"record got {len(np_ids)} ids but {loss.shape[0]} losses; pass the "
                             f"per-sample loss (reduction='none')")
        finite = torch.isfinite(loss.detach())
        if not finite.all():
            bad = np_ids[~finite.cpu().numpy()]
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.epoch}, step {self._steps} for sample ids {bad[:10].tolist()}; "
                f"checkpoints and pool snapshots of earlier epochs are kept")
        weights, pos = self._lookup(np_ids)
        weights = weights.to(loss.device)
        weighted = (loss * weights).mean()
        if logits is not None and probs is None:
            probs = logits.detach().float().softmax(-1)
        _, world = rank_and_world()
        started = time.perf_counter()
        sig = batch_signals(loss, probs, self.cfg.reward.variant, self.cfg.reward.clip_quantile,
                            uncertainty=uncertainty)
        change, fit = None, _numpy(fit) if self.cfg.agent.fit_signal == "task" else None
        if grad_norm is not None:
            if lr is None:
                raise ValueError("record(grad_norm=...) needs lr= (LEAD's predicted loss change uses the step size)")
            change = _numpy(predicted_loss_change(grad_norm, loss, weights, lr, world))
        sent = time.perf_counter()
        self.timings["signals_s"] += sent - started
        acted = None
        if self.agent is not None and self.needs_features:  # act here, where the features are
            acted = self._act(np_ids, sig, features, pos, fit)
        acted_at = time.perf_counter()
        self._send(np_ids, sig, change, acted, fit)
        self.timings["act_s"] += acted_at - sent
        self.timings["send_s"] += time.perf_counter() - acted_at
        loss_sums = torch.stack([loss.detach().float().sum(), weighted.detach().float()]).tolist()  # one sync
        self._loss_sum += loss_sums[0]
        self._weighted_loss_sum += loss_sums[1]
        self._steps, self._passes = self._steps + 1, self._passes + len(np_ids)
        return weighted

    def _act(self, ids: np.ndarray, sig, features: torch.Tensor | None, pos: np.ndarray, fit) -> dict:
        """The Data Agent's actions for this batch, from the acting copy of its policy (agent/acting.py).
        Only the actions and reward targets go to the store; a bounded panel of transitions goes to
        the learner."""
        if features is None:
            raise ValueError("selection.selector=data_agent acts on each sample's features: pass "
                             "record(..., features=[B, d] pooled features)")
        if self.acting is None:
            from raydata_agent.agent.acting import WorkerActing

            rank, _ = rank_and_world()
            self.acting = WorkerActing(self.cfg.agent, self.agent, int(self._call("num_samples")),
                                       seed=self.cfg.train.seed * 100 + rank, device=str(features.device))
        return self.acting.act(self.epoch, ids, features, _numpy(sig.loss), _numpy(sig.difficulty), _numpy(sig.uncertainty),
                               _numpy(sig.score), self._sorted_context[pos], *self._payoff_refs, fit=fit)

    def _send(self, ids: np.ndarray, sig, change: np.ndarray | None, acted: dict | None, fit) -> None:
        """The single place where a batch's signals leave the training process (features never do)."""
        args = (self.epoch, ids, _numpy(sig.loss), _numpy(sig.entropy), _numpy(sig.uncertainty),
                _numpy(sig.difficulty), _numpy(sig.score), sig.weight, None, change, acted, fit)
        if not self.remote:
            self.store.record(*args)
            return
        self._outbox.append(args)
        self._outbox_samples += len(ids)
        if self._outbox_samples >= SEND_SAMPLES or time.perf_counter() - self._last_send >= SEND_SECONDS:
            self._send_outbox()

    def _send_outbox(self) -> None:
        """Ship the buffered batches in one store call (fire and forget, bounded): a Ray call per
        batch cost about a fifth of a worker's time and of the store's in bench_store.py."""
        if not self._outbox:
            return
        self._pending.append(self.store.record_batches.remote(self._outbox))
        self._outbox, self._outbox_samples, self._last_send = [], 0, time.perf_counter()
        if len(self._pending) >= MAX_PENDING_RECORDS:
            import ray

            half = len(self._pending) // 2
            ray.get(self._pending[:half])
            self._pending = self._pending[half:]

    def flush(self) -> None:
        """Wait until every signal this process recorded is in the pool."""
        self._send_outbox()
        if self._pending:
            import ray

            start = time.perf_counter()
            ray.get(self._pending)
            self._pending = []
            if hasattr(self, "timings"):
                self.timings["flush_s"] += time.perf_counter() - start

    @property
    def train_loss(self) -> float:
        """Mean per-sample loss of the open epoch's samples so far (this process), unweighted: the
        figure to compare across epochs (the weighted one jumps by 1/ratio when selection starts)."""
        return self._loss_sum / max(self._passes, 1)

    @property
    def train_loss_weighted(self) -> float:
        """Mean of the weighted batch losses `record` returned (what the optimiser minimised)."""
        return self._weighted_loss_sum / max(self._steps, 1)

    # --- 4. close the epoch -------------------------------------------------------------------
    def end_epoch(self, metrics: dict | None = None, *, val_metric: float | None = None) -> dict:
        """Close the open epoch: the selector updates from every worker's signals, the epoch's row
        goes to MLflow. Under DDP every rank calls it; rank 0's `val_metric` (the validation figure
        metric_vs_cost.png plots against cost) and other `metrics` are logged.

        Returns the logged row on rank 0, this process's metrics elsewhere.
        """
        if self.epoch is None:
            return dict(metrics or {})
        epoch = self.epoch
        metrics = {"train_loss": self.train_loss, "train_loss_weighted": self.train_loss_weighted,
                   "train_time_s": time.perf_counter() - self._epoch_start,
                   **getattr(self, "timings", {}),
                   **(metrics or {}), **({} if val_metric is None else {"val_metric": float(val_metric)})}
        if self.acting is not None:
            self.acting.send(epoch)  # the epoch's last panel transitions
            metrics["agent_act_time_s"] = self.acting.take_busy()
        self.flush()
        rank, world = rank_and_world()
        distributed = world > 1
        if distributed:
            torch.distributed.barrier()  # every worker's signals are in the pool
        if rank == 0:
            metrics.setdefault("epoch_time_s", time.perf_counter() - self._epoch_start)
            metrics = self._call("finish_epoch", epoch, metrics)
            if metrics["passes"] == 0:
                warnings.warn(f"epoch {epoch + 1} recorded no sample: call session.record(ids, per_sample_loss) "
                              f"on every training batch", stacklevel=2)
            if self.progress:
                say(own_loop_epoch_line(metrics, epoch, self.epochs))
        if distributed:
            torch.distributed.barrier()  # no rank plans the next epoch before the selector updated
        self.epoch = None
        return metrics

    # --- checkpoints and results --------------------------------------------------------------
    def checkpoint_state(self):
        """(pool table, selector state) to write next to a model checkpoint."""
        return self._call("checkpoint_state")

    @property
    def history(self) -> list[dict]:
        """One row per finished epoch: selected, selected_fraction, train_loss, cost_fraction, ..."""
        if self._closed_history is not None:  # the store is gone after close(); its history is kept
            return self._closed_history
        return self._call("get_history")

    @property
    def run_id(self) -> str | None:
        return None if self.tracker is None else self.tracker.run_id

    @property
    def tracking_uri(self) -> str | None:
        return None if self.tracker is None else self.tracker.uri

    def close(self, status: str = "FINISHED") -> None:
        """Close the open epoch; the creating process also logs the plots and ends the MLflow run."""
        if self.epoch is not None and status == "FINISHED":
            self.end_epoch()
        if not self.owner:
            return
        from raydata_agent.plots import log_plots  # matplotlib loads only where a run closes

        history = self._closed_history = self.history
        nothing_recorded = status == "FINISHED" and not any(h["passes"] for h in history)
        if nothing_recorded:
            status = "FAILED"
        if self.tracker is not None:
            log_plots(self.tracker, history, self.plot_title, self.class_names)
            self.tracker.end(status)
            if self.progress:
                closing_lines(history, self.tracker.uri, self.tracker.experiment_id, self.tracker.run_id)
        for actor in (self.store if self.remote else None, self.agent):
            if actor is not None:
                import ray

                ray.kill(actor)
        self.owner = False
        if nothing_recorded:
            raise RuntimeError(f"no sample was recorded in {len(history)} epochs (run marked FAILED): call "
                               f"session.record(ids, per_sample_loss) on every training batch")

    def __enter__(self) -> "SelectionSession":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FINISHED" if exc_type is None else "FAILED")
