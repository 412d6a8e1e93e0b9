"""The Data Agent (arXiv 2603.07433): a PPO policy, learned during training, sets each sample's weight.

Every training batch, the sample's pooled features are the state; the policy's Beta action
a in (0, 1) becomes its selection weight, and the reward is a * score (the composite
difficulty/uncertainty reward). At each epoch's end the agent takes a PPO step. Selection is
top-k (or proportional) by the latest action, so the policy co-evolves with the model.
The policy itself lives in the `DataAgent` Ray actor (raydata_agent/agent/); this selector is the
pool-side glue: it forwards signals, applies the reward, and times the agent.
"""
from __future__ import annotations

import time

import numpy as np

from raydata_agent.selectors.base import Selector


def training_reward(actions: np.ndarray, score: np.ndarray, ratio: float, baseline: str) -> np.ndarray:
    """The reward PPO learns from.

    "none": the paper's r = a * score. With score >= 0, a = 1 is best for *every* sample, so the
    policy raises all weights and separates samples only slowly.
    "budget" (default): r = a * (score - q), q the batch's (1 - ratio) score quantile, so raising a
    pays off only for samples that belong in the kept fraction.
    """
    if baseline == "budget":
        return actions * (score - np.quantile(score, 1.0 - ratio))
    return actions * score


class DataAgentSelector(Selector):
    name = "data_agent"
    needs_features = True

    def __init__(self, cfg, num_samples, total_epochs, seed=0, agent=None, agent_cfg=None):
        super().__init__(cfg, num_samples, total_epochs, seed)
        if agent is None:
            raise ValueError("the data_agent selector needs a DataAgent actor handle (see agent.start_agent)")
        self.agent = agent
        self.reward_baseline = getattr(agent_cfg, "reward_baseline", "budget")
        self.wait_s = 0.0  # time the score store waited on the agent

    def weights(self, pool, epoch):
        import ray  # only the agent needs a cluster: configs and tests of other parts do not

        start = time.perf_counter()
        weights = ray.get(self.agent.weights.remote())
        self.wait_s += time.perf_counter() - start
        return weights

    def choose(self, pool, epoch, k):
        return self.take_by_weight(pool, epoch, k)

    def observe(self, epoch, ids, features, score):
        import ray

        start = time.perf_counter()
        score = np.asarray(score, np.float32)
        actions = ray.get(self.agent.act.remote(ids, features))
        reward = actions * score  # eq. 6: r = a * (w D + (1 - w) U), what the pool records
        train_reward = training_reward(actions, score, self.cfg.ratio, self.reward_baseline)
        self.agent.observe.remote(ids, features, actions, train_reward)  # ordered before the next update()
        self.wait_s += time.perf_counter() - start
        return reward

    def update(self, pool, epoch):
        import ray

        start = time.perf_counter()
        metrics = ray.get(self.agent.update.remote(final=epoch == self.total_epochs - 1))
        self.wait_s += time.perf_counter() - start
        metrics["agent_wait_s"] = self.wait_s
        self.wait_s = 0.0
        return metrics

    def state_dict(self):
        import ray

        return {**super().state_dict(), "agent": ray.get(self.agent.state.remote())}

    def load_state_dict(self, state):
        import ray

        super().load_state_dict(state)
        ray.get(self.agent.load_state.remote(state["agent"]))
