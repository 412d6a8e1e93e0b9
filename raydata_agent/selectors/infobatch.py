"""InfoBatch (Qin et al., ICLR 2024): prune well-learned samples at random, rescale the rest.

Samples whose last loss is below the pool mean are pruned with probability r; the kept ones get
loss weight 1/(1-r) so the expected gradient is unchanged. Here r is derived from the kept
fraction `selection.ratio`: r = (1 - ratio) / (share below the mean), so every selector is
compared at the same budget, but r is capped at `selection.infobatch_max_prune` (default 0.7,
the largest ratio in InfoBatch's ablation): past it the 1/(1-r) rescale blows up single samples'
gradients (r = 0.99 means x100) and training diverges. When the cap binds, InfoBatch keeps more
than the budget; the logged `selected_fraction` says so.
"""
import numpy as np

from raydata_agent.selectors.base import Selection, Selector


class InfoBatchSelector(Selector):
    name = "infobatch"

    def choose(self, pool, epoch, k):
        seen = pool.seen
        mean = pool.loss[seen].mean() if seen.any() else 0.0
        below = seen & (pool.loss < mean)  # unseen samples are never pruned
        share_below = below.mean()
        r = min(self.cfg.infobatch_max_prune, (1.0 - self.cfg.ratio) / share_below) if share_below > 0 else 0.0
        pruned = below & (self.rng.random(len(pool)) < r)
        ids = np.flatnonzero(~pruned).astype(np.int64)
        weights = np.ones(len(ids), np.float32)
        if self.cfg.loss_weighting in ("auto", "infobatch"):
            weights[below[ids]] = 1.0 / (1.0 - r)
        self.last_prune_prob = r
        return Selection(ids, weights, full=False)

    def update(self, pool, epoch):
        return {"infobatch_prune_prob": float(getattr(self, "last_prune_prob", 0.0))}
