"""The task's fit (p(given label) for boxes and masks) in the agent's state, its reward target and the
pool's agreement; exp(-loss) where a task has none or agent.fit_signal=loss; classification unchanged."""
import numpy as np
import pytest
import torch

from raydata_agent.agent.rewards import reward_target
from raydata_agent.agent.state import build_state
from raydata_agent.config import Config, load_config
from raydata_agent.score_store import ScoreStore
from raydata_agent.session import SelectionSession
from raydata_agent.signals import label_agreement, p_given_label

P_LABEL, AGREEMENT = 3, 4  # "full" state columns after the features: difficulty, uncertainty, log1p(loss), ...


def old_state(features, loss, diff, unc, context):
    """The "full" state as it was before the fit signal: p(given label) = exp(-loss)."""
    loss = np.asarray(loss, np.float32)
    seen = context[:, 2] > 0
    p_label = np.exp(-loss)
    scalars = np.stack([diff, unc, np.log1p(loss), p_label, np.where(seen, context[:, 0], p_label),
                        context[:, 1], context[:, 2]], axis=1)
    unit = torch.nn.functional.normalize(torch.as_tensor(features).float(), dim=1, eps=1e-6)
    return torch.cat([unit, torch.from_numpy(scalars.astype(np.float32))], dim=1)


def old_agreement(previous, loss, seen, decay):
    p_label = np.exp(-np.asarray(loss, np.float32))
    return np.where(seen, decay * np.asarray(previous, np.float32) + (1.0 - decay) * p_label, p_label)


def batch(seed=0, b=6):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((b, 2)).astype(np.float32)
    loss = (rng.random(b) * 6).astype(np.float32)  # detection-sized losses: exp(-loss) near 0
    context = np.stack([rng.random(b), rng.random(b), (np.arange(b) % 2).astype(float)], 1).astype(np.float32)
    fit = rng.random(b).astype(np.float32)
    return features, loss, rng.random(b).astype(np.float32), rng.random(b).astype(np.float32), context, fit


def test_p_given_label_is_the_fit_where_given_else_exp_minus_loss():
    loss, fit = np.array([0.0, 1.0, 5.0], np.float32), np.array([0.2, 0.9, 0.6], np.float32)
    np.testing.assert_array_equal(p_given_label(loss, fit), fit)
    np.testing.assert_array_equal(p_given_label(loss), np.exp(-loss))


def test_state_and_reward_target_use_the_fit_where_given():
    features, loss, diff, unc, context, fit = batch()
    obs = build_state(features, loss, diff, unc, context, "full", fit).numpy()
    np.testing.assert_array_equal(obs[:, 2 + P_LABEL], fit)
    seen = context[:, 2] > 0
    np.testing.assert_array_equal(obs[:, 2 + AGREEMENT], np.where(seen, context[:, 0], fit))  # first visit: the fit
    np.testing.assert_array_equal(build_state(features, loss, diff, unc, context, "full").numpy(),
                                  old_state(features, loss, diff, unc, context).numpy())
    cfg = load_config(None, ["selection.selector=data_agent"]).agent
    assert cfg.reward == "agreement"
    score = np.linspace(0.1, 1.0, len(loss)).astype(np.float32)
    expected = score * np.where(seen, cfg.agreement_decay * context[:, 0] + (1 - cfg.agreement_decay) * fit, fit)
    np.testing.assert_allclose(reward_target(score, loss, context, cfg, fit), expected, rtol=1e-6)
    np.testing.assert_array_equal(reward_target(score, loss, context, cfg),
                                  score * old_agreement(context[:, 0], loss, seen, cfg.agreement_decay))


def session_over_store(tmp_path, *overrides, n=12):
    cfg = load_config(None, ["selection.selector=random_dynamic", "selection.ratio=1.0", "train.epochs=2",
                             *overrides])
    store = ScoreStore(cfg.to_dict(), np.zeros(n, np.int64), None, 1, None, str(tmp_path))
    return SelectionSession(store, cfg), store


@pytest.mark.parametrize("fit_signal", ["task", "loss"])
def test_the_pools_agreement_tracks_the_fit_unless_fit_signal_is_loss(tmp_path, fit_signal):
    session, store = session_over_store(tmp_path, f"agent.fit_signal={fit_signal}")
    rng = np.random.default_rng(0)
    previous = None
    for epoch in range(2):
        ids, _ = session.plan_epoch(epoch)
        ids = np.sort(ids)
        loss = torch.as_tensor(rng.random(len(ids)) * 6, dtype=torch.float32)
        fit = torch.as_tensor(rng.random(len(ids)), dtype=torch.float32)
        session.record(ids, loss, fit=fit)
        p = fit.numpy() if fit_signal == "task" else np.exp(-loss.numpy())
        expected = p if previous is None else 0.7 * previous + 0.3 * p  # agent.agreement_decay = 0.7
        np.testing.assert_allclose(store.pool.agreement[ids], expected, rtol=1e-6)
        previous = store.pool.agreement[ids].copy()
        session.end_epoch()
    session, store = session_over_store(tmp_path / "none")
    ids, _ = session.plan_epoch(0)
    session.record(ids, torch.full((len(ids),), 4.0))  # no fit: exp(-loss), as for classification
    np.testing.assert_allclose(store.pool.agreement[ids], np.exp(-4.0), rtol=1e-6)


def test_the_session_hands_the_fit_to_the_agents_state(tmp_path):
    from raydata_agent.agent.data_agent import DataAgent

    n = 16
    cfg = load_config(None, ["selection.selector=data_agent", "train.epochs=2"])
    agent = DataAgent(vars(cfg.agent), n, seed=0)
    store = ScoreStore(cfg.to_dict(), np.arange(n) % 2, None, 2, None, str(tmp_path), agent=agent)
    session = SelectionSession(store, cfg, agent=agent)
    ids, _ = session.plan_epoch(0)
    ids = np.sort(ids)
    fit = torch.linspace(0.1, 0.9, len(ids))
    session.record(ids, torch.full((len(ids),), 5.0), features=torch.randn(len(ids), 3), fit=fit)
    panel_ids, obs = session.acting.outbox[-1][:2]  # the panel is the whole pool here
    np.testing.assert_array_equal(panel_ids, ids)
    np.testing.assert_array_equal(obs[:, 3 + P_LABEL], fit.numpy())  # after 3 feature columns


def test_classification_outputs_no_fit_and_its_signals_are_unchanged_bit_for_bit(tmp_path):
    """Classification's cross-entropy: exp(-loss) is p(given label), so its task leaves fit None and
    every state, reward target and agreement is what it was before the fit signal existed."""
    from raydata_agent.tasks.classification import ClassificationTask

    task = ClassificationTask(Config())
    task.num_classes, task.in_channels = 4, 3
    torch.manual_seed(0)
    model = task.build_model().train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
    out = task.forward(model, (x, y), "cpu")
    assert out.fit is None
    loss = out.loss.detach().numpy()
    np.testing.assert_allclose(np.exp(-loss), out.probs[torch.arange(8), y].numpy(), rtol=1e-5)  # = p(given label)
    features = out.features.numpy()
    rng = np.random.default_rng(1)
    diff, unc = rng.random(8).astype(np.float32), rng.random(8).astype(np.float32)
    context = np.stack([rng.random(8), rng.random(8), np.arange(8) % 2], 1).astype(np.float32)
    np.testing.assert_array_equal(build_state(features, loss, diff, unc, context, "full", out.fit).numpy(),
                                  old_state(features, loss, diff, unc, context).numpy())
    seen = context[:, 2] > 0
    np.testing.assert_array_equal(label_agreement(context[:, 0], loss, seen, 0.7, out.fit),
                                  old_agreement(context[:, 0], loss, seen, 0.7))
    cfg = load_config(None, ["selection.selector=data_agent"]).agent
    np.testing.assert_array_equal(reward_target(diff, loss, context, cfg, out.fit),
                                  diff * old_agreement(context[:, 0], loss, seen, cfg.agreement_decay))
    pools = []
    for fit_signal in ("task", "loss"):  # the switch changes nothing where the task has no fit
        session, store = session_over_store(tmp_path / fit_signal, f"agent.fit_signal={fit_signal}", n=8)
        ids, _ = session.plan_epoch(0)
        assert sorted(ids) == list(range(8))  # epoch 0: the whole pool; sample k is row k of the batch
        session.record(np.arange(8), out.loss.detach(), probs=out.probs, fit=out.fit)
        pools.append(store.pool.table())
    assert pools[0].equals(pools[1])
    np.testing.assert_array_equal(pools[0].column("agreement").to_numpy(), np.exp(-loss))


def test_the_paper_preset_does_not_read_the_fit():
    cfg = load_config(None, ["selection.selector=data_agent", "agent.preset=paper"]).agent
    assert (cfg.reward, cfg.state, cfg.fit_signal) == ("score", "features", "task")
    features, loss, diff, unc, context, fit = batch()
    np.testing.assert_array_equal(build_state(features, loss, diff, unc, context, cfg.state, fit).numpy(),
                                  build_state(features, loss, diff, unc, context, cfg.state).numpy())
    np.testing.assert_array_equal(reward_target(diff, loss, context, cfg, fit), reward_target(diff, loss, context, cfg))
