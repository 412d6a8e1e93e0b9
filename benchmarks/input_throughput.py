"""Input throughput: images/s a training worker gets, the old synchronous path against the new one.

Old: every batch decoded in the training step's own thread, one file after another (what
`ImageData.batch` did before the recipes landed). New: `data.decode_threads` threads decode a batch,
and `train.prefetched` reads the next batch while the current one trains (data.pipeline=in_memory).
Ray Data (data.pipeline=ray_data): the same ids stream through the session's selected-ids dataset,
decoded and augmented in map_batches tasks, and this process reads them with iter_torch_batches
as a Train worker reads its shard (one consumer: no split). All on the same ids, in the same run
(ratios are what to read on a shared machine).

Two measurements per set:
- `loader`: batches read back to back, no training (the input path's own ceiling);
- `epoch`: a real training step (the task's model, forward + backward + SGD) per batch, with the
  input path feeding it; `wait_share` = time the step waited for data / epoch time.
Sets: 32 px shapes in memory (augmented) and a generated 224 px JPEG imagefolder (written once).
Scaling (--scaling): one epoch of `raydata-agent run` through the Ray Data path at each of
--scaling-workers Train workers (default 1 2; the second epoch's train_time_s, a --scale-size JPEG
set, --model, selector full, on GPUs with --device cuda), as a speedup over the first count and a
fraction of linear.

    .venv/bin/python benchmarks/input_throughput.py --json /tmp/input.json
    .venv/bin/python benchmarks/input_throughput.py --images 2000 --size 224 --model resnet18 --device cuda

JSON keys (--json PATH): machine, date, command, records: [{set, path (old|new), measure (loader|epoch),
images, seconds, images_per_s, wait_share}], ratios: {set/measure: new_over_old, set/measure/ray_data and
/dataloader: over old}, scaling: [{workers, epoch_s, images_per_s, speedup, of_linear}].
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def epoch(task, model, data, ids, batch_size, device, prefetch: bool) -> tuple[float, float]:
    """(seconds, seconds waited for data) of one training pass over ids."""
    from raydata_agent.train import prefetched

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    chunks = [ids[s:s + batch_size] for s in range(0, len(ids), batch_size)]
    load = lambda chunk: data.batch(chunk, rng=rng)  # noqa: E731
    batches = prefetched(chunks, load) if prefetch else ((c, None, 0.0) for c in chunks)
    start, waited = time.perf_counter(), 0.0
    for chunk, batch, wait in batches:
        if batch is None:  # old path: read in the step's own thread
            read = time.perf_counter()
            batch = load(chunk)
            wait = time.perf_counter() - read
        waited += wait
        train_step(task, model, optimizer, batch, device)
    return time.perf_counter() - start, waited


def train_step(task, model, optimizer, batch, device) -> None:
    """The same SGD step on every path: forward (the task's), backward, update."""
    out = task.forward(model, batch, device)
    optimizer.zero_grad()
    out.loss.mean().backward()
    optimizer.step()


def measure(name, task, data, args, device) -> list[dict]:
    ids = np.random.default_rng(0).permutation(len(data))[:args.images]
    model = task.build_model().to(device)
    data.batch(ids[:args.batch_size], rng=np.random.default_rng(0))  # warm-up: imports, first allocations
    epoch(task, model, data, ids[:args.batch_size], args.batch_size, device, prefetch=True)
    records = []
    for path, threads, prefetch in (("old", 1, False), ("new", args.threads, True)):
        data.decode_threads = threads
        start = time.perf_counter()
        for s in range(0, len(ids), args.batch_size):
            data.batch(ids[s:s + args.batch_size], rng=np.random.default_rng(0))
        loader_s = time.perf_counter() - start
        records.append({"set": name, "path": path, "measure": "loader", "images": len(ids),
                        "seconds": loader_s, "images_per_s": len(ids) / loader_s, "wait_share": None})
        seconds, waited = epoch(task, model, data, ids, args.batch_size, device, prefetch)
        records.append({"set": name, "path": path, "measure": "epoch", "images": len(ids), "seconds": seconds,
                        "images_per_s": len(ids) / seconds, "wait_share": waited / seconds})
        print(f"{name:14s} {path:4s} loader {len(ids) / loader_s:8.0f} img/s   epoch {len(ids) / seconds:7.0f} img/s"
              f"   waiting for data {waited / seconds:6.1%}", flush=True)
    return records


def ray_data_records(name, task, data, overrides, args, device, tmp) -> list[dict]:
    """Loader and epoch through the Ray Data path: the session's dataset of the epoch's ids, decoded
    in map_batches tasks, read here with iter_torch_batches (prefetching)."""
    import raydata_agent
    from raydata_agent.config import load_config
    from raydata_agent.data.streaming import epoch_dataset, worker_batches

    session = raydata_agent.start_session(labels=data.labels, epochs=4, selector="full", ratio=1.0, use_ray=True,
                                          tracking_uri=f"sqlite:///{tmp}/mlflow.db", storage_path=f"{tmp}/runs",
                                          progress=False)
    cfg = load_config(None, [*overrides, "data.pipeline=ray_data", f"data.decode_threads={args.threads}",
                             f"data.stream_cpus={args.stream_cpus}"])
    dataset = epoch_dataset(session, data, cfg)
    model = task.build_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    records = []
    for epoch_index, measure_kind in enumerate(("warm-up", "loader", "epoch")):
        session.plan_epoch(epoch_index)
        start, waited, images = time.perf_counter(), 0.0, 0
        for ids, batch, wait, _ in worker_batches(dataset, args.batch_size, cfg.data.prefetch_batches):
            waited += wait
            if not images:  # the session's contract: a run records its samples (one batch an epoch is enough here)
                session.record(ids, torch.zeros(len(ids)))
            images += len(ids)
            if measure_kind == "epoch":
                train_step(task, model, optimizer, batch, device)
        seconds = time.perf_counter() - start
        session.end_epoch()
        if measure_kind == "warm-up":  # first execution: Ray Data's worker processes start and import
            continue
        records.append({"set": name, "path": "ray_data", "measure": measure_kind, "images": images,
                        "seconds": seconds, "images_per_s": images / seconds,
                        "wait_share": waited / seconds if measure_kind == "epoch" else None})
        print(f"{name:14s} ray_data {measure_kind:6s} {images / seconds:8.0f} img/s", flush=True)
    session.close()
    return records


class ChunkReader(torch.utils.data.Dataset):
    """A torch Dataset whose items are whole batches: `reader[ids]` decodes and augments them
    (ImageData.read), so a DataLoader worker process builds a batch as our own reader does."""

    def __init__(self, data):
        self.data = data
        self.rng = None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, ids):
        if self.rng is None:  # one generator per DataLoader worker process
            info = torch.utils.data.get_worker_info()
            self.rng = np.random.default_rng([0, info.id if info else 0])
        return self.data.read(ids, rng=self.rng)[1:]


def dataloader_records(name, task, data, args, device) -> list[dict]:
    """Loader and epoch through a torch DataLoader with --loader-workers worker processes (each
    decoding whole batches with one thread), the non-Ray alternative to Ray Data on one machine."""
    ids = np.random.default_rng(0).permutation(len(data))[:args.images]
    chunks = [ids[s:s + args.batch_size] for s in range(0, len(ids), args.batch_size)]
    data.decode_threads = 1
    loader = torch.utils.data.DataLoader(ChunkReader(data), batch_size=None, sampler=chunks,
                                         num_workers=args.loader_workers, persistent_workers=True,
                                         prefetch_factor=2)
    model = task.build_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    records = []
    for measure_kind in ("warm-up", "loader", "epoch"):  # warm-up: the worker processes start
        start, waited, images = time.perf_counter(), 0.0, 0
        batches = iter(loader)
        while True:
            wait_start = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            waited += time.perf_counter() - wait_start
            images += len(batch[1])
            if measure_kind == "epoch":
                train_step(task, model, optimizer, batch, device)
        seconds = time.perf_counter() - start
        if measure_kind == "warm-up":
            continue
        records.append({"set": name, "path": "dataloader", "measure": measure_kind, "images": images,
                        "seconds": seconds, "images_per_s": images / seconds,
                        "wait_share": waited / seconds if measure_kind == "epoch" else None})
        print(f"{name:14s} dataloader {measure_kind:6s} {images / seconds:8.0f} img/s", flush=True)
    del loader
    return records


def scaling(args, tmp) -> list[dict]:
    """One epoch of a full run through the Ray Data path at each of --scaling-workers Train workers."""
    import raydata_agent as rda
    from raydata_agent.data.jpeg_folder import write_image_folder  # a generated set: a helper, not public API

    folder = write_image_folder(Path(tmp) / f"scale_{args.scale_size}", train=args.images, val=64,
                                size=args.scale_size)
    rows = []
    for workers in args.scaling_workers:
        cfg = rda.load_config(None, ["data.name=imagefolder", f"data.path={folder}", f"data.image_size={args.scale_size}",
                                 "data.pipeline=ray_data", f"data.stream_cpus={args.stream_cpus}",
                                 f"data.decode_threads={args.threads}", "selection.selector=full",
                                 "train.epochs=2", f"train.batch_size={args.batch_size}", f"task.model={args.model}",
                                 f"train.num_workers={workers}", f"tracking.uri=sqlite:///{tmp}/scale.db",
                                 f"ray.storage_path={tmp}/scale_runs",
                                 *(["train.use_gpu=true"] if args.device == "cuda" else [])])
        history = rda.run(cfg, progress=False).history
        seconds = history[-1]["train_time_s"]
        rows.append({"workers": workers, "epoch_s": seconds, "images_per_s": args.images / seconds})
        print(f"scaling: {workers} worker(s): epoch {seconds:.1f} s, {args.images / seconds:.0f} img/s", flush=True)
    for row in rows:
        row["speedup"] = rows[0]["epoch_s"] / row["epoch_s"]
        linear = row["workers"] / rows[0]["workers"]
        row["of_linear"] = row["speedup"] / linear
        print(f"scaling: {row['workers']} / {rows[0]['workers']} worker(s) {row['speedup']:.2f}x "
              f"(linear: {linear:.2f}x, so {row['of_linear']:.2f} of linear)", flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1024, help="images per measurement")
    parser.add_argument("--size", type=int, default=224, help="JPEG set's image size")
    parser.add_argument("--model", default="small_cnn", help="small_cnn | resnet18 | resnet50 ...")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=4, help="new path's decode threads")
    parser.add_argument("--folder", default=None, help="where the JPEG set is written (default: a temp dir)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("--ray-data", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the Ray Data path (data.pipeline=ray_data)")
    parser.add_argument("--stream-cpus", type=float, default=0.5, help="data.stream_cpus of the Ray Data path")
    parser.add_argument("--ray-cpus", type=int, default=4, help="logical CPUs of the local Ray cluster")
    parser.add_argument("--loader-workers", type=int, default=2,
                        help="worker processes of the torch DataLoader baseline (0: skip it)")
    parser.add_argument("--scaling", action="store_true", help="an epoch at several Train worker counts (Ray Data path)")
    parser.add_argument("--scaling-workers", type=int, nargs="+", default=[1, 2], help="Train worker counts (first: the base)")
    parser.add_argument("--scale-size", type=int, default=64, help="image size of the scaling run's JPEG set")
    return parser


def jpeg_set(args) -> tuple[str, list[str]]:
    """(name, config overrides) of the --size px JPEG imagefolder, written once under --folder."""
    from raydata_agent.data.jpeg_folder import write_image_folder

    folder = Path(args.folder or tempfile.mkdtemp()) / f"shapes_jpeg_{args.size}"
    start = time.perf_counter()
    write_image_folder(folder, train=args.images, val=64, size=args.size)
    print(f"[input] JPEG set ({args.images} images at {args.size}px): {time.perf_counter() - start:.1f} s", flush=True)
    return f"{args.size}px jpeg", ["data.name=imagefolder", f"data.path={folder}", f"data.image_size={args.size}",
                                   f"task.model={args.model}"]


def measure_sets(sets: dict[str, list[str]], args, tmp: str) -> list[dict]:
    """Every input path (old, new, DataLoader, Ray Data as --loader-workers / --ray-data say) on each
    set; Ray Data joins the Ray cluster already started."""
    from raydata_agent.config import load_config
    from raydata_agent.tasks import build_task

    device = torch.device(args.device)
    records = []
    for name, overrides in sets.items():
        task = build_task(load_config(None, overrides))
        train, _ = task.load_data()
        records += measure(name, task, train, args, device)
        if args.loader_workers:
            records += dataloader_records(name, task, train, args, device)
        if args.ray_data:
            records += ray_data_records(name, task, train, overrides, args, device, tmp)
    return records


def ratios_of(records: list[dict], names) -> dict[str, float]:
    """Each path's images/s over the old (synchronous) path's, per set and measure."""
    ratios = {}
    for name in names:
        for kind in ("loader", "epoch"):
            old, new = (next(r for r in records if r["set"] == name and r["measure"] == kind and r["path"] == p)
                        for p in ("old", "new"))
            ratios[f"{name}/{kind}"] = new["images_per_s"] / old["images_per_s"]
            print(f"{name:14s} {kind:6s} new/old {ratios[f'{name}/{kind}']:.2f}x")
            for other in ("dataloader", "ray_data"):
                found = next((r for r in records if r["set"] == name and r["measure"] == kind
                              and r["path"] == other), None)
                if found:
                    ratios[f"{name}/{kind}/{other}"] = found["images_per_s"] / old["images_per_s"]
                    print(f"{name:14s} {kind:6s} {other}/old {ratios[f'{name}/{kind}/{other}']:.2f}x")
    return ratios


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    jpeg_name, jpeg_overrides = jpeg_set(args)
    sets = {
        "32px memory": ["data.name=shapes", f"data.num_samples={args.images}", "data.val_samples=64",
                        "data.augment=true", "task.model=small_cnn"],
        jpeg_name: jpeg_overrides,
    }
    scale_rows = []
    tmp = tempfile.mkdtemp()
    if args.ray_data or args.scaling:
        from raydata_agent.cluster import init_ray  # starts Ray as a run would: a helper, not public API
        from raydata_agent.config import Config, RayConfig

        init_ray(Config(ray=RayConfig(num_cpus=args.ray_cpus)))
    records = measure_sets(sets, args, tmp)
    if args.scaling:
        scale_rows = scaling(args, tmp)
    ratios = ratios_of(records, sets)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs" + (
                f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "records": records, "ratios": ratios, "scaling": scale_rows}, indent=2))
        print(f"[input] JSON: {args.json}")


if __name__ == "__main__":
    main()
