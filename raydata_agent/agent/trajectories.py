"""Per-sample trajectories for the Data Agent's PPO, and GAE along each one.

A sample is an agent whose time steps are the epochs in which it is trained on: at each step the
state is its feature vector, the action its selection weight, the reward a * score. A transition's
next state is the *same sample* the next time it is seen, never the next row of some batch, and a
trajectory ends (terminal) at the run's last epoch. Transitions wait here until their successor
arrives; then GAE runs backwards along the sample's own segment, bootstrapped with the value of its
latest, still-open state. (These are the traps of docs/design.md#ppo this module exists to avoid.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def gae(rewards: np.ndarray, values: np.ndarray, bootstrap: np.ndarray, terminal: np.ndarray,
        lengths: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE over a batch of per-sample segments, padded to [S, T].

    rewards, values: [S, T], valid for t < lengths[s]. bootstrap: [S] value of the state after the
    segment's last step (ignored where terminal[s]). Returns advantages and value targets, [S, T].
    """
    num, horizon = rewards.shape
    adv = np.zeros((num, horizon), np.float64)
    next_value = np.where(terminal, 0.0, bootstrap).astype(np.float64)
    running = np.zeros(num, np.float64)
    for t in range(horizon - 1, -1, -1):
        valid = t < lengths
        is_last = t == lengths - 1
        # The step after t is either the segment's bootstrap state or step t+1 of the same sample.
        nv = np.where(is_last, next_value, values[:, min(t + 1, horizon - 1)])
        carry = np.where(is_last, 0.0, running)
        delta = rewards[:, t] + gamma * nv - values[:, t]
        running = np.where(valid, delta + gamma * lam * carry, 0.0)
        adv[:, t] = running
    return adv, adv + values


@dataclass
class TrainBatch:
    ids: np.ndarray  # [M] sample of each transition
    obs: np.ndarray  # [M, d]
    actions: np.ndarray  # [M]
    logp: np.ndarray  # [M] log-prob under the policy that acted
    dist_inputs: np.ndarray  # [M, k] that policy's distribution parameters (for PPO's KL terms)
    advantages: np.ndarray  # [M], one per transition (per sample, per step)
    value_targets: np.ndarray  # [M]

    def __len__(self) -> int:
        return len(self.ids)


class TrajectoryBuffer:
    """Open transitions of every sample, in arrival order."""

    FIELDS = ("ids", "obs", "actions", "logp", "dist_inputs", "values", "rewards")

    def __init__(self):
        self.parts: dict[str, list[np.ndarray]] = {f: [] for f in self.FIELDS}

    def add(self, ids, obs, actions, logp, dist_inputs, values, rewards) -> None:
        for name, arr in zip(self.FIELDS, (ids, obs, actions, logp, dist_inputs, values, rewards)):
            self.parts[name].append(np.asarray(arr))

    def __len__(self) -> int:
        return sum(len(a) for a in self.parts["ids"])

    def _flat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def take(self, gamma: float, lam: float, final: bool) -> TrainBatch | None:
        """Transitions whose successor is known (all of them if `final`), with GAE advantages.

        Each sample's latest transition stays open for the next call unless `final`.
        """
        if not len(self):
            return None
        flat = self._flat()
        order = np.lexsort((np.arange(len(flat["ids"])), flat["ids"]))  # by sample, then arrival
        flat = {k: v[order] for k, v in flat.items()}
        ids = flat["ids"]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        counts = np.diff(np.r_[starts, len(ids)])
        pos = np.arange(len(ids)) - np.repeat(starts, counts)  # step index within the sample
        last_idx = starts + counts - 1
        # Trainable steps: all but the open last one of each sample (or all, at the end of the run).
        lengths = counts if final else counts - 1
        keep_open = np.zeros(len(ids), bool)
        if not final:
            keep_open[last_idx] = True
        bootstrap = flat["values"][last_idx]
        horizon = int(counts.max())
        seg = np.repeat(np.arange(len(starts)), counts)
        rewards = np.zeros((len(starts), horizon))
        values = np.zeros((len(starts), horizon))
        rewards[seg, pos] = flat["rewards"]
        values[seg, pos] = flat["values"]
        adv, targets = gae(rewards, values, bootstrap, np.full(len(starts), final), lengths, gamma, lam)
        train = ~keep_open
        self.parts = {k: [v[keep_open]] for k, v in flat.items()}
        if not train.any():
            return None
        return TrainBatch(ids=ids[train], obs=flat["obs"][train], actions=flat["actions"][train],
                          logp=flat["logp"][train], dist_inputs=flat["dist_inputs"][train], advantages=adv[seg[train], pos[train]].astype(np.float32),
                          value_targets=targets[seg[train], pos[train]].astype(np.float32))

    def state_dict(self) -> dict:
        return {k: np.concatenate(v) if v else None for k, v in self.parts.items()} if len(self) else {}

    def load_state_dict(self, state: dict) -> None:
        self.parts = {f: ([np.asarray(state[f])] if state else []) for f in self.FIELDS}
