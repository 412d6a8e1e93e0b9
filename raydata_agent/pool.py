"""The sample pool: one row per training sample with its latest scores.

Columns live as contiguous NumPy arrays indexed by sample id (ids are 0..N-1), so a score
update is one fancy-indexed assignment however large the pool (10M rows is ~0.5 GB).
`table()` wraps them as an Arrow table without copying the numeric columns.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

NEVER = -1  # last_epoch_seen of a sample not trained on yet

# idu: LEAD's utility; agreement: EMA of the given label's probability (signals.label_agreement)
FLOAT_COLUMNS = ("weight", "loss", "entropy", "difficulty", "uncertainty", "reward", "idu", "agreement")
INT_COLUMNS = ("times_selected", "last_epoch_seen")
COLUMNS = ("id", "label", "source") + FLOAT_COLUMNS + INT_COLUMNS
TRUTH_PREFIX = "is_"  # optional ground-truth columns (is_noisy, ...), known to benchmarks only


class SamplePool:
    def __init__(self, labels: np.ndarray, sources: pa.Array | list[str] | None = None,
                 source_prefix: str = "sample", truth: dict[str, np.ndarray] | None = None):
        labels = np.asarray(labels)
        n = len(labels)
        self.label = labels.astype(np.int64)
        if sources is None:
            # Generated data sets have no files; name rows so a snapshot row still says where it came from.
            ids = pa.compute.cast(pa.array(np.arange(n)), pa.string())
            sources = pa.compute.binary_join_element_wise(f"{source_prefix}:", ids, "")
        self.source = sources if isinstance(sources, pa.Array) else pa.array(sources, pa.string())
        if len(self.source) != n:
            raise ValueError(f"pool has {n} labels but {len(self.source)} sources")
        self.weight = np.ones(n, np.float32)  # unseen samples have weight 1: selected first
        for name in FLOAT_COLUMNS[1:]:
            setattr(self, name, np.zeros(n, np.float32))
        self.times_selected = np.zeros(n, np.int32)
        self.last_epoch_seen = np.full(n, NEVER, np.int32)
        # Ground truth of generated sets (is_noisy, is_duplicate, is_hard): written in the table and
        # snapshots for benchmarks; no selector reads it.
        self.truth = {name: np.asarray(col, bool) for name, col in (truth or {}).items()}
        for name, col in self.truth.items():
            if not name.startswith(TRUTH_PREFIX) or col.shape != (n,):
                raise ValueError(f"ground-truth column {name!r} must be named {TRUTH_PREFIX}* and hold {n} values")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    @property
    def seen(self) -> np.ndarray:
        return self.last_epoch_seen != NEVER

    def _check_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][:5]
            raise IndexError(f"sample ids {bad.tolist()} are outside the pool of {len(self)} rows")
        return ids

    def update(self, ids: np.ndarray, epoch: int | None = None, **values: np.ndarray) -> None:
        """Vectorised score update: `values` are float columns aligned with `ids`."""
        ids = self._check_ids(ids)
        for name, vals in values.items():
            if name not in FLOAT_COLUMNS:
                raise KeyError(f"unknown pool column {name!r}; score columns: {', '.join(FLOAT_COLUMNS)}")
            vals = np.asarray(vals, dtype=np.float32)
            if vals.shape != ids.shape:
                raise ValueError(f"column {name!r} has {vals.shape} values for {ids.shape} ids")
            getattr(self, name)[ids] = vals
        if epoch is not None:
            self.last_epoch_seen[ids] = epoch

    def mark_selected(self, ids: np.ndarray) -> None:
        ids = self._check_ids(ids)
        if np.all(ids[1:] > ids[:-1]):  # sorted unique ids (every selector's output): ~15x np.add.at
            self.times_selected[ids] += 1
        else:
            np.add.at(self.times_selected, ids, 1)

    def table(self) -> pa.Table:
        cols = {"id": self.ids, "label": self.label, "source": self.source}
        cols.update({name: getattr(self, name) for name in FLOAT_COLUMNS + INT_COLUMNS})
        cols.update(self.truth)
        return pa.table(cols)

    def to_dataset(self):
        """The pool as a Ray Data dataset, for analysis with Ray Data's operators."""
        import ray.data

        return ray.data.from_arrow(self.table())

    def snapshot(self, path: str | os.PathLike, columns: str = "all") -> Path:
        """Write the pool as zstd Parquet atomically: a reader never sees a half-written file.

        columns="scores" leaves out `source` (the file paths: the bulk of a large pool's bytes, and
        constant over a run; the checkpoint's pool.parquet keeps them)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        table = self.table()
        if columns == "scores":
            table = table.drop_columns(["source"])
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_table(cls, table: pa.Table) -> "SamplePool":
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"pool table lacks columns {missing}")
        table = table.sort_by("id")
        truth = {c: table[c].to_numpy() for c in table.column_names if c.startswith(TRUTH_PREFIX)}
        pool = cls(table["label"].to_numpy(), sources=table["source"].combine_chunks(), truth=truth)
        for name in FLOAT_COLUMNS + INT_COLUMNS:
            getattr(pool, name)[:] = table[name].to_numpy()
        return pool

    @classmethod
    def from_parquet(cls, path: str | os.PathLike) -> "SamplePool":
        try:
            table = pq.read_table(path)
        except Exception as err:
            raise ValueError(f"cannot read pool snapshot {str(path)!r}: {err}") from err
        return cls.from_table(table)
