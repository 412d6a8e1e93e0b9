"""Your own Ray Train loop (DDP across workers) with data selection; lines marked `# + selection`.

Two ways to feed the workers, both with each worker getting its share of every epoch's subset:
  --feed sampler   a DataLoader with the session's sampler (sharded by rank, like DistributedSampler)
  --feed ray_data  the session's selected-ids dataset, through ray.train.get_dataset_shard
Run: python examples/ray_train.py --feed ray_data [--workers 2] [--epochs 4]
With --feed ray_data, the workers leave Ray Data's tasks a CPU: on a small machine each takes less than one.
"""
import argparse

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.nn.functional as F
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import raydata_agent
from raydata_agent.data.shapes import make_shapes  # a generated data set: the example's data, not API
from raydata_agent.data.streaming import cluster_cpus, ray_data_starved  # a CPU-share check: a helper, not API

RAY_DATA_TASK_CPUS = 1.0  # what each map_batches task reserves (Ray Data's default)


def make_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 10))


def load_images(batch: dict, images: np.ndarray, labels: np.ndarray) -> dict:
    """Ray Data map_batches: decode the selected ids into tensors (here: index generated arrays)."""
    return {**batch, "x": images[batch["id"]].astype(np.float32) / 255, "y": labels[batch["id"]]}


def train_loop_per_worker(config: dict) -> None:
    session = config["session"]  # + selection: a copy of the driver's session on every worker
    model = ray.train.torch.prepare_model(make_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    val_images, val_labels = make_shapes(200, size=32, seed=1)
    val_x, val_y = torch.from_numpy(val_images).float() / 255, torch.from_numpy(val_labels)
    if config["feed"] == "sampler":
        images, labels = make_shapes(config["samples"], size=32, seed=0)
        train_set = TensorDataset(torch.from_numpy(images).float() / 255, torch.from_numpy(labels))
        loader = DataLoader(raydata_agent.WithIds(train_set), batch_size=32,
                            sampler=session.sampler())  # + selection (no prepare_data_loader: it is sharded)
        batches = lambda: ((ids, x, y) for ids, (x, y) in loader)  # noqa: E731
    else:
        shard = ray.train.get_dataset_shard("train")
        batches = lambda: ((b["id"], b["x"], b["y"]) for b in shard.iter_torch_batches(batch_size=32))  # noqa: E731
    for epoch in range(config["epochs"]):
        session.plan_epoch(epoch)  # + selection: before the shard is read (the sampler would do it too)
        for ids, x, y in batches():
            loss = F.cross_entropy(model(x), y, reduction="none")
            loss = session.record(ids, loss)  # + selection: signals to the pool, weighted mean loss back
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
        session.end_epoch(val_metric=accuracy)  # + selection: every worker closes the epoch, rank 0's is logged
        ray.train.report({"epoch": epoch, "train_loss": session.train_loss})
    session.close()  # + selection: every worker closes the last epoch


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--feed", choices=("sampler", "ray_data"), default="ray_data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=None,
                        help="default 1; with --feed ray_data at most what leaves Ray Data's tasks a CPU")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--storage-path", default="runs")
    args = parser.parse_args(argv)
    cpus = cluster_cpus()  # None on a cluster joined by RAY_ADDRESS: it may scale up
    if args.cpus_per_worker is None:  # a CPU each, less on a small machine, where Ray Data's tasks keep one
        free = None if cpus is None else cpus - (RAY_DATA_TASK_CPUS if args.feed == "ray_data" else 0.0)
        args.cpus_per_worker = 1.0 if free is None else min(1.0, free / args.workers)
    if args.feed == "ray_data" and ray_data_starved(cpus, args.workers, args.cpus_per_worker, RAY_DATA_TASK_CPUS):
        raise SystemExit(f"ray_train.py: --workers {args.workers} x --cpus-per-worker {args.cpus_per_worker:g} leave "
                         f"Ray Data's tasks less than {RAY_DATA_TASK_CPUS:g} of {cpus:g} CPUs, so training would wait "
                         f"forever: lower --cpus-per-worker or --workers")

    images, labels = make_shapes(args.samples, size=32, seed=0)
    session = raydata_agent.start_session(len(labels), labels=labels, epochs=args.epochs,  # + selection
                                          selector="infobatch", ratio=0.5, use_ray=True,
                                          tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                                          integration=f"ray_train_{args.feed}", config={"selection.delta": 0.75})
    datasets = {}
    if args.feed == "ray_data":
        datasets["train"] = session.selected_ids_dataset().map_batches(  # + selection
            load_images, fn_kwargs={"images": images, "labels": labels}, batch_format="numpy")
    trainer = TorchTrainer(
        train_loop_per_worker, datasets=datasets,
        train_loop_config={"session": session, "feed": args.feed, "epochs": args.epochs, "samples": args.samples},
        scaling_config=ScalingConfig(num_workers=args.workers, resources_per_worker={"CPU": args.cpus_per_worker}),
        run_config=ray.train.RunConfig(storage_path=str(session.cfg.ray.storage_path)))
    trainer.fit()
    session.close()  # + selection: logs the plots, ends the MLflow run
    return session


if __name__ == "__main__":
    main()
