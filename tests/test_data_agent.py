"""The Data Agent's policy learns, in-process (RLlib's local learner; no Ray cluster needed)."""
import numpy as np
import pytest
import torch

from raydata_agent.agent.data_agent import DataAgent
from raydata_agent.agent.rl_module import TorchBeta
from raydata_agent.config import AgentConfig
from raydata_agent.selectors.data_agent import training_reward

N, D = 2000, 16


def synthetic():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    good = x[:, 0] > 0  # high reward is identifiable from the features
    score = np.where(good, 1.0, 0.1).astype(np.float32)
    return rng, x, good, score


def train(agent, rng, x, score, epochs, baseline="budget", batch=250):
    for epoch in range(epochs):
        for ids in np.array_split(rng.permutation(N), N // batch):
            actions = agent.act(ids, x[ids])
            assert actions.shape == (len(ids),) and ((actions > 0) & (actions < 1)).all()
            agent.observe(ids, x[ids], actions, training_reward(actions, score[ids], 0.5, baseline))
        metrics = agent.update(final=epoch == epochs - 1)
    return metrics


def test_policy_learns_to_weight_high_reward_samples():
    rng, x, good, score = synthetic()
    agent = DataAgent(vars(AgentConfig()), N, seed=0)
    agent.act(np.arange(4), x[:4])
    assert abs(agent._policy(x)[0].mean.mean() - 0.5) < 0.01, "the first policy has mean 0.5"
    metrics = train(agent, rng, x, score, epochs=8)  # 7 updates: the first has no successor states yet
    w = agent.weights()
    top_half = np.argsort(-w)[: N // 2]
    assert good[top_half].mean() > 0.8, "top-k by the learned weight keeps mostly high-reward samples"
    assert w[good].mean() - w[~good].mean() > 0.05
    for key in ("agent_policy_loss", "agent_value_loss", "agent_entropy", "agent_kl"):
        assert np.isfinite(metrics[key]), key
    assert metrics["agent_kl"] > 0


def test_state_round_trip_restores_the_same_policy():
    rng, x, good, score = synthetic()
    agent = DataAgent(vars(AgentConfig()), N, seed=0)
    train(agent, rng, x, score, epochs=2)
    other = DataAgent(vars(AgentConfig()), N, seed=1)
    other.load_state(agent.state())
    np.testing.assert_allclose(other.weights(), agent.weights(), atol=1e-6)
    assert len(other.buffer) == len(agent.buffer)


def test_unseen_samples_keep_weight_one():
    agent = DataAgent(vars(AgentConfig()), 10, seed=0)
    assert (agent.weights() == 1).all()
    ids = np.array([2, 3])
    agent.observe(ids, np.ones((2, 4), np.float32), agent.act(ids, np.ones((2, 4), np.float32)), np.ones(2))
    w = agent.weights()
    assert (w[[0, 1, 4]] == 1).all() and (w[ids] < 1).all()


def test_beta_logp_is_per_sample():
    """Trap 1: a [B, 1] log-prob times [B] advantages would broadcast to [B, B]."""
    logits = torch.randn(5, 2)
    dist = TorchBeta.from_logits(logits)
    actions = dist.sample()
    assert actions.shape == (5, 1)
    assert dist.logp(actions).shape == (5,) and dist.entropy().shape == (5,)
    assert dist.kl(TorchBeta.from_logits(torch.zeros(5, 2))).shape == (5,)
    torch.testing.assert_close(dist.mean, dist.alpha / (dist.alpha + dist.beta))


@pytest.mark.parametrize("baseline", ["budget", "none"])
def test_training_reward(baseline):
    a = np.array([0.5, 0.5, 0.5, 0.5], np.float32)
    s = np.array([0.0, 0.2, 0.8, 1.0], np.float32)
    r = training_reward(a, s, 0.5, baseline)
    if baseline == "none":
        np.testing.assert_allclose(r, a * s)
    else:
        np.testing.assert_allclose(r, a * (s - 0.5))  # median of s


def test_observe_records_the_acting_policy_outputs_with_or_without_a_matching_act():
    _, x, _, score = synthetic()
    agent = DataAgent(vars(AgentConfig()), N, seed=0)
    ids = np.arange(8)
    actions = agent.act(ids, x[ids])
    agent.observe(ids, x[ids], actions, score[ids])  # reuses act()'s policy outputs
    other = np.arange(8, 16)
    agent.observe(other, x[other], np.full(8, 0.5, np.float32), score[other])  # no act: runs the policy
    recorded = {k: np.concatenate(v) for k, v in agent.buffer.parts.items()}
    dist, logits, values = agent._policy(x[:16])
    expected_logp = dist.logp(torch.as_tensor(recorded["actions"])).numpy()
    np.testing.assert_allclose(recorded["dist_inputs"], logits.numpy(), rtol=1e-5)
    np.testing.assert_allclose(recorded["values"], values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(recorded["logp"], expected_logp, rtol=1e-5)
