"""The policy's interface, shared by the learner, the acting copies and the RLModule: spaces, ids, config.

It sits below all three so none of them imports another for a constant, and it imports no RLlib:
a training worker reads it before the RLlib import (`policy.preload`) has finished.
"""
from __future__ import annotations

import numpy as np

from raydata_agent.config import AgentConfig

MODULE_ID = "default_policy"  # ray.rllib.core.DEFAULT_MODULE_ID
ACTION_EPS = 1e-6  # actions are kept inside (0, 1): log-prob at exactly 0 or 1 is -inf


def module_config(cfg: AgentConfig) -> dict:
    return {"hidden": cfg.hidden, "max_concentration": cfg.max_concentration}


def observation_space(obs_size: int):
    import gymnasium as gym

    return gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)  # 1-D: the default catalog's kind


def action_space():
    """One selection weight per sample, in [0, 1]."""
    import gymnasium as gym

    return gym.spaces.Box(0.0, 1.0, (1,), np.float32)
