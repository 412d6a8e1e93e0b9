"""A plain PyTorch loop with data selection: the lines marked `# + selection` are all it takes.

Run: python examples/plain_pytorch.py [--epochs 4] [--samples 600] [--tracking-uri sqlite:///mlflow.db]
No Ray is started: the session's score store lives in this process and logs to MLflow.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import raydata_agent
from raydata_agent.data.shapes import make_shapes  # any map-style dataset works; this one is generated (not API)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--storage-path", default="runs")
    args = parser.parse_args(argv)

    images, labels = make_shapes(args.samples, size=32, seed=0)
    train_set = TensorDataset(torch.from_numpy(images).float() / 255, torch.from_numpy(labels))
    val_images, val_labels = make_shapes(200, size=32, seed=1)
    val_x, val_y = torch.from_numpy(val_images).float() / 255, torch.from_numpy(val_labels)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    session = raydata_agent.start_session(len(train_set), labels=labels, epochs=args.epochs,  # + selection
                                          selector="infobatch", ratio=0.5, tracking_uri=args.tracking_uri,
                                          storage_path=args.storage_path, integration="plain_pytorch",
                                          config={"selection.delta": 0.75})
    loader = DataLoader(raydata_agent.WithIds(train_set), batch_size=64,
                        sampler=session.sampler())  # + selection
    for epoch in range(args.epochs):
        for ids, (x, y) in loader:
            loss = F.cross_entropy(model(x), y, reduction="none")
            loss = session.record(ids, loss)  # + selection: per-sample signals in, weighted mean loss out
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
        session.end_epoch(val_metric=accuracy)  # + selection: closes the epoch; metric_vs_cost.png plots it
    session.close()  # + selection: closes the last epoch, logs the plots, ends the MLflow run
    return session


if __name__ == "__main__":
    main()
