"""The policy as a worker acts with it: building the RLModule, sampling actions, the uniform start.

RLlib is imported lazily (and early, in a background thread: `preload`), so a training worker's
first batches never wait for it.
"""
from __future__ import annotations

import importlib
import threading

import torch

from raydata_agent.agent.spaces import ACTION_EPS, action_space, module_config, observation_space
from raydata_agent.config import AgentConfig

UNIFORM_LOGIT = -30.0  # softplus / sigmoid of it vanish in float32: the Beta's alpha = beta = 1


def build_module(obs_size: int, cfg: AgentConfig, inference_only: bool):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from raydata_agent.agent.rl_module import DataAgentModule

    return RLModuleSpec(module_class=DataAgentModule, observation_space=observation_space(obs_size),
                        action_space=action_space(), inference_only=inference_only,
                        model_config=module_config(cfg)).build()


@torch.no_grad()
def policy_act(module, obs: torch.Tensor):
    """Sample Beta actions from a module (learner's or inference copy): actions, logp, dist inputs.

    It calls the module's `_forward_exploration` (RLlib's hook: no_grad + `_forward`), not the public
    `forward_exploration`, whose wrapper walks every submodule twice per call to switch eval/train
    mode: a fifth of the policy's per-batch overhead at 256 rows, and a no-op for this module (no
    dropout, no batch norm)."""
    from ray.rllib.core.columns import Columns

    logits = module._forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    dist = module.get_exploration_action_dist_cls().from_logits(logits)
    actions = dist.sample()
    return actions.squeeze(-1), dist.logp(actions), logits


def uniform_act(n: int, cfg: AgentConfig, device: torch.device):
    """Actions before the learner's first weights arrive: Beta(1, 1), the uniform policy, with the
    distribution inputs that give it under the module's action distribution (BoundedBeta: mean logit 0,
    concentration logit -30; TorchBeta: both -30) and its log-prob, 0. It is a true behaviour policy,
    so PPO's importance ratio and the self-critical baseline stay exact for these transitions."""
    actions = torch.rand(n, device=device).clamp(ACTION_EPS, 1.0 - ACTION_EPS)
    logits = torch.full((n, 2), UNIFORM_LOGIT, device=device)
    if cfg.max_concentration:
        logits[:, 0] = 0.0
    return actions, torch.zeros(n, device=device), logits


def preload() -> threading.Thread:
    """Import RLlib (the acting copy's RLModule) in a background thread. A training worker calls this
    as its session arrives, so the ~1 s import overlaps the worker's own set-up (data, model) instead
    of stalling its first batch; the first `build_module` then finds it imported (or waits for it)."""
    thread = threading.Thread(target=importlib.import_module, args=("raydata_agent.agent.rl_module",),
                              name="preload-rllib", daemon=True)
    thread.start()
    return thread
