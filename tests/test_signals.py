import math

import numpy as np
import pytest
import torch

from raydata_agent.signals import (REWARD_VARIANTS, adaptive_weight, batch_signals, difficulty, entropy, idu,
                                   predicted_loss_change, uncertainty)


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


def test_idu_smooths_loss_and_adds_the_predicted_change():
    previous = np.array([2.0, 1.0], np.float32)
    loss = np.array([1.0, 3.0], np.float32)
    change = np.array([-0.5, 0.0], np.float32)
    # IDU_t = (1-b) L_t + dL'_t + b IDU_{t-1}, b = 0.1, by hand:
    np.testing.assert_allclose(idu(previous, loss, change, 0.1), [0.9 - 0.5 + 0.2, 2.7 + 0.1], rtol=1e-6)


def test_predicted_loss_change_is_first_order_and_never_below_zero_loss():
    g = torch.tensor([1.0, 2.0, 10.0])
    loss = torch.tensor([1.0, 1.0, 1.0])
    change = predicted_loss_change(g, loss, loss_weights=torch.ones(3), lr=0.1, world_size=2)  # B * world = 6
    torch.testing.assert_close(change, torch.tensor([-0.1 / 6, -0.4 / 6, -1.0]))  # last: -10/6 capped at -loss


def test_history_variant_is_left_to_the_store():
    sig = batch_signals(torch.tensor([1.0, 2.0]), None, "idu")
    assert sig.score is None and sig.reward is None and sig.difficulty.max() == pytest.approx(1.0)


def test_classification_grad_norm_is_the_exact_per_sample_head_gradient():
    from raydata_agent.config import Config
    from raydata_agent.tasks.classification import Classifier, ClassificationTask

    torch.manual_seed(0)
    model = Classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.ReLU()), 6, 3)
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 1])
    out = ClassificationTask(Config()).forward(model, (x, y), "cpu")
    for i in range(4):
        model.zero_grad()
        out_i = ClassificationTask(Config()).forward(model, (x[i:i + 1], y[i:i + 1]), "cpu")
        out_i.loss.sum().backward()
        expected = torch.sqrt(model.head.weight.grad.pow(2).sum() + model.head.bias.grad.pow(2).sum())
        assert out.grad_norm[i].item() == pytest.approx(expected.item(), rel=1e-5)
