"""The orchestration tax: one epoch under Ray Train with the pool and a selector, against a plain
PyTorch loop with a DataLoader on the same subset, model and batch size; and where a run's start-up goes.

1. A real run (`raydata_agent.runner.run`: Ray Train worker, score store actor, selector, MLflow).
   Its last selection epoch's subset is read back from the pool snapshot (`last_epoch_seen`).
2. In this same process tree (the driver), a plain loop: `DataLoader(TensorDataset(subset))`, the same
   model class and initial seed, optimizer and batch size, one thread per worker CPU like the Ray
   worker; one warm-up epoch, then the timed epoch.
3. The ratio of the Ray epoch (training part, and training + end-of-epoch critical path without
   validation) to the plain epoch.
4. The start-up split of the run, end to end: imports in this process, Ray start, data load (timed
   once here), run() call to the worker process start (store actor, TorchTrainer controller,
   placement), worker boot and imports, worker setup (data, model), training epochs, and the rest
   (validation, checkpoints, teardown, plots).

    .venv/bin/python benchmarks/orchestration_tax.py                         # greedy, shapes, 3 epochs
    .venv/bin/python benchmarks/orchestration_tax.py --device cuda task.model=resnet18 --json /tmp/tax.json

JSON (--json PATH): {machine, date, command, config, subset_size, ray_epoch_train_s, ray_epoch_critical_s,
  plain_epoch_s, ratio_train, ratio_critical, startup: {imports_s, ray_start_s, data_load_s,
  to_worker_start_s, worker_import_s, worker_setup_s, epochs_s, rest_s, end_to_end_s}}
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import time

_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULTS = ["selection.selector=greedy", "selection.ratio=0.5", "train.epochs=3", "data.num_samples=3000",
            "data.val_samples=600", "tracking.log_snapshots=false"]


def plain_epoch(cfg, ids, device: str, precision: str | None = None) -> float:
    """Seconds of one epoch of a plain PyTorch loop over `ids` (after one warm-up epoch), under the
    run's autocast (`precision`, default train.precision) and memory format, as train.py trains."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from raydata_agent.tasks import build_task
    from raydata_agent.train import autocast, build_optimizer

    precision = precision or cfg.train.precision

    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(cfg.train.cpus_per_worker)
    task = build_task(cfg)
    train, _ = task.load_data()
    model = task.build_model().to(device)
    if device == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    data = TensorDataset(torch.from_numpy(train.images[ids]), torch.from_numpy(train.labels[ids]))
    loader = DataLoader(data, batch_size=cfg.train.batch_size, shuffle=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = 0.0
    for _ in range(2):  # the first epoch warms up allocators and kernels, as epoch 0 does under Ray
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            x, y = x.to(device).float().div_(255.0), y.to(device)
            with autocast(precision, torch.device(device)):
                loss = loss_fn(model(x)[0], y)  # the classifier returns (logits, features)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if device == "cuda":
            torch.cuda.synchronize()  # the epoch's last kernels count too
        seconds = time.perf_counter() - start
    return seconds


def measure(overrides: list[str], device: str = "cpu", started: float | None = None) -> dict:
    """The real run (DEFAULTS, then `overrides`) and the plain loop on its last selection epoch's
    subset; the start-up split counts from `started` (perf_counter; default: now, so no imports).
    Joins the Ray cluster already started, or starts a local one (left running)."""
    import pyarrow.parquet as pq
    import torch  # noqa: F401

    import raydata_agent as rda
    from raydata_agent.cluster import init_ray  # timed apart from run(): a helper, not public API
    from raydata_agent.config import resolve_paths  # the paths run() resolves, resolved once here to time it
    from raydata_agent.tasks import build_task  # the data a run loads, loaded here to time it: internal

    started = time.perf_counter() if started is None else started
    imports_s = time.perf_counter() - started
    tmp = tempfile.mkdtemp(prefix="orchestration_tax_")
    overrides = [*DEFAULTS, f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"ray.storage_path={tmp}/runs",
                 "tracking.experiment=orchestration_tax", *(["train.use_gpu=true"] if device == "cuda" else []),
                 *overrides]
    cfg = resolve_paths(rda.load_config(None, overrides))
    start = time.perf_counter()
    init_ray(cfg)
    ray_start_s = time.perf_counter() - start
    start = time.perf_counter()
    build_task(cfg).load_data()
    data_load_s = time.perf_counter() - start

    run_unix = time.time()
    start = time.perf_counter()
    result = rda.run(cfg, progress=False)
    run_s = time.perf_counter() - start
    end_to_end_s = time.perf_counter() - started

    history = result.history
    first = history[0]
    epochs_s = sum(h["epoch_time_s"] for h in history)
    to_worker_start_s = first["worker_process_start_unix"] - run_unix
    startup = {"imports_s": imports_s, "ray_start_s": ray_start_s, "data_load_s": data_load_s,
               "to_worker_start_s": to_worker_start_s, "worker_import_s": first["worker_import_s"],
               "worker_setup_s": first["worker_setup_s"], "epochs_s": epochs_s}
    startup["rest_s"] = end_to_end_s - sum(startup.values())
    startup["end_to_end_s"] = end_to_end_s

    # The last selection epoch: its subset from the pool snapshot written after it (1-based file names).
    selection = [h for h in history if not h["full_epoch"]]
    if not selection:
        raise SystemExit("no selection epoch in this run: use a selector other than full and ratio < 1")
    row = selection[-1]
    e = int(row["epoch"])
    snapshot = Path(cfg.ray.storage_path) / result.run_id / "pool"
    path = next(p for p in (snapshot / f"pool_epoch_{e + 1:03d}.parquet", snapshot / f"pool_epoch_{e:03d}.parquet")
                if p.is_file() and (pq.read_table(p, columns=["last_epoch_seen"])["last_epoch_seen"].to_numpy() == e).any())
    seen = pq.read_table(path, columns=["id", "last_epoch_seen"])
    ids = seen["id"].to_numpy()[seen["last_epoch_seen"].to_numpy() == e]
    plain_s = plain_epoch(cfg, ids, "cuda" if device == "cuda" else "cpu")

    ray_train_s = row["train_time_s"]
    nxt = next((h for h in history if h["epoch"] == e + 1), {})
    ray_critical_s = (ray_train_s + row.get("selector_update_s", 0.0) + row.get("snapshot_s", 0.0)
                      + row.get("mlflow_log_s", 0.0) + nxt.get("prev_checkpoint_s", 0.0) + nxt.get("plan_wait_s", 0.0))
    return {"config": overrides, "epoch": e, "batch_size": cfg.train.batch_size, "model": cfg.task.model,
            "selector": cfg.selection.selector, "subset_size": int(len(ids)), "ray_epoch_train_s": ray_train_s,
            "ray_epoch_critical_s": ray_critical_s, "plain_epoch_s": plain_s,
            "ratio_train": ray_train_s / plain_s, "ratio_critical": ray_critical_s / plain_s,
            "run_s": run_s, "startup": startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("overrides", nargs="*", help="section.key=value for the run (after the defaults)")
    args = parser.parse_args()

    import ray

    m = measure(args.overrides, args.device, started=_START)
    ray.shutdown()
    startup, end_to_end_s = m["startup"], m["startup"]["end_to_end_s"]
    print(f"\nepoch {m['epoch'] + 1} ({m['subset_size']} samples, batch {m['batch_size']}, {m['model']}, {args.device}):")
    print(f"  Ray Train + pool + {m['selector']}: training {m['ray_epoch_train_s']:.2f}s, with the epoch-end "
          f"critical path (no validation) {m['ray_epoch_critical_s']:.2f}s")
    print(f"  plain PyTorch loop + DataLoader:    {m['plain_epoch_s']:.2f}s")
    print(f"  ratio: training {m['ratio_train']:.2f}x, with epoch end {m['ratio_critical']:.2f}x")
    print(f"\nstart-up split of the whole run ({m['run_s']:.1f}s in run(), {end_to_end_s:.1f}s end to end "
          f"without the plain loop):")
    for k, v in startup.items():
        print(f"  {k:20s} {v:7.2f}s  {100 * v / end_to_end_s:5.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), device {args.device}",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            **{k: m[k] for k in ("config", "subset_size", "ray_epoch_train_s", "ray_epoch_critical_s",
                                 "plain_epoch_s", "ratio_train", "ratio_critical", "startup")}},
            indent=1))


if __name__ == "__main__":
    main()
