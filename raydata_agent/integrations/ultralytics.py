"""ultralytics: selection in `YOLO("yolov8n.yaml").train(..., trainer=selection_trainer(...))`.

ultralytics' own extension points carry it:
- the custom trainer class (`trainer=`) builds the training DataLoader over the session's sampler and
  swaps the model's criterion for one that returns the selection-weighted loss and records each
  image's box + cls + dfl loss and fit (tasks/detection.py:per_image_signals, the same numbers our task uses);
- callbacks (`add_callback`): `on_train_epoch_start` tells the sampler the epoch,
  `on_fit_epoch_end` closes the epoch with the validation mAP, `on_train_end` ends the MLflow run.
Single process only: ultralytics' multi-GPU mode re-launches itself in subprocesses.
With mosaic on, a mosaic image's loss counts for the image it was built around; `mosaic=0`
gives each image's own loss.
"""
from __future__ import annotations

import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import unwrap_model

from raydata_agent.session import SelectionSession
from raydata_agent.session_factory import start_session
from raydata_agent.tasks.detection import per_image_signals


class SelectedLoss:
    """The model's criterion under selection: per-image losses to the session, weighted loss back.

    Returns what v8DetectionLoss returns (loss scaled by the batch size, and the loss items), so
    ultralytics' loop, logging and AMP are unchanged; with every weight 1 the loss is ultralytics' own.
    """

    def __init__(self, base, trainer: "SelectionTrainer"):
        self.base = base  # ultralytics' v8DetectionLoss of the trained model
        self.trainer = trainer

    def __call__(self, preds, batch):
        preds = self.base.parse_output(preds)
        parts, fit = per_image_signals(self.base, preds, batch)  # [B, 3]: box, cls, dfl per image; [B] fit
        size = parts.shape[0]
        ids = [self.trainer.ids_by_file[f] for f in batch["im_file"]]
        session = self.trainer.session
        features = None
        if session.needs_features:  # the agent's state: the neck maps, pooled
            features = torch.cat([f.detach().mean((2, 3)) for f in preds["feats"]], dim=1)
        weighted = session.record(ids, parts.sum(1) * size, features=features, fit=fit)  # mean over images
        return weighted * size, dict(zip(self.base.loss_names, parts.detach().sum(0)))


class _EpochLoader(torch.utils.data.DataLoader):
    """A DataLoader that starts a fresh pass (and so asks the sampler for the new subset) every epoch.

    ultralytics' InfiniteDataLoader keeps one iterator alive and prefetches across epochs, which
    would draw the next epoch's subset before this one's losses are in.
    """

    def reset(self) -> None:  # ultralytics calls it after closing mosaic; a fresh pass already sees it
        pass


class SelectionTrainer(DetectionTrainer):
    """DetectionTrainer whose training set is the session's selection, epoch by epoch."""

    selection: dict = {}  # start_session keyword arguments; set by selection_trainer(...)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.session: SelectionSession | None = None
        self.ids_by_file: dict[str, int] = {}
        self.add_callback("on_train_epoch_start", _set_epoch)
        self.add_callback("on_fit_epoch_end", _end_epoch)
        self.add_callback("on_train_end", _close)

    def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
        if mode != "train":
            return super().get_dataloader(dataset_path, batch_size, rank, mode)
        if rank not in (-1, 0) or self.world_size > 1:
            raise RuntimeError("SelectionTrainer runs in one process; ultralytics' multi-GPU mode is not supported")
        dataset = self.build_dataset(dataset_path, mode, batch_size)
        self.ids_by_file = {label["im_file"]: i for i, label in enumerate(dataset.labels)}
        if self.session is None:
            options = {"integration": "ultralytics", **self.selection}
            self.session = start_session(len(dataset), sources=list(self.ids_by_file), epochs=self.epochs, **options)
        return _EpochLoader(dataset, batch_size=min(batch_size, len(dataset)), sampler=self.session.sampler(),
                            num_workers=min(self.args.workers, 8), collate_fn=dataset.collate_fn,
                            pin_memory=self.device.type == "cuda")

    def _setup_train(self):
        super()._setup_train()  # builds the loaders, then the EMA copy (which keeps ultralytics' own loss)
        model = unwrap_model(self.model)
        model.criterion = SelectedLoss(model.init_criterion(), self)


def _set_epoch(trainer: SelectionTrainer) -> None:
    trainer.train_loader.sampler.set_epoch(trainer.epoch)


def _end_epoch(trainer: SelectionTrainer) -> None:
    """Log ultralytics' own validation figures; with `val=False` there are none, and a missing figure
    stays missing (a 0.0 would read as a model that learned nothing)."""
    metrics = trainer.metrics or {}
    figure = lambda key: float(metrics[key]) if key in metrics else None  # noqa: E731
    map50 = figure("metrics/mAP50(B)")
    trainer.session.end_epoch({} if map50 is None else {"mAP50": map50}, val_metric=figure("metrics/mAP50-95(B)"))


def _close(trainer: SelectionTrainer) -> None:
    if trainer.session is not None:
        trainer.session.close()


def selection_trainer(**options) -> type[SelectionTrainer]:
    """A SelectionTrainer class bound to `start_session` options (selector, ratio, tracking_uri, ...)."""
    return type("SelectionTrainer", (SelectionTrainer,), {"selection": dict(options)})
