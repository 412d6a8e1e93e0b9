"""Cyclic: a seeded round-robin over the pool, a fresh random order every pass.

The baseline that a top-k selector becomes when forced revisits fill its budget (issue 30): every
sample once per pass, no signals used. It spends exactly the budget, after the same warm-up and
annealing as every selector, so it is compared at equal cost.
"""
import numpy as np

from raydata_agent.selectors.base import Selection, Selector


class CyclicSelector(Selector):
    name = "cyclic"
    needs_signals = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = self.rng.permutation(self.num_samples).astype(np.int64)
        self.position = 0  # next index into self.order
        self.passes = 0  # passes started after the first (the pass count, for state and tests)

    def choose(self, pool, epoch, k):
        ids = self.order[self.position:self.position + k]
        self.position += len(ids)
        if len(ids) < k:  # the pass ends inside this epoch: the next one starts with the others
            self._new_pass(last=ids)
            rest = self.order[: k - len(ids)]
            self.position = len(rest)
            ids = np.concatenate([ids, rest])
        return Selection(np.sort(ids), np.ones(len(ids), np.float32), full=False)

    def _new_pass(self, last: np.ndarray) -> None:
        """A fresh order; the samples the old pass just gave this epoch go to its end, so no epoch
        takes a sample twice and each pass still holds every sample once."""
        order = self.rng.permutation(self.num_samples).astype(np.int64)
        at_end = np.isin(order, last)
        self.order = np.concatenate([order[~at_end], order[at_end]])
        self.passes += 1

    def state_dict(self):
        return {**super().state_dict(), "order": self.order.tolist(), "position": self.position,
                "passes": self.passes}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.order = np.asarray(state["order"], np.int64)
        self.position = int(state["position"])
        self.passes = int(state["passes"])
