"""LEAD (PVLDB 19(3)): an EXP3 bandit over difficulty clusters, ranked inside by IDU.

Inference-free like every selector here: the IDU utility comes from the training pass
(`signals.idu`, the pool's `idu` column). Each selection epoch:
1. cluster the seen samples by IDU with 1-D k-means; arms are ordered easy -> hard, so an arm keeps
   its meaning while the clusters move;
2. draw arms without replacement from p_k = (1-g) w_k / sum w + g/K and fill the budget with each
   drawn arm's top-IDU samples (never-trained samples go first, as everywhere);
3. after the epoch, reward each drawn arm with the mean IDU drop of the samples it contributed,
   min-max normalised to [-1, 1] over the drops seen so far: w_k <- w_k exp(g/K * r / p_k).
"""
from __future__ import annotations

import numpy as np

from raydata_agent.selectors.base import Selection, Selector


def kmeans_1d(values: np.ndarray, k: int, iters: int = 25) -> np.ndarray:
    """Cluster index of every value, clusters ordered by centroid (0 = lowest).

    In 1-D a cluster is a contiguous range of the sorted values, so after one sort and one prefix
    sum each Lloyd step costs O(k log N): the cluster bounds are binary searches of the centroid
    midpoints, and each cluster's sum is a difference of prefix sums. Only the final assignment
    touches every value again (O(N log k)): 10M rows in about a second, not five.
    Quantile initialisation; tied quantiles merge.

    Kept over scikit-learn's KMeans, which it matches at convergence (tests/selectors/test_selectors.py), for
    speed: on 1 CPU, 7 clusters, 25 iterations, ours 8.9 ms / 133 ms at 50k / 1M values, sklearn
    82 ms / 2.5 s from the same initialisation (60 ms / 1.1 s with k-means++, n_init=1).
    """
    values = np.asarray(values, np.float64)
    ordered = np.sort(values)
    prefix = np.concatenate([[0.0], np.cumsum(ordered)])
    centroids = np.unique(np.quantile(ordered, (np.arange(k) + 0.5) / k))
    for _ in range(iters):
        # Cluster i holds the values in (mid[i-1], mid[i]]: what searchsorted(mids, v) assigns.
        bounds = np.concatenate([[0], np.searchsorted(ordered, (centroids[1:] + centroids[:-1]) / 2, side="right"),
                                 [len(ordered)]])
        counts = np.diff(bounds)
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids):
            break
        centroids = np.sort(updated)
    return np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)


class LEADSelector(Selector):
    name = "lead"

    def __init__(self, cfg, num_samples, total_epochs, seed=0):
        super().__init__(cfg, num_samples, total_epochs, seed)
        self.arms = cfg.lead.clusters
        self.gamma = cfg.lead.gamma
        self.log_w = np.zeros(self.arms)  # EXP3 weights, in log space so they never overflow
        self.drop_range = [np.inf, -np.inf]  # min and max mean IDU drop seen so far
        self.drawn: list[tuple[int, np.ndarray, np.ndarray, float]] = []  # arm, ids, IDU before, p

    def probabilities(self) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        return (1.0 - self.gamma) * w / w.sum() + self.gamma / self.arms

    def choose(self, pool, epoch, k):
        seen_mask = pool.seen
        unseen, seen = np.flatnonzero(~seen_mask)[:k], np.flatnonzero(seen_mask)
        taken, left = [unseen], k - len(unseen)
        self.drawn = []
        if left and len(seen):
            assign = kmeans_1d(pool.idu[seen], self.arms)
            probs = self.probabilities()
            present = np.unique(assign)
            # Gumbel top-k: an order of the non-empty arms drawn without replacement from p.
            order = present[np.argsort(-(np.log(probs[present]) + self.rng.gumbel(size=len(present))))]
            for arm in order:
                if left == 0:
                    break
                members = seen[assign == arm]
                if left < len(members):  # the arm's top-IDU samples: a partition, not a full sort
                    top = members[np.argpartition(-pool.idu[members], left - 1)[:left]]
                else:
                    top = members
                taken.append(top)
                left -= len(top)
                self.drawn.append((int(arm), top, pool.idu[top].copy(), float(probs[arm])))
        ids = np.sort(np.concatenate(taken)).astype(np.int64)
        return Selection(ids, np.ones(len(ids), np.float32), full=False)

    def update(self, pool, epoch):
        """Reward the arms drawn for this epoch with the IDU drop of their samples, then EXP3."""
        metrics = {}
        if self.drawn:
            drops = np.array([float(np.mean(before - pool.idu[ids])) for _, ids, before, _ in self.drawn])
            self.drop_range = [min(self.drop_range[0], drops.min()), max(self.drop_range[1], drops.max())]
            lo, hi = self.drop_range
            rewards = 2.0 * (drops - lo) / (hi - lo) - 1.0 if hi > lo else np.zeros_like(drops)
            for (arm, _, _, p), r in zip(self.drawn, rewards):
                self.log_w[arm] += self.gamma / self.arms * r / p
            self.drawn = []
            metrics.update(lead_idu_drop=float(drops.mean()), lead_arms_drawn=len(drops))
        return {**{f"lead_p{arm}": float(p) for arm, p in enumerate(self.probabilities())}, **metrics}

    def state_dict(self):
        return {**super().state_dict(), "log_w": self.log_w.copy(), "drop_range": list(self.drop_range),
                "drawn": self.drawn}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.log_w = np.asarray(state["log_w"], np.float64)
        self.drop_range = list(state["drop_range"])
        self.drawn = state["drawn"]
