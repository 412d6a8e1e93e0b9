"""Task adapters: one small class per task that turns a batch into per-sample signals.

A task adapter provides:
- `load_data() -> (train, val)`: data sets with `__len__`, `labels` (np.int64 [N], the pool's label
  column; -1 where a sample has no single class), `sources` (list of str or None) and
  `batch(ids)`, which returns whatever `forward` takes;
- `build_model()`, a torch module (random init);
- `forward(model, batch, device) -> TaskOutput`: per-sample loss, probabilities (or None) and pooled
  features from the one training forward pass, so selection needs no extra inference pass;
- `evaluate(model, val, device) -> dict`, holding `metric` (higher is better);
- optionally `log_examples(model, val, device, out_dir) -> list[path]`: files (e.g. prediction
  images) that rank 0 logs to MLflow under `examples/` after the last epoch.
Heavy task libraries (ultralytics, mmseg) are imported only when their task is chosen.
"""
from __future__ import annotations

from raydata_agent.tasks.base import TaskOutput

__all__ = ["TaskOutput", "build_task"]


def build_task(cfg):
    if cfg.task.name == "classification":
        from raydata_agent.tasks.classification import ClassificationTask

        return ClassificationTask(cfg)
    if cfg.task.name == "detection":
        from raydata_agent.tasks.detection import DetectionTask

        return DetectionTask(cfg)
    if cfg.task.name == "segmentation":
        from raydata_agent.tasks.segmentation import SegmentationTask  # imports mmseg

        return SegmentationTask(cfg)
    raise KeyError(f"unknown task.name {cfg.task.name!r}")
