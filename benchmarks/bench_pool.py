"""Pool and selector throughput at scale: the per-epoch bookkeeping must stay small next to training.

Prints figures for a pool of N rows (default 10M) and the ratio against a row-by-row Python
update measured in the same process.

    .venv/bin/python benchmarks/bench_pool.py [--rows 10000000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from raydata_agent.config import SelectionConfig
from raydata_agent.pool import SamplePool
from raydata_agent.selectors import build_selector


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=256, help="ids per record() call, as a worker sends them")
    args = parser.parse_args()
    n = args.rows
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    pool = SamplePool(rng.integers(0, 1000, n))
    build_s = time.perf_counter() - start
    numeric_bytes = sum(getattr(pool, c).nbytes for c in ("label", "weight", "loss", "entropy", "difficulty",
                                                          "uncertainty", "reward", "times_selected",
                                                          "last_epoch_seen"))

    ids = rng.choice(n, args.batch, replace=False)
    values = rng.random(args.batch).astype(np.float32)
    vec = timed(lambda: pool.update(ids, epoch=1, loss=values, reward=values, difficulty=values))

    def row_by_row():
        for i, v in zip(ids.tolist(), values.tolist()):
            pool.loss[i] = v
            pool.reward[i] = v
            pool.difficulty[i] = v
            pool.last_epoch_seen[i] = 1

    loop = timed(row_by_row)
    pool.update(pool.ids, epoch=1, loss=rng.exponential(1.0, n), reward=rng.random(n))

    print(f"pool rows: {n:,}   build {build_s:.2f}s   numeric columns {numeric_bytes / 2**20:.0f} MiB")
    print(f"{'figure':44s} {'value':>12s} {'baseline':>12s} {'ratio':>8s}")
    print(f"{'record(): one batch of ' + str(args.batch) + ' ids, vectorised':44s} {vec * 1e6:10.1f}us "
          f"{loop * 1e6:10.1f}us {loop / vec:7.1f}x  (baseline: row-by-row Python)")
    epoch_updates = n / args.batch
    print(f"{'record() for one full epoch of updates':44s} {vec * epoch_updates:10.2f}s  "
          f"{loop * epoch_updates:10.2f}s {loop / vec:7.1f}x")
    for name in ("random_dynamic", "infobatch", "greedy", "ucb"):
        sel = build_selector(SelectionConfig(selector=name, ratio=0.5), n, 10, seed=0)
        t = timed(lambda: sel.select(pool, 2), repeat=1)
        print(f"{'select() ' + name + ' at ratio 0.5':44s} {t:10.2f}s")
    t = timed(lambda: pool.table(), repeat=1)
    print(f"{'table(): Arrow view of the pool':44s} {t:10.3f}s")


if __name__ == "__main__":
    main()
