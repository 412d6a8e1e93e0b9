import numpy as np
import pyarrow.parquet as pq
import pytest

from raydata_agent.pool import COLUMNS, NEVER, SamplePool


def test_new_pool_has_every_column_and_unseen_rows():
    pool = SamplePool(np.array([0, 1, 2, 1]))
    table = pool.table()
    assert table.column_names == list(COLUMNS)
    assert table["weight"].to_pylist() == [1.0] * 4  # unseen samples are selected first
    assert table["last_epoch_seen"].to_pylist() == [NEVER] * 4
    assert table["source"][2].as_py() == "sample:2"


def test_vectorised_update_and_selection_counts():
    pool = SamplePool(np.zeros(10, int))
    pool.update(np.array([3, 7]), epoch=2, loss=np.array([0.5, 1.5]), reward=np.array([0.1, 0.9]))
    assert pool.loss[[3, 7]].tolist() == [0.5, 1.5] and pool.loss.sum() == 2.0
    assert pool.last_epoch_seen[[3, 7]].tolist() == [2, 2] and pool.seen.sum() == 2
    pool.mark_selected(np.array([3, 3, 5]))
    assert pool.times_selected[[3, 5, 7]].tolist() == [2, 1, 0]


def test_update_rejects_bad_ids_and_columns():
    pool = SamplePool(np.zeros(5, int))
    with pytest.raises(IndexError, match=r"sample ids \[9\] are outside the pool of 5 rows"):
        pool.update(np.array([1, 9]), loss=np.array([0.0, 0.0]))
    with pytest.raises(KeyError, match="unknown pool column 'colour'"):
        pool.update(np.array([1]), colour=np.array([0.0]))
    with pytest.raises(ValueError, match="has"):
        pool.update(np.array([1, 2]), loss=np.array([0.0]))


def test_snapshot_round_trip_is_atomic(tmp_path):
    pool = SamplePool(np.array([1, 2, 3]), sources=["a.png", "b.png", "c.png"])
    pool.update(np.array([0, 2]), epoch=0, loss=np.array([2.0, 3.0]))
    path = pool.snapshot(tmp_path / "snap" / "pool.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["pool.parquet"]  # no temp file left behind
    back = SamplePool.from_parquet(path)
    assert back.table().equals(pool.table())
    assert pq.read_table(path)["source"].to_pylist() == ["a.png", "b.png", "c.png"]


def test_unreadable_snapshot_names_the_file(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="broken.parquet"):
        SamplePool.from_parquet(bad)


def test_large_pool_update_is_vectorised():
    n = 2_000_000
    pool = SamplePool(np.zeros(n, np.int64), sources=None)
    ids = np.random.default_rng(0).choice(n, 500_000, replace=False)
    pool.update(ids, epoch=1, loss=np.ones(len(ids)))
    assert pool.loss.sum() == len(ids) and pool.seen.sum() == len(ids)


def test_store_keeps_idu_across_epochs_and_scores_the_idu_variant(tmp_path):
    from raydata_agent.config import Config
    from raydata_agent.score_store import ScoreStore

    cfg = Config()
    cfg.selection.selector, cfg.reward.variant, cfg.reward.idu_smoothing = "greedy", "idu", 0.1
    store = ScoreStore(cfg.to_dict(), np.zeros(4, np.int64), None, 2, None, str(tmp_path))
    ids, zeros = np.array([0, 1, 2]), np.zeros(3)
    store.record(0, ids, np.array([1.0, 2.0, 4.0]), zeros, zeros, zeros, None, 0.5,
                 predicted_change=np.array([0.0, -0.5, -1.0]))
    # First sight: IDU_{t-1} is the loss itself, so IDU = L + dL'.
    np.testing.assert_allclose(store.pool.idu[:3], [1.0, 1.5, 3.0])
    np.testing.assert_allclose(store.pool.reward[:3], [0.0, 0.25, 1.0], atol=1e-6)  # min-max of the batch
    store.record(1, ids[:2], np.array([0.5, 1.0]), zeros[:2], zeros[:2], zeros[:2], None, 0.5)
    np.testing.assert_allclose(store.pool.idu[:3], [0.9 * 0.5 + 0.1 * 1.0, 0.9 * 1.0 + 0.1 * 1.5, 3.0], rtol=1e-6)


def test_record_batches_records_each_batch_as_its_own(tmp_path):
    """A worker's coalesced send must not merge its batches: the idu score is min-max normalised per batch."""
    from raydata_agent.config import Config
    from raydata_agent.score_store import ScoreStore

    cfg = Config()
    cfg.selection.selector, cfg.reward.variant = "greedy", "idu"
    stores = [ScoreStore(cfg.to_dict(), np.zeros(4, np.int64), None, 2, None, str(tmp_path / str(k))) for k in range(3)]
    zeros = np.zeros(2)
    batches = [(0, np.array([0, 1]), np.array([1.0, 2.0]), zeros, zeros, zeros, None, 0.5),
               (0, np.array([2, 3]), np.array([3.0, 5.0]), zeros, zeros, zeros, None, 0.5)]
    for args in batches:
        stores[0].record(*args)
    stores[1].record_batches(batches)
    stores[2].record(0, np.arange(4), np.array([1.0, 2.0, 3.0, 5.0]), *[np.zeros(4)] * 3, None, 0.5)
    np.testing.assert_array_equal(stores[1].pool.reward, stores[0].pool.reward)
    np.testing.assert_allclose(stores[1].pool.reward, [0.0, 1.0, 0.0, 1.0], atol=1e-6)
    assert not np.allclose(stores[2].pool.reward, stores[1].pool.reward)  # one merged batch would differ
    assert stores[1].epoch_passes == 4


def test_ground_truth_columns_go_to_snapshots_and_the_store_counts_what_was_trained(tmp_path):
    from raydata_agent.config import Config
    from raydata_agent.score_store import ScoreStore

    noisy = np.arange(10) < 4
    pool = SamplePool(np.zeros(10, np.int64), truth={"is_noisy": noisy})
    back = SamplePool.from_parquet(pool.snapshot(tmp_path / "p.parquet"))
    np.testing.assert_array_equal(back.truth["is_noisy"], noisy)
    with pytest.raises(ValueError, match="is_"):
        SamplePool(np.zeros(10, np.int64), truth={"noisy": noisy})

    cfg = Config()
    cfg.selection.selector, cfg.selection.ratio, cfg.train.epochs = "random_static", 0.5, 4
    store = ScoreStore(cfg.to_dict(), np.zeros(10, np.int64), None, 1, None, str(tmp_path), truth={"is_noisy": noisy})
    rows = []
    for epoch in range(2):
        plan = store.plan(epoch)
        store.record(epoch, plan.ids, *[np.zeros(len(plan.ids))] * 5, 0.5)
        rows.append(store.finish_epoch(epoch, {}))
    assert rows[0]["trained_is_noisy"] == 1.0  # warm-up: everything
    assert rows[1]["trained_is_noisy"] == noisy[store.plans[1].ids].sum() / 4
    assert rows[1]["selection_trained_is_noisy"] == rows[1]["trained_is_noisy"]
