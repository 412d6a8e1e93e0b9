"""Per-sample bandits on loss: UCB and epsilon-greedy, classic exploration baselines."""
import numpy as np

from raydata_agent.selectors.base import Selection, Selector


class UCBSelector(Selector):
    """UCB1 with the sample's last loss (normalised by the pool max) as its value estimate."""

    name = "ucb"

    def weights(self, pool, epoch):
        value = pool.loss / max(float(pool.loss.max()), 1e-8)
        pulls = np.maximum(pool.times_selected, 1)
        bonus = self.cfg.ucb.c * np.sqrt(2.0 * np.log(epoch + 1) / pulls)
        return (value + bonus).astype(np.float32)

    def choose(self, pool, epoch, k):
        return self.take_by_weight(pool, epoch, k)


class EpsilonGreedySelector(Selector):
    """(1 - eps) of the budget to the highest-loss samples, eps of it uniformly among the rest."""

    name = "eps_greedy"

    def choose(self, pool, epoch, k):
        n_explore = int(round(self.cfg.eps_greedy.epsilon * k))
        n_greedy = k - n_explore
        order = np.argsort(-pool.loss, kind="stable")
        greedy = order[:n_greedy]
        rest = order[n_greedy:]
        explore = self.rng.choice(rest, min(n_explore, len(rest)), replace=False)
        ids = np.sort(np.concatenate([greedy, explore])).astype(np.int64)
        return Selection(ids, np.ones(len(ids), np.float32), full=False)
