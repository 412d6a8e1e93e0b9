"""The selector interface: pool in, this epoch's subset (and its loss weights) out.

A selector sees the pool's latest (possibly stale) scores and returns sample ids. Shared rules
live here so every selector honours them the same way:
- the first `warmup_epochs` (default 1) are full data for every selector, random ones included, so
  all of them spend the same budget; a selector that needs signals always trains on all data in
  epoch 0 (nothing has been scored yet), even with warmup_epochs=0;
- the last (1 - delta) of epochs are full data (annealing, as InfoBatch);
- the kept budget is ceil(ratio * N).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raydata_agent.config import SelectionConfig
from raydata_agent.pool import NEVER, SamplePool


@dataclass
class Selection:
    ids: np.ndarray  # int64 sample ids to train on this epoch
    loss_weights: np.ndarray  # float32, aligned with ids: each sample's multiplier in the loss
    full: bool  # True when this epoch trains on all data (warm-up or annealing)
    weights: np.ndarray | None = None  # float32 [N] selection weight of every pool row; None: membership
    context: np.ndarray | None = None  # float32 [len(ids), c]: per-sample history for acting workers
    # The Data Agent's payoff references, from the pool's latest reward targets: the (1 - ratio)
    # quantile (agent.payoff=margin) and the quantiles at levels 0, 0.01, ..., 1 (agent.payoff=rank).
    baseline: float | None = None
    target_quantiles: np.ndarray | None = None
    forced: int = 0  # picks taken because they were stale (topk), not by weight: the policy did not choose them


class Selector:
    name = "base"
    needs_signals = True  # epoch 0 trains on all data so every sample gets scored once
    needs_features = False  # workers send pooled features only to selectors that use them
    auto_loss_weighting = "none"  # what selection.loss_weighting=auto means for this selector

    def __init__(self, cfg: SelectionConfig, num_samples: int, total_epochs: int, seed: int = 0):
        self.cfg = cfg
        self.num_samples = num_samples
        self.total_epochs = total_epochs
        self.rng = np.random.default_rng(seed)

    @property
    def loss_weighting(self) -> str:
        """selection.loss_weighting, with `auto` resolved to this selector's own default."""
        weighting = self.cfg.loss_weighting
        return self.auto_loss_weighting if weighting == "auto" else weighting

    @property
    def budget(self) -> int:
        return max(1, math.ceil(self.cfg.ratio * self.num_samples))

    def is_full_epoch(self, epoch: int) -> bool:
        warmup = epoch < max(self.cfg.warmup_epochs, 1 if self.needs_signals else 0)
        annealing = epoch >= self.cfg.delta * self.total_epochs
        return warmup or annealing or self.cfg.ratio >= 1.0

    def select(self, pool: SamplePool, epoch: int) -> Selection:
        if self.is_full_epoch(epoch):
            ids = pool.ids
            selection = Selection(ids, np.ones(len(ids), np.float32), full=True, weights=self.weights(pool, epoch))
        else:
            selection = self.choose(pool, epoch, self.budget)
            if self.loss_weighting == "inverse_ratio":
                selection.loss_weights = np.full(len(selection.ids), 1.0 / self.cfg.ratio, np.float32)
        self.annotate(pool, epoch, selection)
        return selection

    def annotate(self, pool: SamplePool, epoch: int, selection: Selection) -> None:
        """Add what the workers need besides the ids (the Data Agent's context); nothing by default."""

    def choose(self, pool: SamplePool, epoch: int, k: int) -> Selection:
        """Pick k ids for a selection epoch. Selectors override this."""
        raise NotImplementedError

    def weights(self, pool: SamplePool, epoch: int) -> np.ndarray | None:
        """Per-sample selection weights for weight-driven selectors; None for the others."""
        return None

    def observe(self, epoch: int, ids: np.ndarray, features: np.ndarray | None, score: np.ndarray,
                acted: dict | None = None) -> np.ndarray:
        """One training batch's signals; returns the reward to store (action * score for an agent,
        whose worker-side actions arrive in `acted`)."""
        return score

    def update(self, pool: SamplePool, epoch: int) -> dict[str, float]:
        """Called after an epoch's signals reached the pool; returns metrics to log."""
        return {}

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    # Helpers shared by the weight-driven selectors.
    def take_by_weight(self, pool: SamplePool, epoch: int, k: int, groups=None) -> Selection:
        """Top-k or proportional (Gumbel top-k) choice by weight, with no sample starved forever.

        topk: samples not trained on for `max_staleness` epochs (or never) are stale and forced in.
        With max_forced_share f = 1 they jump the queue (ordered by weight among themselves); with f < 1
        at most ceil(f * k) of them, oldest first, so the weights still choose the rest of the budget at
        any ratio (docs/concepts/selectors.md states the resulting no-starvation bound).
        proportional: sampling without replacement in proportion to weight ** (1 / temperature); every
        weight is floored above zero, so every sample keeps a chance.
        groups (labels, or `group_rows(labels)`): each group gets its share of k (largest remainder),
        chosen within it; forced picks count against their group's share.
        """
        weights = np.asarray(self.weights(pool, epoch), np.float64)
        n = len(weights)
        k = min(k, n)
        tiebreak = self.rng.random(n)
        forced = np.zeros(n, bool)
        if self.cfg.sampling == "proportional":
            key = np.log(np.clip(weights, 1e-6, None)) / self.cfg.temperature + self.rng.gumbel(size=n)
        else:
            stale = (pool.last_epoch_seen == NEVER) | (epoch - pool.last_epoch_seen >= self.cfg.max_staleness)
            span = float(np.ptp(weights)) + 1.0 if n else 1.0
            key = weights + 1e-9 * span * tiebreak
            forced = stale if self.cfg.max_forced_share >= 1.0 else oldest_stale(
                pool.last_epoch_seen, stale, tiebreak, k, self.cfg.max_forced_share, groups)
            key = key + np.where(forced, 2.0 * span + np.abs(weights).max(), 0.0)
        ids = top_k(key, k) if groups is None else grouped_top_k(key, k, groups)
        ids = np.sort(ids).astype(np.int64)
        return Selection(ids, np.ones(len(ids), np.float32), full=False, weights=weights.astype(np.float32),
                         forced=int(forced[ids].sum()))


def oldest_stale(last_seen: np.ndarray, stale: np.ndarray, tiebreak: np.ndarray, k: int, share: float,
                 groups=None) -> np.ndarray:
    """Mask of the stale samples forced in under selection.max_forced_share: the ceil(share * k) longest
    unseen (never seen first, ties at random), or with groups ceil(share * quota) per group, so the
    forced picks never overrun a group's quota."""
    candidates = np.flatnonzero(stale)
    # oldest first: NEVER (-1) sorts before every epoch
    oldest = candidates[np.lexsort((tiebreak[candidates], last_seen[candidates]))]
    mask = np.zeros(len(last_seen), bool)
    if groups is None:
        mask[oldest[: math.ceil(share * k)]] = True
        return mask
    order, bounds = group_rows(groups) if isinstance(groups, np.ndarray) else groups
    group_of = np.empty(len(last_seen), np.int64)
    group_of[order] = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    cap = np.ceil(share * group_quotas(np.diff(bounds), k)).astype(np.int64)
    g = group_of[oldest]
    by_group = np.argsort(g, kind="stable")  # oldest first within each group
    rank = np.empty(len(oldest), np.int64)
    rank[by_group] = np.arange(len(oldest)) - np.searchsorted(g[by_group], g[by_group])
    mask[oldest[rank < cap[g]]] = True
    return mask


def top_k(key: np.ndarray, k: int) -> np.ndarray:
    return np.argpartition(-key, k - 1)[:k] if k < len(key) else np.arange(len(key))


def group_rows(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by group, and each group's [start, end) in that order: computed once per pool
    (labels do not change), so a grouped top-k costs no sort per epoch."""
    order = np.argsort(groups, kind="stable")
    _, counts = np.unique(groups[order], return_counts=True)
    return order, np.r_[0, np.cumsum(counts)]


def grouped_top_k(key: np.ndarray, k: int, groups: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Top-k within each group, the group quotas proportional to group size (largest remainder).
    `groups`: a label per row, or `group_rows(labels)`."""
    order, bounds = group_rows(groups) if isinstance(groups, np.ndarray) else groups
    quota = group_quotas(np.diff(bounds), k)
    chosen = [order[bounds[g] + top_k(key[order[bounds[g]:bounds[g + 1]]], int(q))]
              for g, q in enumerate(quota) if q > 0]
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


def group_quotas(counts: np.ndarray, k: int) -> np.ndarray:
    """Each group's share of k, proportional to its size (largest remainder): exact, summing to k."""
    exact = k * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[: k - quota.sum()]] += 1
    return quota
