"""Accuracy against cost for several selectors and seeds, on one local Ray cluster.

    .venv/bin/python benchmarks/compare_selectors.py \
        --selectors data_agent lead greedy infobatch random_dynamic full --seeds 0 1 2 [key=value ...]

Prints final validation metric and cost fraction per selector (mean +- std over seeds) and the
ratio of each selector's metric to the full-data run measured in the same process.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import ray

from raydata_agent.config import load_config
from raydata_agent.runner import run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--selectors", nargs="+",
                        default=["data_agent", "lead", "greedy", "infobatch", "random_dynamic", "full"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("overrides", nargs="*", help="extra section.key=value for every run")
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tmp = tempfile.mkdtemp(prefix="compare_")
    results: dict[str, list[tuple[float, float, float]]] = {}
    for name in args.selectors:
        for seed in args.seeds:
            cfg = load_config(None, [f"selection.selector={name}", f"selection.ratio={args.ratio}",
                                     f"train.seed={seed}", f"data.seed={seed}", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
                                     "tracking.experiment=compare_selectors", f"ray.storage_path={tmp}/runs",
                                     "tracking.log_snapshots=false", *args.overrides])
            res = run(cfg, progress=False)
            wall = sum(h["epoch_time_s"] for h in res.history)
            results.setdefault(name, []).append((res.final["val_metric"], res.final["cost_fraction"], wall))
            print(f"{name:15s} seed {seed}: metric {res.final['val_metric']:.4f}  "
                  f"cost {res.final['cost_fraction']:.3f}  wall {wall:.1f}s", flush=True)
    ray.shutdown()

    full = np.mean([m for m, _, _ in results["full"]]) if "full" in results else None
    print(f"\nratio {args.ratio}, seeds {args.seeds}, overrides {args.overrides}; MLflow: sqlite:///{tmp}/mlflow.db")
    print(f"{'selector':15s} {'final metric':>16s} {'cost fraction':>14s} {'epoch wall s':>13s} {'vs full':>8s}")
    for name, rows in results.items():
        m, c, w = (np.array(x) for x in zip(*rows))
        vs = f"{m.mean() / full:7.3f}x" if full else "      -"
        print(f"{name:15s} {m.mean():8.4f} +- {m.std():.4f} {c.mean():14.3f} {w.mean():13.1f} {vs}")


if __name__ == "__main__":
    main()
