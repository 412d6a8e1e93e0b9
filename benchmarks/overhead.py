"""Where an epoch's time goes, for a real run: training against the selection machinery around it.

Runs one real training run (Ray Train worker, score store actor, Data Agent actor for data_agent,
MLflow) and reads the timers it logs every epoch (train.py, session.py, score_store.py):

  on the worker (the critical path):
    forward_s          data batch + forward pass (the task's per-sample loss, probabilities, features)
    backward_s         zero_grad + backward + optimizer step
    signals_s          per-sample signals from the forward outputs (signals.py)
    act_s              the Data Agent acting on the batch's features, in the worker (data_agent only)
    send_s             handing record batches to the store (fire and forget; waits only on back-pressure)
    flush_s            waiting at the epoch's end until the store has absorbed every record
    plan_wait_s        asking the store for the epoch's subset (selection, agent weights included)
    eval_s             validation
    prev_checkpoint_s  model + pool checkpoint and Ray Train report (of the previous epoch)
  in the score store actor, at the epoch's end (the critical path):
    selector_update_s  the selector's update (for the Data Agent: collecting its learner's update)
    snapshot_s         the pool's Parquet snapshot
    mlflow_log_s       the epoch's MLflow metrics (and snapshot artifact)
  in the score store actor while the worker trains (overlapped; it shows in flush_s if it lags):
    store_record_s     all record() calls, of which selector_observe_s = the selector's observe
    plan_s             the selection itself (inside plan_wait_s)

Prints seconds per epoch (mean over the selection epochs, and the warm-up epoch) and each item's
share of the epoch's wall time (train_time_s + eval_s + end-of-epoch items + checkpoint).

    .venv/bin/python benchmarks/overhead.py                              # data_agent, shapes, 4 epochs
    .venv/bin/python benchmarks/overhead.py selection.selector=greedy train.epochs=6 --json /tmp/overhead.json
    .venv/bin/python benchmarks/overhead.py --device cuda task.model=resnet18 data.num_samples=50000

JSON (--json PATH): {machine, date, command, config (overrides), run_id, epochs: [per-epoch dict of the
keys above + epoch_wall_s], selection_mean: {key: seconds}, share: {key: fraction of epoch_wall_s}}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CRITICAL = ["forward_s", "backward_s", "signals_s", "act_s", "send_s", "flush_s", "plan_wait_s", "eval_s",
            "selector_update_s", "snapshot_s", "mlflow_log_s", "prev_checkpoint_s"]
OVERLAPPED = ["store_record_s", "selector_observe_s", "plan_s"]
DEFAULTS = ["selection.selector=data_agent", "selection.ratio=0.5", "train.epochs=4", "data.num_samples=3000",
            "data.val_samples=2000"]


def epoch_wall(row: dict) -> float:
    return (row.get("train_time_s", 0.0) + row.get("eval_s", 0.0) + row.get("selector_update_s", 0.0)
            + row.get("snapshot_s", 0.0) + row.get("mlflow_log_s", 0.0))


def measure(overrides: list[str], device: str = "cpu", progress: bool = True) -> dict:
    """One real run (DEFAULTS, then `overrides`) on the Ray cluster already started, or a new local
    one: its per-epoch timers, their mean over the selection epochs and each item's share of the epoch."""
    import raydata_agent as rda

    tmp = tempfile.mkdtemp(prefix="overhead_")
    config = [*DEFAULTS, f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"ray.storage_path={tmp}/runs",
              "tracking.experiment=overhead", *(["train.use_gpu=true"] if device == "cuda" else []), *overrides]
    result = rda.run(rda.load_config(None, config), progress=progress)

    history = result.history
    # The checkpoint of epoch e is measured when epoch e+1 starts: shift it back onto its epoch.
    rows = []
    for i, h in enumerate(history):
        row = {k: float(h.get(k, 0.0)) for k in CRITICAL + OVERLAPPED}
        row["prev_checkpoint_s"] = float(history[i + 1].get("prev_checkpoint_s", np.nan)) if i + 1 < len(history) else np.nan
        row["epoch_wall_s"] = epoch_wall(h) + (0.0 if np.isnan(row["prev_checkpoint_s"]) else row["prev_checkpoint_s"])
        row["full_epoch"] = int(h["full_epoch"])
        rows.append(row)
    keys = CRITICAL + OVERLAPPED + ["epoch_wall_s"]
    selection = [r for r in rows if not r["full_epoch"]] or rows
    mean = {k: float(np.nanmean([r[k] for r in selection])) for k in keys}
    share = {k: mean[k] / mean["epoch_wall_s"] for k in keys if k != "epoch_wall_s"}
    return {"config": config, "run_id": result.run_id, "epochs": rows, "selection_epochs": len(selection),
            "selection_mean": mean, "share": share}


def print_table(measured: dict) -> None:
    rows, mean, share = measured["epochs"], measured["selection_mean"], measured["share"]
    keys = CRITICAL + OVERLAPPED + ["epoch_wall_s"]
    warm = rows[0]
    print(f"\nrun {measured['run_id']}; {measured['selection_epochs']} selection epochs of {len(rows)}")
    print(f"{'item':20s} {'warm-up epoch s':>16s} {'selection epoch s':>18s} {'share':>7s}")
    for k in keys:
        tag = "  (store actor, overlapped)" if k in OVERLAPPED else ""
        sh = f"{100 * share[k]:6.1f}%" if k in share else ""
        print(f"{k:20s} {warm[k]:16.3f} {mean[k]:18.3f} {sh:>7s}{tag}")
    accounted = sum(mean[k] for k in CRITICAL)
    print(f"{'(critical items sum)':20s} {'':16s} {accounted:18.3f} {100 * accounted / mean['epoch_wall_s']:6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("--schedules", nargs="+", choices=["deterministic", "async"], default=None,
                        help="one run per agent.schedule, and the ratio of their epoch times")
    parser.add_argument("overrides", nargs="*", help="section.key=value for the run (after the defaults)")
    args = parser.parse_args()

    import ray

    runs = []
    for schedule in args.schedules or [None]:
        measured = measure([*args.overrides, *([f"agent.schedule={schedule}"] if schedule else [])], args.device)
        ray.shutdown()
        print_table(measured)
        runs.append({"schedule": schedule, **measured})
    if len(runs) > 1:
        base = runs[-1]
        for r in runs[:-1]:
            sel = r["selection_mean"]["epoch_wall_s"] / base["selection_mean"]["epoch_wall_s"]
            warm = r["epochs"][0]["epoch_wall_s"] / base["epochs"][0]["epoch_wall_s"]
            print(f"\n{r['schedule']} / {base['schedule']}: selection epoch wall x{sel:.3f}, warm-up epoch x{warm:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), device {args.device}",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            **({"runs": runs} if len(runs) > 1 else {k: v for k, v in runs[0].items() if k != "schedule"})},
            indent=1))


if __name__ == "__main__":
    main()
