"""Greedy top-k of the composite reward, without PPO: the "no agent optimisation" ablation."""
import numpy as np

from raydata_agent.selectors.base import Selector


class GreedySelector(Selector):
    name = "greedy"

    def weights(self, pool, epoch):
        # The stored reward is the variant's score (action 1 without an agent); unseen samples first.
        return np.where(pool.seen, pool.reward, 1.0).astype(np.float32)

    def choose(self, pool, epoch, k):
        return self.take_by_weight(pool, epoch, k)
