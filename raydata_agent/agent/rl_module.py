"""The Data Agent's policy as an RLlib RLModule (new API stack): Beta actor and value critic.

RLlib 2.60 ships no Beta distribution for the new stack (Categorical, DiagGaussian,
SquashedGaussian, Deterministic, MultiCategorical, MultiDistribution), and a selection weight
lives in (0, 1), so `TorchBeta` (and `BoundedBeta`, its bounded-concentration variant) is the one
extension we add.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDistribution
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from raydata_agent.agent.spaces import ACTION_EPS as EPS


class TorchBeta(TorchDistribution):
    """Beta(alpha, beta) with alpha, beta = softplus(logits) + 1 (unimodal, docs/design.md#action).

    logp/entropy/kl are summed over the action dimension, so they are [B]: one value per sample,
    which keeps PPO's ratio * advantage per sample (no [B, 1] x [B] broadcast to [B, B]).
    """

    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor):
        self.alpha, self.beta = alpha, beta
        super().__init__(alpha=alpha, beta=beta)

    def _get_torch_distribution(self, alpha, beta):
        return torch.distributions.Beta(alpha, beta, validate_args=False)

    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "TorchBeta":
        a_raw, b_raw = logits.chunk(2, dim=-1)
        return cls(alpha=F.softplus(a_raw) + 1.0, beta=F.softplus(b_raw) + 1.0)

    def logp(self, value, **kwargs):
        return self._dist.log_prob(value.clamp(EPS, 1.0 - EPS)).sum(-1)

    def entropy(self):
        return self._dist.entropy().sum(-1)

    def kl(self, other: "TorchBeta"):
        return torch.distributions.kl.kl_divergence(self._dist, other._dist).sum(-1)

    def sample(self, *, sample_shape=None):
        return super().sample(sample_shape=sample_shape).clamp(EPS, 1.0 - EPS)

    @property
    def mean(self) -> torch.Tensor:
        return self.alpha / (self.alpha + self.beta)

    @staticmethod
    def required_input_dim(space, **kwargs) -> int:
        return int(np.prod(space.shape)) * 2

    def to_deterministic(self):
        from ray.rllib.core.distribution.torch.torch_distribution import TorchDeterministic

        return TorchDeterministic(loc=self.mean)


class BoundedBeta(TorchBeta):
    """Beta from a mean m = sigmoid(logit 0) and a concentration k = (K - 2) sigmoid(logit 1):
    alpha = 1 + m k, beta = 1 + (1 - m) k, so alpha + beta <= K.

    Why: fitted hard (the warm start), the unbounded Beta became so sharp that PPO's clip froze it
    (measured: entropy -4.9, no KL for epochs). Here the spread never falls below K's (~0.08 at
    K = 40, a = 0.5), and the mean has its own logit, so it keeps its gradient at the bound.
    """

    max_concentration = 40.0

    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "BoundedBeta":
        mean_logit, concentration_logit = logits.chunk(2, dim=-1)
        mean = torch.sigmoid(mean_logit)
        k = (cls.max_concentration - 2.0) * torch.sigmoid(concentration_logit)
        return cls(alpha=1.0 + mean * k, beta=1.0 + (1.0 - mean) * k)


@functools.lru_cache(maxsize=None)
def beta_class(max_concentration: float | None) -> type[TorchBeta]:
    """The action distribution for `agent.max_concentration` (0 / None: the paper's unbounded Beta)."""
    if not max_concentration:
        return TorchBeta
    if max_concentration <= 2.0:
        raise ValueError(f"max_concentration must be > 2 (alpha, beta >= 1), got {max_concentration}")
    return type(f"BoundedBeta{max_concentration:g}", (BoundedBeta,), {"max_concentration": float(max_concentration)})


class DataAgentModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Actor Linear(d,h)-ReLU-Linear(h,h)-ReLU with alpha/beta heads; critic Linear(d,h)-ReLU-Linear(h,h)-ReLU-Linear(h,1).

    model_config: `hidden`; `max_concentration` (0 or None: `TorchBeta`, unbounded): `BoundedBeta`.

    Built with `inference_only=True` (the copy that acts in each training worker, as on an RLlib
    EnvRunner) it has no critic: `get_state(inference_only=True)` on the learner's module ships only
    the actor's weights, and the learner computes values itself.
    """

    def setup(self):
        d = int(self.observation_space.shape[0])
        h = int(self.model_config.get("hidden", 128))
        act_dim = int(np.prod(self.action_space.shape))
        self.actor = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.alpha_head = nn.Linear(h, act_dim)
        self.beta_head = nn.Linear(h, act_dim)
        for head in (self.alpha_head, self.beta_head):
            nn.init.orthogonal_(head.weight, gain=float(self.model_config.get("head_gain", 0.01)))
            nn.init.zeros_(head.bias)  # alpha == beta at start: the first policy has mean 0.5
        if not self.inference_only:
            self.critic = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1))

    def get_non_inference_attributes(self):
        return ["critic"]

    def _forward(self, batch, **kwargs):
        z = self.actor(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: torch.cat([self.alpha_head(z), self.beta_head(z)], dim=-1)}

    def compute_values(self, batch, embeddings=None):
        return self.critic(batch[Columns.OBS]).squeeze(-1)  # [B]

    def get_inference_action_dist_cls(self):
        return beta_class(self.model_config.get("max_concentration"))

    def get_exploration_action_dist_cls(self):
        return beta_class(self.model_config.get("max_concentration"))

    def get_train_action_dist_cls(self):
        return beta_class(self.model_config.get("max_concentration"))
