"""Cost of the selection signals inside one training step, per task, on CPU or GPU.

For each task it times a full training step (forward, loss, backward, optimizer) two ways in the
same process: the plain step (the library's own batch loss) and ours (per-sample loss, and the
signals the selectors need: difficulty, uncertainty, adaptive weight, reward). The ratio is the
price of "no extra inference pass". Needs no Ray.

    .venv/bin/python benchmarks/bench_task_step.py [--device cuda] [--steps 20] [--json PATH]

JSON (--json PATH): {device, torch, date, command, rows: [{step, plain_s, with_signals_s, ratio}]}
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from raydata_agent.config import load_config
from raydata_agent.signals import batch_signals


def timed(plain, ours, steps: int, device: str) -> tuple[float, float]:
    """Median seconds per step of each; the two alternate so load drift hits both alike."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):  # warm-up: kernels, allocator, cuDNN autotune
        plain()
        ours()
    times = {plain: [], ours: []}
    for _ in range(steps):
        for step in (plain, ours):
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[step].append(time.perf_counter() - start)
    return float(np.median(times[plain])), float(np.median(times[ours]))


def classification(device: str, steps: int, batch: int, model: str):
    from raydata_agent.tasks import build_task

    task = build_task(load_config(None, [f"task.model={model}", "data.name=shapes", "data.num_samples=64",
                                         "data.val_samples=10"]))
    task.load_data()
    net = task.build_model().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def plain():
        logits, _ = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def ours():
        out = task.forward(net, (x, y), device)
        loss = out.loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sig = batch_signals(out.loss, out.probs)
        sig.reward.cpu()  # what is sent to the score store

    return timed(plain, ours, steps, device)


def detection(device: str, steps: int, batch: int, size: int):
    from raydata_agent.tasks.detection import DetectionTask, YOLODetector

    cfg = load_config(None, ["task.name=detection", "task.model=yolov8n", "data.name=synthetic_det"])
    task = DetectionTask(cfg)
    task.num_classes = 80
    net = YOLODetector("yolov8n.yaml", 80).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    n = batch * 6
    data = {"img": torch.rand(batch, 3, size, size, device=device),
            "batch_idx": torch.from_numpy(np.repeat(np.arange(batch), 6).astype(np.float32)).to(device),
            "cls": torch.from_numpy(rng.integers(0, 80, (n, 1)).astype(np.float32)).to(device),
            "bboxes": torch.from_numpy(np.c_[rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.05, 0.3, (n, 2))]
                                       .astype(np.float32)).to(device)}
    from ultralytics.utils.loss import v8DetectionLoss

    criterion = v8DetectionLoss(net.net)

    def plain():
        preds, _ = net(data["img"])
        loss, _ = criterion(preds, data)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()

    def ours():
        out = task.forward(net, data, device)
        loss = out.loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sig = batch_signals(out.loss, None)
        sig.reward.cpu()

    return timed(plain, ours, steps, device)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=["classification", "detection"])
    parser.add_argument("--cls-batch", type=int, default=128)
    parser.add_argument("--det-batch", type=int, default=16)
    parser.add_argument("--det-size", type=int, default=640)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    dev = args.device
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}; median of {args.steps} alternating steps after 3 warm-ups")
    print(f"{'training step':46s} {'plain':>10s} {'with signals':>13s} {'ratio':>7s}")
    rows = []
    if "classification" in args.tasks:
        rows.append((f"classification resnet18, batch {args.cls_batch}, 32px",
                     *classification(dev, args.steps, args.cls_batch, "resnet18")))
    if "detection" in args.tasks:
        rows.append((f"detection yolov8n, batch {args.det_batch}, {args.det_size}px",
                     *detection(dev, args.steps, args.det_batch, args.det_size)))
    for label, plain, ours in rows:
        print(f"{label:46s} {plain * 1e3:8.1f}ms {ours * 1e3:11.1f}ms {ours / plain:6.2f}x")
    if args.json:
        import json
        import sys
        from datetime import datetime, timezone
        from pathlib import Path

        Path(args.json).write_text(json.dumps({
            "device": name, "torch": torch.__version__, "command": " ".join(sys.argv),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "rows": [{"step": label, "plain_s": plain, "with_signals_s": ours, "ratio": ours / plain}
                     for label, plain, ours in rows]}, indent=1))


if __name__ == "__main__":
    main()
