"""Random baselines: a fixed random subset (static) and a fresh one each epoch (Random*)."""
import numpy as np

from raydata_agent.selectors.base import Selection, Selector


class RandomStaticSelector(Selector):
    """One random subset, drawn once and reused every selection epoch."""

    name = "random_static"
    needs_signals = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.subset = np.sort(self.rng.choice(self.num_samples, self.budget, replace=False)).astype(np.int64)

    def choose(self, pool, epoch, k):
        return Selection(self.subset.copy(), np.ones(len(self.subset), np.float32), full=False)

    def state_dict(self):
        return {**super().state_dict(), "subset": self.subset.tolist()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.subset = np.asarray(state["subset"], np.int64)


class RandomDynamicSelector(Selector):
    """Random*: a fresh uniform subset every epoch."""

    name = "random_dynamic"
    needs_signals = False

    def choose(self, pool, epoch, k):
        ids = np.sort(self.rng.choice(len(pool), k, replace=False)).astype(np.int64)
        return Selection(ids, np.ones(k, np.float32), full=False)
