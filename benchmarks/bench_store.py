"""Score store and agent throughput: how fast the real store (and the real Data Agent) absorb signals.

K simulated training workers (Ray actors) each hold a `SelectionSession` on the real `ScoreStore`
actor, exactly as train.py's workers do, and push one epoch's `record` batches as fast as the store
accepts them: per-sample loss, class probabilities and (for selectors that use them) d-dimensional
pooled features, with the session's bounded fire-and-forget sends. No model runs: this measures
the selection machinery alone. Then the epoch-end critical path: `finish_epoch` (selector update,
PPO update for the agent, Parquet snapshot) + the next epoch's `plan`, which every worker waits on.

    .venv/bin/python benchmarks/bench_store.py                                # defaults below
    .venv/bin/python benchmarks/bench_store.py --selectors greedy data_agent --dims 512 --rows 50000
    .venv/bin/python benchmarks/bench_store.py --device cuda --json /tmp/bench_store.json
    .venv/bin/python benchmarks/bench_store.py --selectors data_agent --schedules deterministic async

A worker stops after --max-seconds; if the epoch was not complete by then the record says
`epoch_complete: false` (the critical path is then measured on the part recorded).
data_agent at d=2048 and N=1M is skipped unless --allow-large: its per-sample feature table alone
is 8 GB.

JSON (--json PATH): {"machine", "date", "command", "records": [one per (selector, d, N):
  {selector, schedule (data_agent's agent.schedule), d, n_rows, workers, batch, samples, wall_s,
   samples_per_s, epoch_complete, finish_epoch_s, plan_s, critical_path_s}]}
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_worker_class():
    import ray

    @ray.remote(num_cpus=0)
    class SimulatedWorker:
        """One training worker without a model: plan, then record batches through a real session."""

        def __init__(self, store, cfg, d: int, batch: int, device: str, seed: int, agent=None,
                     n_rows: int = 0):
            import torch

            import raydata_agent as rda

            torch.set_num_threads(1)
            self.session = rda.SelectionSession(store, cfg, agent=agent)  # the agent acts here
            gen = torch.Generator().manual_seed(seed)
            self.loss = (torch.rand(batch, generator=gen) * 3 + 0.05).to(device)
            self.probs = torch.randn(batch, 10, generator=gen).softmax(-1).to(device)
            self.features = torch.randn(batch, d, generator=gen).to(device)
            self.batch = batch
            self.seed, self.n_rows = seed, n_rows

        def ready(self) -> bool:
            """Start-up is not throughput: with the agent, import RLlib here and fetch the learner's
            first weights (it builds its LearnerGroup then). A training worker asks for them at its first
            batch and acts uniformly until they arrive; here they are waited for, so none of it is timed."""
            if self.session.agent is not None:
                from raydata_agent.agent.acting import WorkerActing
                from raydata_agent.agent.state import obs_dim

                cfg = self.session.cfg
                self.session.acting = WorkerActing(cfg.agent, self.session.agent, self.n_rows,
                                                   seed=self.seed, device=str(self.features.device))
                self.session.acting._refresh(obs_dim(self.features.shape[1], cfg.agent.state), wait=True)
            return True

        def run(self, epoch: int, rank: int, world: int, max_seconds: float) -> tuple[int, float, bool]:
            ids, _ = self.session.plan_epoch(epoch)
            ids = np.sort(ids)[rank::world]
            start, sent = time.perf_counter(), 0
            for i in range(0, len(ids), self.batch):
                b = ids[i:i + self.batch]
                n = len(b)
                self.session.record(b, self.loss[:n], probs=self.probs[:n], features=self.features[:n])
                sent += n
                if time.perf_counter() - start > max_seconds:
                    break
            self.session.flush()  # every signal is in the pool: what the epoch end waits for
            return sent, time.perf_counter() - start, sent == len(ids)

    return SimulatedWorker


def measure(selector: str, d: int, n_rows: int, args, worker_cls, snapshot_root: str,
            schedule: str | None = None) -> dict:
    import ray

    from raydata_agent.config import load_config
    from raydata_agent.score_store import ScoreStore

    cfg = load_config(None, [f"selection.selector={selector}", "selection.ratio=0.5", "train.epochs=4",
                             f"train.batch_size={args.batch}", "tracking.log_snapshots=false",
                             *([f"agent.schedule={schedule}"] if schedule else [])])
    agent = None
    if selector == "data_agent":
        from raydata_agent.agent import start_agent

        agent = start_agent(cfg, n_rows)
    labels = np.arange(n_rows) % 10
    store = ray.remote(ScoreStore).options(num_cpus=0).remote(
        cfg.to_dict(), labels, None, 10, None, tempfile.mkdtemp(dir=snapshot_root), agent)
    workers = [worker_cls.remote(store, cfg, d, args.batch, args.device, seed=k, agent=agent, n_rows=n_rows)
               for k in range(args.workers)]
    ray.get([w.ready.remote() for w in workers])  # process start and imports are not throughput
    ray.get(store.plan.remote(0))  # epoch 0: full data (warm-up)
    start = time.perf_counter()
    results = ray.get([w.run.remote(0, k, args.workers, args.max_seconds) for k, w in enumerate(workers)])
    wall = time.perf_counter() - start
    samples = sum(r[0] for r in results)
    complete = all(r[2] for r in results)
    t0 = time.perf_counter()
    ray.get(store.finish_epoch.remote(0, {"train_time_s": wall}))
    t1 = time.perf_counter()
    ray.get(store.plan.remote(1))
    t2 = time.perf_counter()
    for actor in [*workers, store] + ([agent] if agent is not None else []):
        ray.kill(actor)
    return {"selector": selector, "schedule": schedule, "d": d, "n_rows": n_rows, "workers": args.workers,
            "batch": args.batch, "samples": samples, "wall_s": wall, "samples_per_s": samples / wall, "epoch_complete": complete,
            "finish_epoch_s": t1 - t0, "plan_s": t2 - t1, "critical_path_s": t2 - t0}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--selectors", nargs="+", default=["greedy", "infobatch", "lead", "random_dynamic",
                                                           "data_agent"])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2, help="K simulated training workers")
    parser.add_argument("--batch", type=int, default=256, help="samples per record() call")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per worker and configuration")
    parser.add_argument("--allow-large", action="store_true", help="also data_agent at d=2048, N>=1M")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--num-cpus", type=int, default=2, help="of the local cluster started (no --address)")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting one")
    parser.add_argument("--schedules", nargs="+", choices=["deterministic", "async"], default=["deterministic"],
                        help="data_agent: one measurement per agent.schedule")
    parser.add_argument("--json", default=None)
    return parser


def main() -> None:
    args = build_parser().parse_args()

    import ray

    from raydata_agent.selectors import SELECTORS

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    worker_cls = make_worker_class()
    snapshot_root = tempfile.mkdtemp(prefix="bench_store_")
    records = []
    print(f"{'selector':28s} {'d':>5s} {'N':>9s} {'samples/s':>11s} {'complete':>8s} {'finish_epoch':>12s} "
          f"{'plan':>7s} {'critical path':>13s}", flush=True)
    try:
        for n_rows in args.rows:
            for selector, schedule in [(s, m) for s in args.selectors
                                       for m in (args.schedules if s == "data_agent" else ["-"])]:
                label = f"{selector} {schedule}" if schedule != "-" else selector
                for d in args.dims:
                    if selector == "data_agent" and d * n_rows * 4 >= 8e9 and not args.allow_large:
                        print(f"{label:28s} {d:5d} {n_rows:9d}  skipped: {d * n_rows * 4 / 1e9:.0f} GB of "
                              f"features (--allow-large)", flush=True)
                        continue
                    if not SELECTORS[selector].needs_features and d != args.dims[0]:
                        # Features are not sent to selectors that do not use them: d cannot matter.
                        rec = dict(next(r for r in records if r["selector"] == selector and r["n_rows"] == n_rows),
                                   d=d, same_as_d=args.dims[0])
                    else:
                        rec = measure(selector, d, n_rows, args, worker_cls, snapshot_root,
                                      schedule if schedule != "-" else None)
                    records.append(rec)
                    print(f"{label:28s} {d:5d} {n_rows:9d} {rec['samples_per_s']:11,.0f} "
                          f"{str(rec['epoch_complete']):>8s} {rec['finish_epoch_s']:11.2f}s {rec['plan_s']:6.2f}s "
                          f"{rec['critical_path_s']:12.2f}s" + ("  (not measured: d unused)" if "same_as_d" in rec
                                                                else ""), flush=True)
    finally:
        ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), device {args.device}",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "records": records}, indent=1))


if __name__ == "__main__":
    main()
