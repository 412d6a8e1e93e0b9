"""cyclic: a seeded round-robin, each pass a fresh order over the whole pool."""
import math

import numpy as np

from raydata_agent.config import SelectionConfig
from raydata_agent.pool import SamplePool
from raydata_agent.selectors import build_selector

N = 103  # not a multiple of the budget: passes end inside epochs


def cyclic(seed=0, ratio=0.3, epochs=40):
    return build_selector(SelectionConfig(selector="cyclic", ratio=ratio, delta=1.0), N, epochs, seed=seed)


def picks(sel, epochs, start=1):
    pool = SamplePool(np.zeros(N, np.int64))
    return [sel.select(pool, epoch).ids for epoch in range(start, start + epochs)]


def test_every_sample_exactly_once_per_pass_and_the_budget_exactly():
    sel = cyclic()
    k = math.ceil(0.3 * N)
    chosen = picks(sel, 30)
    assert all(len(ids) == k == len(np.unique(ids)) for ids in chosen)
    counts = np.zeros(N, int)
    for epoch, ids in enumerate(chosen, 1):  # once per pass: after T picks, each sample floor or ceil(T / N) times
        counts[ids] += 1
        assert set(counts) <= {epoch * k // N, -(-epoch * k // N)}, f"epoch {epoch}"
    assert counts.min() >= 8  # several passes were checked


def test_the_order_differs_between_passes():
    sel = cyclic(ratio=0.5)  # two epochs of 52 = one pass of 103 and one sample of the next
    first = sel.order.copy()
    picks(sel, 2)
    assert not np.array_equal(sel.order, first) and sorted(sel.order) == list(range(N))


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    a, b, c = picks(cyclic(seed=5), 10), picks(cyclic(seed=5), 10), picks(cyclic(seed=6), 10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_resume_mid_pass_continues_the_pass():
    saved = cyclic(seed=1)
    picks(saved, 2)  # 2 * 31 of 103: mid-pass
    state = saved.state_dict()
    restored = cyclic(seed=2)
    restored.load_state_dict(state)
    expected = picks(saved, 8, start=3)
    assert not all(np.array_equal(x, y) for x, y in zip(picks(cyclic(seed=2), 8, start=3), expected))
    assert all(np.array_equal(x, y) for x, y in zip(picks(restored, 8, start=3), expected))


def test_warm_up_and_annealing_like_every_selector():
    sel = build_selector(SelectionConfig(selector="cyclic", ratio=0.3, delta=0.5), N, 8)
    pool = SamplePool(np.zeros(N, np.int64))
    full = [sel.select(pool, epoch).full for epoch in range(8)]
    assert full == [True, False, False, False, True, True, True, True]
    assert not sel.needs_signals  # warmup_epochs=0 selects from epoch 0, as the random baselines
    no_warmup = build_selector(SelectionConfig(selector="cyclic", ratio=0.3, warmup_epochs=0), N, 8)
    assert not no_warmup.select(pool, 0).full
