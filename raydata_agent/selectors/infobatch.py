"""InfoBatch (Qin et al., ICLR 2024): prune well-learned samples at random, rescale the rest.

Samples whose last loss is below the pool mean are pruned at random with probability r; the kept
ones get loss weight 1/(1-r) so the expected gradient is unchanged. Here r is derived from the
kept fraction `selection.ratio` so that InfoBatch spends the same budget as every other selector:
exactly N - ceil(ratio * N) samples are pruned, drawn uniformly from the prune candidates.

r is capped at `selection.infobatch.max_prune` (default 0.7, the largest ratio in InfoBatch's
ablation): past it the 1/(1-r) rescale blows up single samples' gradients (r = 0.99 means x100)
and training diverges. When the below-mean samples are too few to meet the budget at the cap,
the candidate set widens from "below the mean" to the lowest-loss (N - k) / cap seen samples
(a loss quantile instead of the mean), so the budget is still met with r = cap. Only when even
every seen sample at r = cap is not enough (ratio < 1 - cap) does InfoBatch keep more than the
budget; the logged `selected_fraction` says so.
"""
import math

import numpy as np

from raydata_agent.selectors.base import Selection, Selector


class InfoBatchSelector(Selector):
    name = "infobatch"
    auto_loss_weighting = "infobatch"

    def choose(self, pool, epoch, k):
        n, cap = len(pool), self.cfg.infobatch.max_prune
        seen = pool.seen  # unseen samples are never pruned
        seen_ids = np.flatnonzero(seen)
        target = n - k  # samples to prune to meet the budget
        mean = pool.loss[seen].mean() if len(seen_ids) else 0.0
        candidates = seen_ids[pool.loss[seen_ids] < mean]
        if len(candidates) * cap < target:  # the mean threshold cannot meet the budget: widen it
            m = min(len(seen_ids), math.ceil(target / cap)) if cap > 0 else 0
            losses = pool.loss[seen_ids]
            candidates = seen_ids[np.argpartition(losses, m - 1)[:m]] if 0 < m < len(seen_ids) else seen_ids[:m]
        n_prune = min(target, math.floor(cap * len(candidates)))
        r = n_prune / len(candidates) if len(candidates) else 0.0
        pruned = np.zeros(n, bool)
        pruned[candidates[self._exactly(len(candidates), n_prune)]] = True
        ids = np.flatnonzero(~pruned).astype(np.int64)
        weights = np.ones(len(ids), np.float32)
        if self.loss_weighting == "infobatch":
            is_candidate = np.zeros(n, bool)
            is_candidate[candidates] = True
            weights[is_candidate[ids]] = 1.0 / (1.0 - r)
        self.last_prune_prob, self.last_prune_epoch = r, epoch
        return Selection(ids, weights, full=False)

    def _exactly(self, n: int, k: int) -> np.ndarray:
        """A uniform random k-subset of range(n) as a mask: Bernoulli(k/n) draws, then the few
        surplus or missing picks fixed at random (a full permutation of 10M rows is 10x slower)."""
        mask = self.rng.random(n) < (k / n if n else 0.0)
        diff = k - int(mask.sum())
        if diff:
            pool_ids = np.flatnonzero(~mask if diff > 0 else mask)
            mask[self.rng.choice(pool_ids, abs(diff), replace=False)] = diff > 0
        return mask

    def update(self, pool, epoch):
        pruned = getattr(self, "last_prune_epoch", None) == epoch  # full (warm-up, annealing) epochs prune nothing
        return {"infobatch_prune_prob": float(self.last_prune_prob) if pruned else 0.0}
