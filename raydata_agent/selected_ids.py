"""The session's selection as a Ray Data dataset (data.pipeline=ray_data, or a user's Ray Train loop):
the pool's ids, filtered at read time to the epoch every worker planned, each row with its loss weight."""
from __future__ import annotations

import numpy as np

_PLAN_CACHE: dict = {}  # per Ray Data worker process: (store, epoch) -> (sorted ids, loss weights)


def selected_ids_dataset(store, num_samples: int, seed: int, override_num_blocks: int | None = None,
                         columns: dict | None = None, num_cpus: float | None = None):
    """See SelectionSession.selected_ids_dataset; `store` is the score store actor."""
    import ray.data

    if columns is None:
        ids = ray.data.range(num_samples, override_num_blocks=override_num_blocks)
    else:
        import pyarrow as pa

        order = np.random.default_rng(seed).permutation(num_samples)
        table = pa.table({"id": order, **{name: _arrow_column(np.asarray(values)[order])
                                          for name, values in columns.items()}})
        blocks = override_num_blocks or max(1, -(-num_samples // 256))
        step = -(-num_samples // blocks)
        ids = ray.data.from_arrow([table.slice(start, step) for start in range(0, num_samples, step)])
    return ids.map_batches(keep_selected, fn_kwargs={"store": store}, batch_format="numpy",
                           **({"num_cpus": num_cpus} if num_cpus is not None else {}))


def keep_selected(batch: dict, store) -> dict:
    """Ray Data `map_batches` UDF: keep the rows of the store's latest plan, add their loss weight.

    It asks the store for the planned epoch per block (a small call) and for the ids once per epoch.
    """
    import ray

    epoch = ray.get(store.planned_epoch.remote())
    if epoch is None:
        raise RuntimeError("the selected-ids dataset was read before any epoch was planned: call "
                           "session.plan_epoch(epoch) on every worker before iterating its shard")
    key = (store._actor_id.hex(), epoch)
    if key not in _PLAN_CACHE:
        _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = ray.get(store.planned_selection.remote())[1:]
    ids, weights = _PLAN_CACHE[key]
    rows = np.asarray(batch["id"], np.int64)
    pos = np.clip(np.searchsorted(ids, rows), 0, max(len(ids) - 1, 0))
    keep = ids[pos] == rows if len(ids) else np.zeros(len(rows), bool)
    out = {name: np.asarray(values)[keep] for name, values in batch.items()}
    out["loss_weight"] = weights[pos[keep]]
    out["epoch"] = np.full(int(keep.sum()), epoch, np.int64)  # seeds the epoch's augmentation downstream
    return out


def _arrow_column(values: np.ndarray):
    """A pyarrow column from a per-sample array: [N, ...] arrays become tensor columns (pixels)."""
    import pyarrow as pa

    if values.ndim > 1:
        from ray.data.extensions import ArrowTensorArray

        return ArrowTensorArray.from_numpy(values)
    return pa.array(values.tolist() if values.dtype == object else values)
