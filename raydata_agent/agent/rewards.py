"""What an action earns: the reward target, the payoff and its parameter, in one place.

The worker computes each panel transition's payoff parameter (no other target leaves it); the
learner prices any action with it (`payoff_reward`), which the self-critical baseline needs.
"""
from __future__ import annotations

import numpy as np

from raydata_agent.config import AgentConfig
from raydata_agent.signals import label_agreement

QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)  # the pool's target quantiles shipped with each plan


def reward_target(score: np.ndarray, loss: np.ndarray, context: np.ndarray, cfg: AgentConfig,
                  fit: np.ndarray | None = None) -> np.ndarray:
    """What a high action should pay for. "score": the paper's composite score. "agreement": the
    score times the label agreement after this visit, so a hard sample pays only while its label
    stays believable: flipped labels (confidently contradicted, visit after visit) pay little.
    `fit`: the task's p(given label) (boxes, masks); None: exp(-loss)."""
    score = np.asarray(score, np.float32)
    if cfg.reward == "score":
        return score
    return score * label_agreement(context[:, 0], loss, context[:, 2] > 0, cfg.agreement_decay, fit)


def payoff_param(target: np.ndarray, payoff: str, baseline: float | None = None,
                 quantiles: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """Each sample's payoff parameter p, from its reward target and the pool's latest targets (None:
    epoch 0, where this batch stands in for the pool): the reward of any action a is then
    `payoff_reward(a, p)`, so the learner can price actions the worker did not take. `rows` (a mask):
    p of those samples only (the panel's: no other p leaves the worker), against the whole batch.

    - rank: p = the target's percentile in the pool; r = -(a - p)^2. The best action is the sample's
      rank, so selection by action keeps the pool's best-ranked fraction, and every action gets a
      gradient: the policy cannot settle at a = 0, where a linear payoff gives none.
    - margin: p = target - q, q the pool's (1 - ratio) target quantile; r = a p. Pays for samples
      above the kept fraction's cut; its best action is 0 or 1. Measured to collapse to a = 0 on
      digits once the targets trained on fall below a cut set by older targets (RESULTS.md).
    - linear: p = target; r = a p, the paper's eq. 6.
    """
    target = np.asarray(target, np.float32)
    chosen = target if rows is None else target[rows]
    if payoff == "linear":
        return chosen
    if payoff == "margin":
        return chosen - (baseline if baseline is not None else float(np.quantile(target, 0.5)))
    if quantiles is None:
        quantiles = batch_quantiles(target)
    return percentile(chosen, np.asarray(quantiles, np.float64))


def batch_quantiles(values: np.ndarray) -> np.ndarray:
    """`np.quantile(values, QUANTILE_LEVELS)` (its default linear method, the same numbers) in a
    fifteenth of the time: one sort and one interpolation. It runs on every epoch-0 batch."""
    ordered = np.sort(values)
    return np.interp(QUANTILE_LEVELS * (len(ordered) - 1), np.arange(len(ordered)), ordered)


def percentile(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Where each value lies among evenly spaced quantiles, in [0, 1]: interpolated between them, and
    the middle of the run where quantiles tie (many equal targets share one rank, not an end of it)."""
    last = len(quantiles) - 1
    lo, hi = np.searchsorted(quantiles, values, "left"), np.searchsorted(quantiles, values, "right")
    j = np.clip(lo, 1, last)
    gap = np.maximum(quantiles[j] - quantiles[j - 1], 1e-12)
    between = j - 1 + np.clip((values - quantiles[j - 1]) / gap, 0.0, 1.0)
    return (np.where(hi > lo, (lo + hi - 1) / 2.0, between) / last).astype(np.float32)


def payoff_reward(actions, param, payoff: str):
    """r(a) for the payoff's parameter p (numpy or torch)."""
    return -(actions - param) ** 2 if payoff == "rank" else actions * param


def training_reward(actions: np.ndarray, target: np.ndarray, payoff: str, baseline: float | None = None,
                    quantiles: np.ndarray | None = None) -> np.ndarray:
    """What each action earns (agent.payoff); see `payoff_param`."""
    return payoff_reward(actions, payoff_param(target, payoff, baseline, quantiles), payoff)
