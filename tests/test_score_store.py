"""The score store's epoch rows: the forced share of each selection epoch, and its run mean."""
import math

import numpy as np
import pytest

from raydata_agent.config import Config
from raydata_agent.score_store import ScoreStore


def run_rows(tmp_path, selector, share, epochs=6, n=40):
    cfg = Config()
    cfg.selection.selector, cfg.selection.ratio, cfg.train.epochs = selector, 0.25, epochs
    cfg.selection.max_staleness, cfg.selection.max_forced_share, cfg.selection.delta = 2, share, 5 / 6
    store = ScoreStore(cfg.to_dict(), np.zeros(n, np.int64), None, 1, None, str(tmp_path))
    rng = np.random.default_rng(0)
    rows = []
    for epoch in range(epochs):
        plan = store.plan(epoch)
        m = len(plan.ids)
        store.record(epoch, plan.ids, rng.random(m), *[np.zeros(m)] * 3, rng.random(m), 0.5)
        rows.append(store.finish_epoch(epoch, {}))
    return rows


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_each_epoch_row_has_its_forced_share_and_the_run_its_mean(tmp_path, share):
    rows = run_rows(tmp_path, "greedy", share)
    full = [row for row in rows if row["full_epoch"]]
    selection = [row for row in rows if not row["full_epoch"]]
    assert len(full) == 2 and all(row["forced_share"] == 0.0 for row in full)  # warm-up and annealing
    cap = math.ceil(share * 10) / 10  # budget 10 of 40
    assert max(row["forced_share"] for row in selection) == cap  # at staleness 2, stale samples outnumber k
    assert all(0.0 <= row["forced_share"] <= cap for row in selection)
    assert rows[-1]["selection_forced_share"] == pytest.approx(np.mean([row["forced_share"] for row in selection]))


def test_a_selector_that_keeps_nothing_by_weight_forces_nothing(tmp_path):
    rows = run_rows(tmp_path, "cyclic", 1.0)
    assert all(row["forced_share"] == 0.0 for row in rows) and rows[-1]["selection_forced_share"] == 0.0
