import math

import pytest
import torch

from raydata_agent.signals import (REWARD_VARIANTS, adaptive_weight, batch_signals, difficulty, entropy,
                                   uncertainty)


def test_difficulty_clips_at_quantile_then_min_max_normalises():
    loss = torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0])
    q = torch.quantile(loss, 0.95).item()  # 80.6: linear interpolation between 3 and 100
    assert q == pytest.approx(80.6)
    d = difficulty(loss, 0.95)
    expected = torch.tensor([0.0, 1.0, 2.0, 3.0, q]) / (q + 1e-8)
    torch.testing.assert_close(d, expected)
    assert d.min() == 0 and d.max() == pytest.approx(1.0)


def test_difficulty_clip_limits_an_outlier():
    loss = torch.tensor([1.0, 2.0, 3.0, 1000.0])
    unclipped = (loss - 1) / 999
    assert difficulty(loss, 0.5)[1] > unclipped[1] * 10  # the outlier no longer squashes the rest


def test_uncertainty_is_normalised_entropy():
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    u = uncertainty(probs)
    torch.testing.assert_close(u, torch.tensor([1.0, 0.0, 0.5]), atol=1e-6, rtol=0)
    assert entropy(probs)[2] == pytest.approx(math.log(2), abs=1e-6)


def test_adaptive_weight_is_variance_share():
    d = torch.tensor([0.0, 1.0, 0.0, 1.0])  # var 0.25
    u = torch.tensor([0.5, 0.5, 0.0, 1.0])  # var 0.125
    assert adaptive_weight(d, u) == pytest.approx(0.25 / 0.375, rel=1e-6)
    assert adaptive_weight(torch.ones(4), torch.ones(4)) == 0.0  # no variance anywhere: no NaN
    assert adaptive_weight(torch.tensor([0.0, 1.0]), torch.zeros(2)) == pytest.approx(1.0)


def test_composite_reward_is_action_times_mix():
    loss = torch.tensor([0.0, 1.0, 2.0, 3.0])
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
    actions = torch.tensor([1.0, 0.5, 0.25, 0.0])
    sig = batch_signals(loss, probs, "adaptive", clip_quantile=1.0, actions=actions)
    d = loss / 3
    u = torch.tensor([1.0, 0.0, 1.0, 0.0])
    w = d.var(unbiased=False) / (d.var(unbiased=False) + u.var(unbiased=False))
    torch.testing.assert_close(sig.reward, actions * (w * d + (1 - w) * u))
    assert sig.weight == pytest.approx(w.item())


@pytest.mark.parametrize("variant,expected", [
    ("difficulty", lambda d, u, w: d), ("uncertainty", lambda d, u, w: u),
    ("fixed_half", lambda d, u, w: 0.5 * d + 0.5 * u), ("adaptive", lambda d, u, w: w * d + (1 - w) * u)])
def test_reward_variants(variant, expected):
    d, u = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.2, 0.0])
    torch.testing.assert_close(REWARD_VARIANTS[variant](d, u, 0.3), expected(d, u, 0.3))


def test_detection_style_batch_without_probs_has_zero_uncertainty():
    sig = batch_signals(torch.tensor([1.0, 2.0, 3.0]), None)
    assert sig.uncertainty.abs().sum() == 0
    assert sig.weight == pytest.approx(1.0)
