"""The agent's acting half, in the training worker next to the features (docs/design.md#acting-and-learning).

This is RLlib's EnvRunner/Learner split with the training loop in the EnvRunner's place: each
worker holds an inference-only copy of the learner's RLModule with a weight version, acts on every
batch it trains on, and sends the learner (the `DataAgent` actor) only a bounded sample of
transitions. Weights come back on the same round trip, as an EnvRunner's are synced after each
training step: at its call points the worker makes one call to the learner (`observe` with its panel
transitions, or `publish` when it has none), whose answer carries the newest weights if they are
newer than the worker's. No Ray call is made per batch (measured: a per-batch poll cost ~15% of the
worker's time in bench_store.py). No feature matrix crosses the network or is kept per sample: the
store gets each sample's action (its selection weight) and reward target.

When weights are loaded is `agent.schedule`:
- deterministic (opt-in): the call points are fixed batch counts (every `send_every` batches, once
  the worker holds half an update of transitions; and each epoch's end and start). At call point k
  the worker waits for call k-1's answer and loads its weights, so the batches up to call point k+1
  act with the learner's version after call k-1, whatever the timing. Nothing is dropped, and the
  epoch's last call is waited for, so the learner's `end_epoch` comes after it. The learner consumes
  one worker's transitions in the order sent: the same seed gives the same actions and selections.
  With several workers their calls interleave at the learner in arrival order (not reproducible).
- async (default): a call is also made once MAX_CALL_GAP_S passed, answers are collected without blocking
  (`ray.wait(timeout=0)`), and transitions are dropped (counted) while MAX_SENDS_IN_FLIGHT calls are
  pending: a worker never waits for a PPO update, but which weights act depends on timing.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from raydata_agent.agent.calls import Done, call, fetch, ready_split
from raydata_agent.agent.policy import build_module, policy_act, uniform_act
from raydata_agent.agent.rewards import payoff_param, payoff_reward, reward_target
from raydata_agent.agent.state import build_state
from raydata_agent.config import AgentConfig

MAX_SENDS_IN_FLIGHT = 4  # async: more than this, a worker drops (and counts) transitions rather than wait
MAX_CALL_GAP_S = 0.5  # async: a worker with few panel transitions still calls the learner (for weights) this often


def in_panel(ids: np.ndarray, fraction: float) -> np.ndarray:
    """The fixed, hashed subset of samples whose transitions reach the learner.

    The same ids on every worker and every epoch, so each panel sample's whole trajectory arrives
    (GAE along its visits stays correct) while the learner's memory stays bounded by the panel.
    """
    if fraction >= 1.0:
        return np.ones(len(ids), bool)
    hashed = (np.asarray(ids, np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return hashed < np.uint64(int(fraction * 2**32))


class WorkerActing:
    """One training worker's acting copy of the policy; `act` is called on every trained batch."""

    def __init__(self, cfg: AgentConfig, learner, num_samples: int, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self.learner = learner
        self.device = torch.device(device)
        self.panel_fraction = min(1.0, cfg.panel_size / max(num_samples, 1))
        self.module = None
        self.version = -1  # -1: acting uniformly, no weights yet
        self.obs_size = 0
        self.epoch = -1  # the epoch of the last batch acted on
        self.outbox: list[tuple] = []
        self.last_call = time.perf_counter()
        self.calls: list = []  # observe / publish calls in flight; each answers with newer weights or None
        self.batches = 0
        self.dropped = 0
        self.busy_s = 0.0  # time spent acting since the last `take_busy`
        self.deterministic = cfg.schedule == "deterministic"
        torch.manual_seed(seed)

    def _refresh(self, obs_size: int, wait: bool = False) -> None:
        """Ask for the learner's first weights at the first batch and load them once they are here.
        In epoch 0 (full data; the first selection does not use its actions) the worker acts uniformly
        (`uniform_act`) until then, so no batch waits for the RLlib import or the learner's build.
        `wait`: block until they are here: a worker that starts later (restarted, resumed) acts for a
        selection, and a benchmark leaves start-up out. agent.schedule=deterministic: they are loaded
        at the first call point (`_collect`), not when they happen to arrive."""
        if self.module is not None:
            return
        if not self.obs_size:
            self.obs_size = obs_size
            self.calls.append(call(self.learner, "publish", -1, obs_size))
        self._collect(wait)

    def _collect(self, wait: bool = False) -> None:
        """Load the newest weights among the learner's answers that have arrived (`wait`: all of them);
        keep the rest waiting. The first answer also builds the acting copy. deterministic: only when
        waiting (at a call point), so arrival times never decide which weights act."""
        if self.deterministic and not wait:
            return
        answered, self.calls = (self.calls, []) if wait else ready_split(self.calls)
        newest = max((a for a in map(fetch, answered) if a is not None), key=lambda a: a[0], default=None)
        if newest is None or newest[0] <= self.version:
            return
        if self.module is None:
            self.module = build_module(self.obs_size, self.cfg, inference_only=True).to(self.device)
        self.module.set_state(newest[1])
        self.version = newest[0]

    def act(self, epoch: int, ids: np.ndarray, features, loss: np.ndarray, difficulty: np.ndarray,
            uncertainty: np.ndarray, score: np.ndarray, context: np.ndarray, baseline: float | None = None,
            quantiles: np.ndarray | None = None, fit: np.ndarray | None = None) -> dict:
        """Act on one trained batch; returns what the score store records for it. `fit`: the task's
        p(given label) per sample, where it has one (signals.p_given_label)."""
        start = time.perf_counter()
        obs_t = build_state(features, loss, difficulty, uncertainty, context, self.cfg.state, fit).to(self.device)
        self._refresh(obs_t.shape[1], wait=epoch > 0)
        if epoch != self.epoch and self.module is not None:  # the learner fits between epochs: ask for it
            self.send(epoch)
        self.epoch = epoch
        acted = policy_act(self.module, obs_t) if self.module is not None else uniform_act(
            len(obs_t), self.cfg, obs_t.device)
        actions, logp, logits = (t.cpu().numpy() for t in acted)
        target = reward_target(score, loss, context, self.cfg, fit)
        panel = in_panel(ids, self.panel_fraction)
        if panel.any():  # only the panel's transitions (states, rewards) leave the worker
            param = payoff_param(target, self.cfg.payoff, baseline, quantiles, rows=panel)
            reward = payoff_reward(actions[panel], param, self.cfg.payoff)
            obs = obs_t[torch.from_numpy(panel).to(obs_t.device)].cpu().numpy()
            self.outbox.append((ids[panel], obs, actions[panel], logp[panel], logits[panel], reward, param))
        self.batches += 1
        if self.batches % self.cfg.send_every == 0 and self._worth_a_call():
            self._call_learner(epoch)
        self.busy_s += time.perf_counter() - start
        return {"action": actions.astype(np.float32), "target": target.astype(np.float32), "version": self.version}

    def _worth_a_call(self) -> bool:
        """Whether a periodic call to the learner is due: it carries at least half an update of panel
        transitions, or MAX_CALL_GAP_S has passed (the newest weights still arrive). In a large pool the
        panel is a small share of each batch (0.4% at 1M rows), and a call every `send_every` batches
        carried a few transitions for the price of a Ray call (Ray calls, the store's included, were a
        tenth of a worker's time in bench_store.py). Where the pool fits the panel, every row is a
        transition and 8 batches of 16 or more rows already carry 128: the default's calls do not
        change there. The time gap is async only: a deterministic schedule counts transitions."""
        return (self._outbox_transitions() >= self.cfg.update_every // 2
                or (not self.deterministic and time.perf_counter() - self.last_call >= MAX_CALL_GAP_S))

    def _outbox_transitions(self) -> int:
        return sum(len(batch[0]) for batch in self.outbox)

    def send(self, epoch: int) -> None:
        """At an epoch's end (and start): ship the buffered panel transitions to the learner (or ask
        for newer weights). deterministic: wait for the answer and load it, so the learner's end_epoch
        follows this epoch's transitions and the next epoch acts with the weights fitted between."""
        self._call_learner(epoch)
        if self.deterministic:
            self._collect(wait=True)

    def _call_learner(self, epoch: int) -> None:
        """One call to the learner with the buffered transitions (or, with none, for newer weights);
        first load the weights that earlier calls brought back (deterministic: wait for them)."""
        self._collect(wait=self.deterministic)
        if not self.obs_size:  # nothing acted on yet
            return
        if not self.deterministic and len(self.calls) >= MAX_SENDS_IN_FLIGHT:  # behind: never wait for it
            self.dropped += self._outbox_transitions()
            self.outbox = []
            return
        self.last_call = time.perf_counter()
        if not self.outbox:
            self.calls.append(call(self.learner, "publish", self.version, self.obs_size))
        else:
            parts = [np.concatenate(p) for p in zip(*self.outbox)]
            self.outbox = []
            self.calls.append(call(self.learner, "observe", epoch, *parts, self.version, self.dropped))
            self.dropped = 0
        if isinstance(self.calls[-1], Done):  # answered already (a learner in this process): no timing
            self._collect(wait=True)

    def take_busy(self) -> float:
        busy, self.busy_s = self.busy_s, 0.0
        return busy
