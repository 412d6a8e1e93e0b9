"""Pool and selector throughput at scale: the per-epoch bookkeeping must stay small next to training.

For pools of N rows (default 1M and 10M) every step is timed next to a plain-NumPy baseline doing
the same arithmetic on bare arrays in the same process, so the ratio shows what the pool and the
selectors add (a ratio near 1 means no overhead beyond the arithmetic itself):
- record(): one batch of --batch ids updating loss, reward, difficulty and last_epoch_seen
  (baseline: the same four fancy-indexed assignments), and extrapolated to one full epoch;
- mark_selected() of a half-pool selection (baseline: `z[ids] += 1`);
- select() of each selector at ratio 0.5 (baseline: top-k by np.argpartition and a sort, or for the
  random selectors a uniform choice and a sort);
- table(): the Arrow view (baseline: pa.table of the same arrays).
Peak RSS of the process after each N (N ascending, so the last is the largest pool's peak).

    .venv/bin/python benchmarks/bench_pool.py                     # 1M and 10M rows
    .venv/bin/python benchmarks/bench_pool.py --rows 1000000 --json /tmp/bench_pool.json

`--device cuda` is accepted for a uniform interface: the pool lives in host memory by design (the
score store is a CPU actor), so the figures do not change with it.

JSON (--json PATH): {machine, date, command, device, results: [{rows, build_s, numeric_mib, peak_rss_mib,
  steps: [{step, seconds, baseline_seconds, ratio}]}]}
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raydata_agent.config import SelectionConfig  # noqa: E402
from raydata_agent.pool import FLOAT_COLUMNS, INT_COLUMNS, SamplePool  # noqa: E402
from raydata_agent.selectors import build_selector  # noqa: E402

SELECTORS = ("random_dynamic", "random_static", "infobatch", "greedy", "ucb", "lead")


def timed(fn, repeat=3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(n: int, batch: int) -> dict:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    pool = SamplePool(rng.integers(0, 1000, n))
    build_s = time.perf_counter() - start
    numeric = sum(getattr(pool, c).nbytes for c in ("label",) + FLOAT_COLUMNS + INT_COLUMNS)
    steps = []

    def step(name, seconds, baseline):
        steps.append({"step": name, "seconds": seconds, "baseline_seconds": baseline, "ratio": seconds / baseline})

    ids = rng.choice(n, batch, replace=False)
    vals = rng.random(batch).astype(np.float32)
    bare = {c: np.zeros(n, np.float32) for c in ("loss", "reward", "difficulty")}
    bare_seen = np.full(n, -1, np.int32)

    def plain_record():
        for c in bare:
            bare[c][ids] = vals
        bare_seen[ids] = 1

    rec = timed(lambda: pool.update(ids, epoch=1, loss=vals, reward=vals, difficulty=vals), repeat=20)
    base = timed(plain_record, repeat=20)
    step(f"record(): one batch of {batch}", rec, base)
    step("record(): one full epoch (extrapolated)", rec * n / batch, base * n / batch)

    half = np.sort(rng.choice(n, n // 2, replace=False)).astype(np.int64)
    counts = np.zeros(n, np.int32)

    def plain_mark():
        counts[half] += 1

    step("mark_selected(): half the pool", timed(lambda: pool.mark_selected(half)), timed(plain_mark))

    pool.update(pool.ids, epoch=1, loss=rng.exponential(1.0, n), reward=rng.random(n), idu=rng.exponential(1.0, n))
    k = n // 2
    weights = pool.reward.copy()

    def plain_topk():
        np.sort(np.argpartition(-weights, k - 1)[:k])

    def plain_choice():
        np.sort(rng.choice(n, k, replace=False))

    topk, choice = timed(plain_topk, repeat=1), timed(plain_choice, repeat=1)
    for name in SELECTORS:
        sel = build_selector(SelectionConfig(selector=name, ratio=0.5), n, 10, seed=0)
        t = timed(lambda: sel.select(pool, 2), repeat=1)
        step(f"select(): {name} at ratio 0.5", t, choice if name.startswith("random") else topk)

    cols = {"id": pool.ids, "label": pool.label, "source": pool.source,
            **{c: getattr(pool, c) for c in FLOAT_COLUMNS + INT_COLUMNS}}
    step("table(): Arrow view", timed(pool.table, repeat=1), timed(lambda: pa.table(cols), repeat=1))
    return {"rows": n, "build_s": build_s, "numeric_mib": numeric / 2**20, "peak_rss_mib": peak_rss_mib(),
            "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=256, help="ids per record() call, as a worker sends them")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    for n in sorted(args.rows):
        res = bench(n, args.batch)
        results.append(res)
        print(f"\npool rows: {n:,}   build {res['build_s']:.2f}s   numeric columns {res['numeric_mib']:.0f} MiB   "
              f"peak RSS so far {res['peak_rss_mib']:.0f} MiB")
        print(f"{'step':44s} {'seconds':>10s} {'numpy':>10s} {'ratio':>7s}")
        for s in res["steps"]:
            print(f"{s['step']:44s} {s['seconds']:10.4f} {s['baseline_seconds']:10.4f} {s['ratio']:6.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{os.cpu_count()} CPUs ({platform.machine()})", "device": args.device,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "results": results}, indent=1))


if __name__ == "__main__":
    main()
