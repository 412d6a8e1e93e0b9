"""The Data Agent, in process (RLlib's local learner; no Ray cluster needed): worker-side acting
matches the learner, resume keeps the policy, and the agent avoids flipped labels greedy prefers."""
import numpy as np
import pytest
import ray
import torch

from raydata_agent.agent.acting import WorkerActing, in_panel
from raydata_agent.agent.policy import policy_act
from raydata_agent.agent.rewards import payoff_param, training_reward
from raydata_agent.agent.state import build_state
from raydata_agent.agent.data_agent import DataAgent
from raydata_agent.agent.rl_module import TorchBeta
from raydata_agent.config import AgentConfig, ConfigError, load_config
from raydata_agent.score_store import ScoreStore
from raydata_agent.selectors.base import grouped_top_k
from raydata_agent.session import SelectionSession

N, D = 2000, 16


def drive(agent, worker, x, score_of, epochs, batch=64, seed=0):
    """Every sample visited each epoch: act in the worker, learn in the agent."""
    rng = np.random.default_rng(seed)
    ctx = np.zeros((batch, 3), np.float32)
    for epoch in range(epochs):
        for ids in np.array_split(rng.permutation(len(x)), len(x) // batch):
            s = score_of(ids)
            worker.act(epoch, ids, x[ids], np.zeros(len(ids)), s, s, s, ctx[:len(ids)], 0.5)
        worker.send(epoch)
        metrics = agent.end_epoch(epoch, final=epoch == epochs - 1)
    return metrics


def features_agent(**overrides):
    cfg = AgentConfig(**{"state": "features", "reward": "score", "warm_start_passes": 0, **overrides})
    return cfg, DataAgent(vars(cfg), N, seed=0)


@pytest.mark.parametrize("gamma, lr, epochs, gap, baseline", [
    (0.0, 3e-3, 2, 0.3, "self_critical"),  # v2: immediate reward, the mean action's payoff as baseline
    (0.99, 3e-4, 4, 0.03, "critic")])  # the paper: GAE along visits with a learned critic, slower
def test_policy_learns_from_worker_transitions(gamma, lr, epochs, gap, baseline):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    good = x[:, 0] > 0  # high reward is identifiable from the features
    cfg, agent = features_agent(gamma=gamma, lr=lr, baseline=baseline)
    agent._ensure_built(D)
    critic_before = [p.detach().clone() for p in agent.module.critic.parameters()]
    worker = WorkerActing(cfg, agent, N)
    metrics = drive(agent, worker, x, lambda ids: np.where(good[ids], 1.0, 0.1).astype(np.float32), epochs=epochs)
    _, logits = agent.act(x)
    mean = agent.module.get_train_action_dist_cls().from_logits(torch.as_tensor(logits)).mean.squeeze(-1).numpy()
    assert mean[good].mean() - mean[~good].mean() > gap, "high-reward samples get higher weights"
    assert metrics["agent_weight_version"] >= 2 * epochs, "an update every update_every transitions, not per epoch"
    assert metrics["agent_weight_lag_max"] <= 1, "a worker acts at most one update behind the learner"
    for key in ("agent_policy_loss", "agent_entropy", "agent_kl"):
        assert np.isfinite(metrics[key]), key
    critic_trained = any(not torch.equal(a, b) for a, b in zip(critic_before, agent.module.critic.parameters()))
    # The critic is trained only where it is the baseline: a self-critical one reads no values.
    assert critic_trained == (baseline == "critic") == ("agent_value_loss" in metrics)


def test_worker_copy_acts_like_the_learner_for_the_same_weights():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, D)).astype(np.float32)
    cfg, agent = features_agent()
    worker = WorkerActing(cfg, agent, N)
    drive(agent, worker, x, lambda ids: x[ids, 0].clip(0, None), epochs=1)
    worker.send(1)  # nothing to send: asks the learner for newer weights (answered at once in process)
    assert worker.version == agent.version > 0
    assert not hasattr(worker.module, "critic"), "the worker's copy is inference-only"
    torch.manual_seed(7)
    learner_actions, learner_logits = agent.act(x[:256])
    torch.manual_seed(7)
    actions, _, logits = policy_act(worker.module, torch.from_numpy(x[:256]))
    np.testing.assert_array_equal(actions.numpy(), learner_actions)
    np.testing.assert_allclose(logits.numpy(), learner_logits, rtol=1e-6)


@pytest.mark.parametrize("max_concentration", [40.0, 0.0])
def test_uniform_start_is_the_modules_own_beta_1_1(max_concentration):
    from raydata_agent.agent.policy import uniform_act
    from raydata_agent.agent.rl_module import beta_class

    cfg = AgentConfig(max_concentration=max_concentration)
    actions, logp, logits = uniform_act(512, cfg, torch.device("cpu"))
    dist = beta_class(max_concentration).from_logits(logits)
    assert torch.equal(dist.alpha, torch.ones_like(dist.alpha)) and torch.equal(dist.beta, torch.ones_like(dist.beta))
    assert torch.equal(dist.logp(actions[:, None]), logp)  # 0: what PPO's ratio divides by is exact
    assert 0.0 < actions.min() and actions.max() < 1.0 and abs(float(actions.mean()) - 0.5) < 0.05


def test_first_batch_does_not_wait_for_the_learner(ray_cluster):
    """A learner actor builds its RLlib LearnerGroup at the first request (~1 s): the worker acts
    uniformly meanwhile, then loads the weights and sends the uniform transitions it kept."""
    import time

    import ray

    cfg = AgentConfig(state="features", reward="score", warm_start_passes=0, send_every=1)
    agent = ray.remote(DataAgent).options(num_cpus=0).remote(vars(cfg), N, 0)
    try:
        worker = WorkerActing(cfg, agent, N)
        x = np.random.default_rng(3).standard_normal((64, D)).astype(np.float32)
        ctx, s = np.zeros((64, 3), np.float32), np.ones(64, np.float32)
        start = time.perf_counter()
        first = worker.act(0, np.arange(64), x, np.zeros(64), s, s, s, ctx, 0.5)
        assert time.perf_counter() - start < 0.5 and first["version"] == -1, "the first batch did not wait"
        deadline = time.perf_counter() + 60
        while worker.module is None and time.perf_counter() < deadline:
            time.sleep(0.05)
            worker.act(0, np.arange(64), x, np.zeros(64), s, s, s, ctx, 0.5)
        assert worker.version >= 0 and not hasattr(worker.module, "critic")  # later answers may bring newer ones
        worker.send(0)
        ray.get(worker.calls)
        metrics = ray.get(agent.end_epoch.remote(0, True))
        assert metrics["agent_transitions"] > 64  # the uniform batches' transitions reached the learner too
        late = WorkerActing(cfg, agent, N)  # a worker restarted after epoch 0: its actions choose samples
        assert late.act(1, np.arange(64), x, np.zeros(64), s, s, s, ctx, 0.5)["version"] >= 0
    finally:
        ray.kill(agent)


def test_resume_continues_the_same_policy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, D)).astype(np.float32)
    cfg, agent = features_agent()
    drive(agent, WorkerActing(cfg, agent, N), x, lambda ids: x[ids, 1].clip(0, None), epochs=2)
    other = DataAgent(vars(cfg), N, seed=1)
    other.load_state(agent.state())
    assert other.version == agent.version > 0
    torch.manual_seed(3)
    a, la = agent.act(x[:64])
    torch.manual_seed(3)
    b, lb = other.act(x[:64])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(la, lb)
    fresh = WorkerActing(cfg, other, N)
    fresh._refresh(D, wait=True)  # as at a restarted worker's first batch after epoch 0
    assert fresh.version == agent.version  # a restarted worker acts with the restored weights


@pytest.mark.parametrize("schedule", ["deterministic", "async"])
def test_first_epoch_after_a_restore_reports_the_agent_metrics(schedule):
    """deterministic waits for each epoch's answer; async logs the answer to the previous epoch's end (it
    never waits for it), and a restored selector (a restarted store, `resume`, train.resume_from) takes that
    answer from the checkpoint. Either way every epoch after a restore has the agent_* metrics."""
    from raydata_agent.pool import SamplePool
    from raydata_agent.selectors.data_agent import DataAgentSelector

    cfg = load_config(None, ["selection.selector=data_agent", "train.epochs=4", f"agent.schedule={schedule}"])
    pool = SamplePool(np.zeros(N, np.int64))

    def selector(seed):
        return DataAgentSelector(cfg.selection, N, 4, agent=DataAgent(vars(cfg.agent), N, seed=seed),
                                 agent_cfg=cfg.agent)

    first = selector(0)
    assert ("agent_weight_version" in first.update(pool, 0)) == (schedule == "deterministic")
    assert "agent_weight_version" in first.update(pool, 1)
    restored = selector(1)
    restored.load_state_dict(first.state_dict())
    assert "agent_weight_version" in restored.update(pool, 2)


def simulated_labels(n=1500, classes=5, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    flipped = rng.random(n) < noise
    given = np.where(flipped, (true + rng.integers(1, classes, n)) % classes, true)
    centres = rng.standard_normal((classes, 8)) * 2
    x = (centres[true] + rng.standard_normal((n, 8))).astype(np.float32)
    return rng, true, given, flipped, x, rng.random(n) * 3  # hardness


def run_simulation(selector: str, tmp_path, epochs=8, ratio=0.5, overrides=(), data_seed=0, agent_actor=False):
    """A model whose belief in each sample's true class grows with training; a flipped label is
    contradicted (high loss: greedy's favourite) unless the sample is memorised by training on it.
    The loop talks to a SelectionSession over an in-process ScoreStore, as a user's loop would
    (`agent_actor`: with the learner in its Ray actor, as start_session puts it)."""
    rng, true, given, flipped, x, hardness = simulated_labels(seed=data_seed)
    n, classes = len(true), 5
    cfg = load_config(None, [f"selection.selector={selector}", f"selection.ratio={ratio}",
                             f"train.epochs={epochs}", "selection.max_staleness=8",  # no forced revisit
                             *overrides])
    agent = None
    if selector == "data_agent":
        agent_class = ray.remote(DataAgent).options(num_cpus=0) if agent_actor else DataAgent
        agent = (agent_class.remote if agent_actor else agent_class)(vars(cfg.agent), n, seed=cfg.train.seed)
    store = ScoreStore(cfg.to_dict(), given, None, classes, None, str(tmp_path / selector), agent=agent)
    session = SelectionSession(store, cfg, agent=agent)
    memorised = np.zeros(n)
    flipped_rate = []
    for epoch in range(epochs):
        ids_epoch, loss_weights = session.plan_epoch(epoch)
        if len(ids_epoch) < n:
            flipped_rate.append(flipped[ids_epoch].mean())
            # selection.loss_weighting=auto: the paper's 1/ratio for the agent; InfoBatch weighs by its own rule
            expected = {"data_agent": 1 / ratio, "greedy": 1.0, "random_dynamic": 1.0}.get(selector)
            if expected is not None:
                np.testing.assert_allclose(loss_weights, expected, rtol=1e-6)
        for start in range(0, len(ids_epoch), 50):
            ids = ids_epoch[start:start + 50]
            p_true = 1 / (1 + np.exp(hardness[ids] - 0.6 * epoch))
            probs = np.zeros((len(ids), classes))
            probs[np.arange(len(ids)), true[ids]] = p_true
            p_given = np.where(flipped[ids], np.minimum(0.02 + 0.1 * memorised[ids], 0.9) * (1 - p_true), p_true)
            probs[np.arange(len(ids)), given[ids]] = p_given
            rest = (1 - probs.sum(1)) / (classes - 2 + (~flipped[ids]))
            probs = np.where(probs == 0, rest[:, None], probs)
            probs /= probs.sum(1, keepdims=True)
            loss = -torch.log(torch.as_tensor(probs[np.arange(len(ids)), given[ids]], dtype=torch.float32))
            session.record(ids, loss, probs=torch.as_tensor(probs, dtype=torch.float32),
                           features=torch.from_numpy(x[ids]))
            memorised[ids] += 1
        session.end_epoch({"val_metric": 0.0})
    return float(np.mean(flipped_rate[1:])), store  # after the first selection epoch


def test_agent_avoids_flipped_labels_that_greedy_prefers(tmp_path):
    greedy, _ = run_simulation("greedy", tmp_path)
    agent, store = run_simulation("data_agent", tmp_path)
    assert greedy > 0.4, "greedy's high-loss preference picks the flipped labels (30% of the pool)"
    assert agent < 0.15 and agent < greedy - 0.3, (agent, greedy)
    assert store.history[-1]["agent_weight_version"] > 16, "the policy kept learning after the warm start"


@pytest.mark.integration
def test_learner_figures_reach_every_epoch_row_after_the_first(ray_cluster, tmp_path):
    """An own loop's learner is an actor that answers later than a short epoch ends. Before, only the last
    row got its figures (agent_losses.png had one point). deterministic (the default) waits for each epoch's
    answer; async logs each row with its answer for the epoch before (waited for)."""
    for schedule, expected in (("deterministic", [True, True, True]), ("async", [False, True, True])):
        _, store = run_simulation("data_agent", tmp_path / schedule, epochs=3, agent_actor=True,
                                  overrides=(f"agent.schedule={schedule}",))
        ray.kill(store.selector.agent)
        assert ["agent_policy_loss" in h for h in store.history] == expected, schedule


def test_regression_ablation_learns_the_rank_target(tmp_path):
    """agent.learner=regression (least squares on the same target and state) runs the same loop."""
    share, store = run_simulation("data_agent", tmp_path, epochs=4, overrides=("agent.learner=regression",))
    assert share < 0.2, share
    assert "agent_regression_loss" in store.history[-1] and store.history[-1]["agent_weight_version"] > 4


def test_state_holds_what_greedy_knows():
    feats = np.array([[3.0, 4.0]], np.float32)
    ctx = np.array([[0.2, 0.5, 1.0]], np.float32)
    obs = build_state(feats, np.array([1.0]), np.array([0.7]), np.array([0.3]), ctx, "full").numpy()
    np.testing.assert_allclose(obs[0, :2], [0.6, 0.8], rtol=1e-5)  # unit-length features
    np.testing.assert_allclose(obs[0, 2:], [0.7, 0.3, np.log(2), np.exp(-1), 0.2, 0.5, 1.0], rtol=1e-5)
    assert build_state(feats, np.ones(1), np.ones(1), np.ones(1), ctx, "features").shape == (1, 2)


def test_panel_is_a_fixed_bounded_subset():
    ids = np.arange(100_000)
    panel = in_panel(ids, 0.1)
    assert 0.09 < panel.mean() < 0.11
    np.testing.assert_array_equal(in_panel(ids[::-1], 0.1), panel[::-1])  # by id, not by position


def test_a_worker_calls_the_learner_with_half_an_update_or_after_a_gap(monkeypatch):
    """In a large pool the panel is a small share of each batch: a worker's call to the learner waits
    until it carries half an update of transitions, or until MAX_CALL_GAP_S has passed (for weights)."""
    from raydata_agent.agent import acting

    class Counting:  # the in-process learner, its calls listed
        def __init__(self, agent):
            self.agent, self.calls = agent, []

        def publish(self, *args):
            self.calls.append("publish")
            return self.agent.publish(*args)

        def observe(self, *args):
            self.calls.append("observe")
            return self.agent.observe(*args)

    big = 100_000
    cfg = AgentConfig(state="features", reward="score", warm_start_passes=0, send_every=1, update_every=64,
                      panel_size=1000, schedule="async")  # the time gap is the async schedule's
    learner = Counting(DataAgent(vars(cfg), big, seed=0))
    worker = WorkerActing(cfg, learner, big)
    worker._refresh(D, wait=True)
    panel = in_panel(np.arange(big), worker.panel_fraction)
    outside, inside = np.flatnonzero(~panel)[:64], np.flatnonzero(panel)[:16]
    x = np.random.default_rng(0).standard_normal((64, D)).astype(np.float32)

    def act(ids):
        n, s = len(ids), np.ones(len(ids), np.float32)
        worker.act(0, ids, x[:n], np.zeros(n), s, s, s, np.zeros((n, 3), np.float32), 0.5)

    monkeypatch.setattr(acting, "MAX_CALL_GAP_S", 1e9)
    act(outside)  # the epoch's first batch asks for weights (the learner fits between epochs)
    learner.calls.clear()
    for _ in range(5):
        act(outside)
    assert learner.calls == [], "no transitions to send and no gap: no Ray call per batch"
    act(inside)
    assert learner.calls == [], "16 transitions: under half an update (32)"
    act(inside)
    assert learner.calls == ["observe"], "32 transitions go in one call"
    monkeypatch.setattr(acting, "MAX_CALL_GAP_S", 0.0)
    act(outside)
    assert learner.calls == ["observe", "publish"], "after the gap it asks for newer weights anyway"


def test_grouped_top_k_gives_each_class_its_share():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    key = np.where(labels == 0, 10.0, 0.0) + np.arange(100) * 1e-3  # class 0 looks best everywhere
    chosen = grouped_top_k(key, 10, labels)
    assert np.bincount(labels[chosen], minlength=3).tolist() == [5, 3, 2]
    assert len(np.unique(chosen)) == 10


def test_beta_logp_is_per_sample():
    """Trap 1: a [B, 1] log-prob times [B] advantages would broadcast to [B, B]."""
    logits = torch.randn(5, 2)
    dist = TorchBeta.from_logits(logits)
    actions = dist.sample()
    assert actions.shape == (5, 1)
    assert dist.logp(actions).shape == (5,) and dist.entropy().shape == (5,)
    assert dist.kl(TorchBeta.from_logits(torch.zeros(5, 2))).shape == (5,)
    torch.testing.assert_close(dist.mean, dist.alpha / (dist.alpha + dist.beta))


def test_panel_rows_get_the_payoff_they_get_in_the_whole_batch():
    """Only the panel's transitions leave a worker, so only their payoff is computed, against the
    whole batch (epoch 0's quantiles, margin's median): the same numbers as before."""
    rows = in_panel(np.arange(256), 0.1)
    target = np.random.default_rng(0).random(256).astype(np.float32)
    for payoff in ("rank", "margin", "linear"):
        np.testing.assert_array_equal(payoff_param(target, payoff, rows=rows), payoff_param(target, payoff)[rows])


def test_batch_quantiles_are_numpys():
    from raydata_agent.agent.rewards import QUANTILE_LEVELS, batch_quantiles

    rng = np.random.default_rng(0)
    for values in (rng.random(256, dtype=np.float32), rng.exponential(size=7), np.array([3.0]), np.zeros(5)):
        np.testing.assert_allclose(batch_quantiles(values), np.quantile(values, QUANTILE_LEVELS), rtol=1e-12, atol=0)


def test_training_reward_and_presets():
    a = np.array([0.5, 0.5], np.float32)
    t = np.array([0.2, 0.8], np.float32)
    np.testing.assert_allclose(training_reward(a, t, "linear"), a * t)  # the paper's r = a * score
    np.testing.assert_allclose(training_reward(a, t, "margin", 0.5), a * (t - 0.5))
    # rank: the best action is the target's percentile in the pool; every action is paid for its distance
    pool = np.quantile(np.linspace(0.0, 1.0, 1001), np.linspace(0.0, 1.0, 101))
    np.testing.assert_allclose(training_reward(np.array([0.2, 0.8]), t, "rank", None, pool), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(training_reward(np.zeros(2), t, "rank", None, pool), [-0.04, -0.64], atol=1e-6)
    paper = load_config(None, ["selection.selector=data_agent", "agent.preset=paper"]).agent
    assert (paper.reward, paper.state, paper.payoff, paper.gamma, paper.warm_start_passes, paper.hidden) == \
        ("score", "features", "linear", 0.99, 0, 128)
    v2 = load_config(None, ["selection.selector=data_agent"]).agent
    assert (v2.payoff, v2.hidden) == ("rank", 64)
    assert load_config(None, ["agent.preset=paper", "agent.gamma=0.5"]).agent.gamma == 0.5  # explicit wins
    with pytest.raises(ConfigError, match="agent.preset"):
        load_config(None, ["agent.preset=nope"])
    with pytest.raises(ConfigError, match="reward.variant=idu"):
        load_config(None, ["selection.selector=data_agent", "reward.variant=idu"])


def test_reward_scale_is_the_population_std_of_every_reward_so_far_and_survives_a_checkpoint():
    """The per-sample reward scale (RLlib's RunningStat, merged batch by batch) is np.std of all
    rewards seen, and a learner restored from `state()` scales the next rewards alike."""
    from raydata_agent.agent.data_agent import population_std, push_batch, running_stat

    rng = np.random.default_rng(0)
    batches = [rng.exponential(size=n).astype(np.float32) for n in (0, 1, 37, 128, 5)]
    stat = running_stat()
    assert population_std(stat) == 1.0, "no spread yet: rewards are left unscaled"
    for batch in batches:
        push_batch(stat, batch)
    np.testing.assert_allclose(population_std(stat), np.concatenate(batches).astype(np.float64).std(), rtol=1e-12)
    cfg, agent = features_agent()
    push_batch(agent.reward_std, np.concatenate(batches))
    restored = DataAgent(vars(cfg), N, seed=1)
    restored.load_state(agent.state())
    assert population_std(restored.reward_std) == population_std(agent.reward_std) != 1.0
