import math

import numpy as np
import pytest

from raydata_agent.config import SelectionConfig
from raydata_agent.pool import SamplePool
from raydata_agent.selectors import SELECTORS, build_selector

N, EPOCHS = 200, 8


def scored_pool(seed=0):
    rng = np.random.default_rng(seed)
    pool = SamplePool(rng.integers(0, 4, N))
    pool.update(pool.ids, epoch=0, loss=rng.exponential(1.0, N), reward=rng.random(N),
                entropy=rng.random(N), difficulty=rng.random(N), uncertainty=rng.random(N))
    return pool


def make(name, **kw):
    cfg = SelectionConfig(selector=name, **kw)
    return build_selector(cfg, N, EPOCHS, seed=0)


@pytest.mark.parametrize("name", sorted(n for n in SELECTORS if n != "data_agent"))
def test_every_selector_honours_budget_and_annealing(name):
    sel = make(name, ratio=0.3, delta=0.75)
    pool = scored_pool()
    for epoch in range(EPOCHS):
        s = sel.select(pool, epoch)
        assert len(np.unique(s.ids)) == len(s.ids) and s.ids.min() >= 0 and s.ids.max() < N
        assert len(s.loss_weights) == len(s.ids)
        if epoch >= 6 or name == "full":  # delta * epochs = 6: the rest anneal on all data
            assert s.full and len(s.ids) == N
        elif epoch == 0:
            assert s.full, "warm-up: every selector, random included, trains on all data in epoch 0"
        else:  # infobatch too: it prunes exactly N - k samples (equal cost)
            assert not s.full and len(s.ids) == math.ceil(0.3 * N)
        pool.update(s.ids, epoch=epoch, loss=pool.loss[s.ids])


def test_warmup_is_the_same_for_every_selector_and_random_ones_differ_as_named():
    static, dynamic = make("random_static", ratio=0.5), make("random_dynamic", ratio=0.5)
    pool = scored_pool()
    assert static.select(pool, 0).full and dynamic.select(pool, 0).full  # equal cost: same warm-up as the rest
    assert np.array_equal(static.select(pool, 1).ids, static.select(pool, 2).ids)
    assert not np.array_equal(dynamic.select(pool, 1).ids, dynamic.select(pool, 2).ids)
    # warmup_epochs=0: random selectors select from epoch 0; a signal selector still needs one scored epoch.
    assert not make("random_dynamic", ratio=0.5, warmup_epochs=0).select(pool, 0).full
    assert make("greedy", ratio=0.5, warmup_epochs=0).select(pool, 0).full
    two = [make(name, ratio=0.5, warmup_epochs=2) for name in ("random_dynamic", "greedy")]
    assert all(sel.select(pool, 1).full and not sel.select(pool, 2).full for sel in two)


def test_ratio_one_is_full_data():
    assert make("greedy", ratio=1.0).select(scored_pool(), 3).full


def test_infobatch_prunes_only_below_mean_and_rescales():
    sel = make("infobatch", ratio=0.7)
    pool = scored_pool()
    s = sel.select(pool, 1)
    mean = pool.loss.mean()
    above = np.flatnonzero(pool.loss >= mean)
    assert set(above) <= set(s.ids), "well-learned samples are the only ones pruned"
    below_kept = pool.loss[s.ids] < mean
    r = sel.last_prune_prob
    assert 0 < r <= 0.7
    np.testing.assert_allclose(s.loss_weights[below_kept], 1 / (1 - r), rtol=1e-6)
    np.testing.assert_allclose(s.loss_weights[~below_kept], 1.0)
    assert len(s.ids) == math.ceil(0.7 * N)  # the budget, exactly


def test_infobatch_logs_no_prune_probability_on_full_epochs():
    sel = make("infobatch", ratio=0.7, delta=0.5)  # epochs 4.. anneal
    pool = scored_pool()
    sel.select(pool, 1)
    assert sel.update(pool, 1)["infobatch_prune_prob"] > 0
    assert sel.select(pool, 4).full
    assert sel.update(pool, 4)["infobatch_prune_prob"] == 0.0  # not epoch 1's value


def test_infobatch_meets_a_tight_budget_by_widening_its_prune_set_at_the_cap():
    sel = make("infobatch", ratio=0.4)  # below-mean share ~0.63 * cap 0.7 = 0.44 < 0.6 to prune
    pool = scored_pool()
    s = sel.select(pool, 1)
    assert len(s.ids) == math.ceil(0.4 * N) and sel.last_prune_prob == pytest.approx(0.7, abs=0.01)
    pruned = np.setdiff1d(pool.ids, s.ids)
    assert pool.loss[pruned].max() <= np.quantile(pool.loss, 0.6 / 0.7 + 0.01)  # lowest-loss candidates only
    assert pool.loss[pruned].max() > pool.loss.mean()  # ... beyond the mean: the set widened
    np.testing.assert_allclose(s.loss_weights.max(), 1 / (1 - sel.last_prune_prob), rtol=1e-6)
    # Below 1 - cap the budget is out of reach without a rescale past the cap: it keeps more, visibly.
    s = make("infobatch", ratio=0.2).select(pool, 1)
    assert len(s.ids) == N - math.floor(0.7 * N) > math.ceil(0.2 * N)


def test_greedy_takes_top_reward_and_unseen_first():
    sel = make("greedy", ratio=0.1)
    pool = scored_pool()
    pool.last_epoch_seen[:] = 1
    s = sel.select(pool, 2)
    top = np.argsort(-pool.reward)[: len(s.ids)]
    assert set(s.ids) == set(top)
    pool.last_epoch_seen[[5, 6]] = -1  # never seen: must be taken
    assert {5, 6} <= set(sel.select(pool, 3).ids)


def test_topk_does_not_starve_stale_samples():
    sel = make("greedy", ratio=0.1, max_staleness=3)
    pool = scored_pool()
    pool.last_epoch_seen[:] = 4
    pool.last_epoch_seen[7] = 1  # unseen for 3 epochs at epoch 4
    pool.reward[7] = 0.0  # and the lowest reward
    assert 7 in sel.select(pool, 4).ids


def test_proportional_sampling_follows_weights_and_keeps_everyone_possible():
    sel = make("greedy", ratio=0.1, sampling="proportional")
    pool = scored_pool()
    pool.reward[:] = 0.01
    pool.reward[:20] = 1.0
    counts = np.zeros(N)
    for epoch in range(1, 6):
        counts[sel.select(pool, epoch).ids] += 1
    assert counts[:20].mean() > 5 * counts[20:].mean() > 0


def test_temperature_moves_proportional_sampling_towards_top_k():
    pool = scored_pool()
    pool.reward[:] = np.linspace(0.05, 1.0, N)  # distinct weights: the top 20 are the last 20 rows
    shares = {}
    for temperature in (1.0, 0.5, 0.01):
        sel = make("greedy", ratio=0.1, sampling="proportional", temperature=temperature)
        picks = np.concatenate([sel.select(pool, epoch).ids for epoch in range(1, 6)])
        shares[temperature] = np.mean(picks >= N - 20)
    assert shares[1.0] < shares[0.5] < shares[0.01]
    assert shares[0.01] > 0.9  # nearly top-k


def test_inverse_ratio_weighting():
    s = make("random_dynamic", ratio=0.25, loss_weighting="inverse_ratio").select(scored_pool(), 1)
    np.testing.assert_allclose(s.loss_weights, 4.0)


def test_ucb_prefers_rarely_selected_and_eps_greedy_high_loss():
    pool = scored_pool()
    pool.loss[:] = 1.0
    pool.times_selected[:] = 10
    pool.times_selected[:5] = 1
    assert set(range(5)) <= set(make("ucb", ratio=0.05).select(pool, 3).ids)
    pool = scored_pool()
    s = make("eps_greedy", ratio=0.2, eps_greedy={"epsilon": 0.0}).select(pool, 1)
    assert set(s.ids) == set(np.argsort(-pool.loss)[:40])


@pytest.mark.parametrize("name", ["random_static", "random_dynamic", "cyclic"])
def test_selector_state_round_trip(name):
    """A selector seeded differently selects what the saved one would, only through load_state_dict."""
    cfg = SelectionConfig(selector=name, ratio=0.3)
    pool = scored_pool()
    saved = build_selector(cfg, N, EPOCHS, seed=0)
    saved.select(pool, 1)  # its random state moves on
    state = saved.state_dict()
    fresh = build_selector(cfg, N, EPOCHS, seed=1).select(pool, 2).ids
    restored = build_selector(cfg, N, EPOCHS, seed=1)
    restored.load_state_dict(state)
    expected = saved.select(pool, 2).ids
    assert len(expected) < N and not np.array_equal(fresh, expected), "a fresh selector would pass unrestored"
    np.testing.assert_array_equal(restored.select(pool, 2).ids, expected)


def test_kmeans_1d_finds_separated_groups_in_order():
    from raydata_agent.selectors.lead import kmeans_1d

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(c, 0.05, 50) for c in (5.0, 0.0, 10.0)])
    assign = kmeans_1d(values, 3)
    assert (assign[:50] == 1).all() and (assign[50:100] == 0).all() and (assign[100:] == 2).all()
    assert kmeans_1d(np.zeros(10), 7).max() == 0  # no spread: one cluster, no crash


@pytest.mark.parametrize("k", [3, 7])
def test_kmeans_1d_is_scikit_learns_kmeans_from_the_same_start(k):
    """Kept for speed only (see kmeans_1d): at convergence it is Lloyd's k-means, as sklearn runs it."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from raydata_agent.selectors.lead import kmeans_1d

    rng = np.random.default_rng(0)
    for values in (np.concatenate([rng.gamma(2.0, 1.0, 2000), rng.normal(6.0, 1.0, 2000)]), rng.random(3000),
                   rng.exponential(size=5000), np.concatenate([rng.normal(c, 0.05, 50) for c in (5.0, 0.0, 10.0)])):
        assign = kmeans_1d(values, k, iters=300)
        start = np.unique(np.quantile(values, (np.arange(k) + 0.5) / k))[:, None]  # kmeans_1d's quantile start
        with threadpool_limits(1):  # OpenMP threads on a busy machine: seconds instead of milliseconds
            km = KMeans(len(start), init=start, n_init=1, max_iter=300, tol=0.0).fit(values[:, None])
        rank = np.argsort(np.argsort(km.cluster_centers_[:, 0]))  # sklearn's cluster -> ours (ordered by centre)
        np.testing.assert_array_equal(rank[km.labels_], assign)
        centres = [values[assign == i].mean() for i in range(assign.max() + 1)]
        np.testing.assert_allclose(centres, np.sort(km.cluster_centers_[:, 0]), rtol=0, atol=1e-9)


def idu_pool():
    pool = scored_pool()
    pool.idu[:] = np.repeat(np.arange(4.0), N // 4) + np.tile(np.linspace(0, 0.1, N // 4), 4)
    return pool


def test_lead_fills_the_budget_with_the_top_idu_of_drawn_arms():
    sel = make("lead", ratio=0.1, lead={"clusters": 4})
    pool = idu_pool()
    s = sel.select(pool, 1)
    assert len(s.ids) == 20 and len(sel.drawn) == 1  # one arm of 50 covers the budget of 20
    arm, ids, _, _ = sel.drawn[0]
    members = np.flatnonzero(np.floor(pool.idu) == arm)
    assert set(s.ids) == set(members[np.argsort(-pool.idu[members])[:20]])
    pool.last_epoch_seen[[3, 4]] = -1  # never trained: taken first
    assert {3, 4} <= set(sel.select(pool, 2).ids)


def test_lead_exp3_moves_probability_to_the_arm_whose_idu_drops():
    sel = make("lead", ratio=0.25, lead={"clusters": 4, "gamma": 0.3})
    pool = idu_pool()
    for epoch in range(1, 40):
        s = sel.select(pool, epoch)
        before = pool.idu.copy()
        learned = s.ids[np.floor(before[s.ids]) == 2]  # only the samples of arm 2 get easier
        pool.idu[learned] -= 0.05
        sel.update(pool, epoch)
        pool.idu[:] = before  # the pool stays put: arm 2 keeps paying
    p = sel.probabilities()
    assert p.argmax() == 2 and p[2] > 1.5 * max(p[0], p[1], p[3])
    again = make("lead", ratio=0.25, lead={"clusters": 4, "gamma": 0.3})
    again.load_state_dict(sel.state_dict())
    np.testing.assert_allclose(again.probabilities(), p)
