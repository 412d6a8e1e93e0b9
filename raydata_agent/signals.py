"""Per-sample signals and rewards, computed from the training forward pass (Data Agent §3).

All functions take one training batch: normalisation is over the batch B, as in the paper,
so signals stay comparable while the loss scale shrinks during training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # torch loads in the functions that compute on tensors: the score store uses only numpy ones
    import torch

EPS = 1e-8


def minmax(values: torch.Tensor | np.ndarray):
    """Min-max normalisation over the batch to [0, 1] (difficulty, eq. 1, and the idu variant)."""
    lo, hi = values.min(), values.max()
    return (values - lo) / (hi - lo + EPS)


def difficulty(loss: torch.Tensor, clip_quantile: float = 0.95) -> torch.Tensor:
    """Eq. 1: loss clipped at the batch's q-quantile, then min-max normalised to [0, 1].

    Clipping first keeps one exploding loss from squashing every other sample towards 0.
    """
    import torch

    loss = loss.detach().float()
    return minmax(torch.minimum(loss, torch.quantile(loss, clip_quantile)))


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Predictive entropy in nats, per sample."""
    import torch

    probs = probs.detach().float()
    return -(probs * torch.log(probs + EPS)).sum(-1)


def uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """Eq. 3: predictive entropy over C classes divided by log C, so it lies in [0, 1]."""
    return entropy_uncertainty(entropy(probs), probs.shape[-1])


def entropy_uncertainty(ent: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Eq. 3 from an entropy already computed (batch_signals needs both: one entropy per batch)."""
    import torch

    return ent / math.log(num_classes) if num_classes > 1 else torch.zeros_like(ent)


def adaptive_weight(diff: torch.Tensor, unc: torch.Tensor) -> float:
    """Eq. 5: w = Var(D) / (Var(D) + Var(U)), tuning-free: the signal that separates samples more wins."""
    import torch

    var_d = diff.var(unbiased=False) if diff.numel() > 1 else diff.new_zeros(())
    var_u = unc.var(unbiased=False) if unc.numel() > 1 else unc.new_zeros(())
    return float(torch.clamp(var_d / (var_d + var_u + EPS), 0.0, 1.0))


RewardFn = Callable[["torch.Tensor", "torch.Tensor", float], "torch.Tensor"]

# A reward variant maps (D, U, w) to a per-sample score; the composite reward is action * score (eq. 6).
REWARD_VARIANTS: dict[str, RewardFn] = {}


def register_reward(name: str):
    def wrap(fn: RewardFn) -> RewardFn:
        REWARD_VARIANTS[name] = fn
        return fn

    return wrap


@register_reward("difficulty")
def _difficulty_only(diff, unc, w):
    return diff


@register_reward("uncertainty")
def _uncertainty_only(diff, unc, w):
    return unc


@register_reward("fixed_half")
def _fixed_half(diff, unc, w):
    return 0.5 * diff + 0.5 * unc


@register_reward("adaptive")
def _adaptive(diff, unc, w):
    return w * diff + (1.0 - w) * unc


# Variants that need a sample's history: the score store, which owns the pool, computes their score.
HISTORY_VARIANTS = ("idu",)


def predicted_loss_change(grad_norm: torch.Tensor, loss: torch.Tensor, loss_weights: torch.Tensor,
                          lr: float, world_size: int = 1) -> torch.Tensor:
    """LEAD's dL' (eqs. 9-10): the first-order change of a sample's loss from this step's update.

    The sample's own share of an SGD step on the batch mean (averaged over `world_size` DDP
    workers) is lr * w_i / (B * world) * g_i, so its loss moves by about -lr * w_i / (B * world) *
    |g_i|^2. It never predicts a loss below zero.
    """
    import torch

    share = lr / (loss.numel() * world_size)
    change = -share * loss_weights.float() * grad_norm.detach().float() ** 2
    return torch.maximum(change, -loss.detach().float())


def idu(previous: np.ndarray, loss: np.ndarray, predicted_change: np.ndarray, smoothing: float) -> np.ndarray:
    """LEAD's instance-level dynamic utility: IDU_t = (1-b) L_t + dL'_t + b IDU_{t-1}.

    The smoothing b is applied (the reference code never does); `previous` is the sample's IDU
    from the epoch it was last trained, or its loss when it has none yet.
    """
    return (1.0 - smoothing) * loss + predicted_change + smoothing * previous


def p_given_label(loss: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """The probability the model gives a sample's own annotation, in [0, 1]: the task's `fit` where it
    computes one (detection, segmentation: `TaskOutput.fit`), else exp(-loss), which is exactly
    p(given label) for cross-entropy. A detection image's loss (box + cls + dfl, several units) or a
    mean pixel CE does not carry over: exp(-loss) is ~0 for every detection image, and exp(-mean CE)
    is a geometric, not the arithmetic, mean of the pixels' probabilities. The one place that chooses."""
    if fit is not None:
        return np.asarray(fit, np.float32)
    return np.exp(-np.asarray(loss, np.float32))


def label_agreement(previous: np.ndarray, loss: np.ndarray, seen: np.ndarray, decay: float,
                    fit: np.ndarray | None = None) -> np.ndarray:
    """EMA of the given label's probability over a sample's visits: `a <- d a + (1 - d) p_y`,
    p_y = `p_given_label(loss, fit)`.

    A flipped label stays improbable visit after visit, while a hard clean sample climbs: this is the
    label-noise signal the agent sees and is rewarded by, with no external model.
    """
    p_label = p_given_label(loss, fit)
    return np.where(seen, decay * np.asarray(previous, np.float32) + (1.0 - decay) * p_label, p_label)


@dataclass
class BatchSignals:
    loss: torch.Tensor
    entropy: torch.Tensor  # nats
    uncertainty: torch.Tensor  # entropy / log C, in [0, 1]
    difficulty: torch.Tensor
    score: torch.Tensor | None  # the reward variant's score before the action; None: a HISTORY_VARIANT
    reward: torch.Tensor | None  # action * score (eq. 6)
    weight: float  # adaptive w of this batch


def batch_signals(loss: torch.Tensor, probs: torch.Tensor | None, variant: str = "adaptive",
                  clip_quantile: float = 0.95, actions: torch.Tensor | None = None,
                  uncertainty: torch.Tensor | None = None) -> BatchSignals:
    """All signals of one batch.

    Uncertainty comes from `probs` [B, C], or ready-made from the task (`uncertainty` [B] in [0, 1],
    e.g. mean pixel entropy); with neither, the task has no uncertainty term (detection).
    A history variant (`idu`) has no batch-local score: the score store computes it.
    """
    import torch

    loss = loss.detach().float()
    diff = difficulty(loss, clip_quantile)
    if uncertainty is not None:
        unc = uncertainty.detach().float()
        ent = unc
    elif probs is not None:
        ent = entropy(probs)
        unc = entropy_uncertainty(ent, probs.shape[-1])
    else:
        unc = ent = torch.zeros_like(diff)
    w = adaptive_weight(diff, unc)
    if variant in HISTORY_VARIANTS:
        return BatchSignals(loss=loss, entropy=ent, uncertainty=unc, difficulty=diff, score=None, reward=None, weight=w)
    score = REWARD_VARIANTS[variant](diff, unc, w)
    act = torch.ones_like(score) if actions is None else actions.detach().float().to(score.device)
    return BatchSignals(loss=loss, entropy=ent, uncertainty=unc, difficulty=diff, score=score, reward=act * score, weight=w)

