"""Input throughput: images/s a training worker gets, the old synchronous path against the new one.

Old: every batch decoded in the training step's own thread, one file after another (what
`ImageData.batch` did before the recipes landed). New: `data.decode_threads` threads decode a batch,
and `train.prefetched` reads the next batch while the current one trains. Both in one process, on
the same ids, in the same run (ratios are what to read on a shared machine).

Two measurements per set:
- `loader`: batches read back to back, no training (the input path's own ceiling);
- `epoch`: a real training step (the task's model, forward + backward + SGD) per batch, with the
  input path feeding it; `wait_share` = time the step waited for data / epoch time.
Sets: 32 px shapes in memory (augmented) and a generated 224 px JPEG imagefolder (written once).

    .venv/bin/python benchmarks/input_throughput.py --json /tmp/input.json
    .venv/bin/python benchmarks/input_throughput.py --images 2000 --size 224 --model resnet18 --device cuda

JSON keys (--json PATH): machine, date, command, records: [{set, path (old|new), measure (loader|epoch),
images, seconds, images_per_s, wait_share}], ratios: {set/measure: new_over_old}.
"""
from __future__ import annotations

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
        out = task.forward(model, batch, device)
        optimizer.zero_grad()
        out.loss.mean().backward()
        optimizer.step()
    return time.perf_counter() - start, waited


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1024, help="images per measurement")
    parser.add_argument("--size", type=int, default=224, help="JPEG set's image size")
    parser.add_argument("--model", default="small_cnn", help="small_cnn | resnet18 | resnet50 ...")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=4, help="new path's decode threads")
    parser.add_argument("--folder", default=None, help="where the JPEG set is written (default: a temp dir)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from raydata_agent.config import load_config
    from raydata_agent.data.jpeg_folder import write_image_folder
    from raydata_agent.tasks import build_task

    device = torch.device(args.device)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    folder = Path(args.folder or tempfile.mkdtemp()) / f"shapes_jpeg_{args.size}"
    start = time.perf_counter()
    write_image_folder(folder, train=args.images, val=64, size=args.size)
    print(f"[input] JPEG set ({args.images} images at {args.size}px): {time.perf_counter() - start:.1f} s", flush=True)
    sets = {
        "32px memory": ["data.name=shapes", f"data.num_samples={args.images}", "data.val_samples=64",
                        "data.augment=true", "task.model=small_cnn"],
        f"{args.size}px jpeg": ["data.name=imagefolder", f"data.path={folder}", f"data.image_size={args.size}",
                                f"task.model={args.model}"],
    }
    records = []
    for name, overrides in sets.items():
        task = build_task(load_config(None, overrides))
        train, _ = task.load_data()
        records += measure(name, task, train, args, device)
    ratios = {}
    for name in sets:
        for kind in ("loader", "epoch"):
            old, new = (next(r for r in records if r["set"] == name and r["measure"] == kind and r["path"] == p)
                        for p in ("old", "new"))
            ratios[f"{name}/{kind}"] = new["images_per_s"] / old["images_per_s"]
            print(f"{name:14s} {kind:6s} new/old {ratios[f'{name}/{kind}']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs" + (
                f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "records": records, "ratios": ratios}, indent=2))
        print(f"[input] JSON: {args.json}")


if __name__ == "__main__":
    main()
