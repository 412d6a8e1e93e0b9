"""Object detection: an ultralytics YOLOv8 built from its yaml (random init), under selection.

Difficulty is each image's share of YOLOv8's own loss (box + cls + dfl) from the training forward
pass; the paper uses no uncertainty term for detection. ultralytics' `v8DetectionLoss` reduces over
the batch, so `per_image_loss` recomputes its three parts per image with the same assigner and the
same batch-wide normaliser (the target-score sum): the per-image parts add up exactly to
ultralytics' batch loss. The same assignment gives each image's fit (`box_fit`), the agent's
p(given label), since exp(-loss) of a detection loss is ~0. We use ultralytics' model, loss and
metric code, not its trainer: the project's loop does the training, so ultralytics' callbacks
(MLflow, Ray Tune, TensorBoard) never run, and its settings turn them off in case anything else would.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from raydata_agent.config import Config
from raydata_agent.tasks.base import TaskOutput

# ultralytics' default loss gains (ultralytics/cfg/default.yaml).
LOSS_GAINS = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)


def configure_ultralytics() -> None:
    """Offline and quiet: no hub, no telemetry, no font download, no own mlflow/runs folders.

    Must run before `import ultralytics`; every process that builds the task calls it.
    """
    cfg_dir = Path(os.environ.get("YOLO_CONFIG_DIR") or Path(tempfile.gettempdir()) / "raydata_agent_yolo")
    cfg_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(cfg_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    font = cfg_dir / "Arial.ttf"
    if not font.exists():  # ultralytics downloads Arial.ttf for plots; give it matplotlib's DejaVu instead
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    from ultralytics.utils import SETTINGS

    wanted = {"sync": False, "hub": False, "mlflow": False, "raytune": False, "tensorboard": False,
              "wandb": False, "clearml": False, "comet": False, "dvc": False, "neptune": False,
              "runs_dir": str(cfg_dir / "runs")}
    SETTINGS.update({k: v for k, v in wanted.items() if k in SETTINGS})  # keys vary across releases
    # ultralytics patches PIL's Image.open: on any unreadable image it tries to install pi-heif
    # (a network call) and then fails with ModuleNotFoundError instead of PIL's own error. Mark its
    # HEIF plugin as handled, so Image.open behaves as PIL's, in every reader of the process.
    from ultralytics.utils import patches

    if hasattr(patches, "_pil_plugins_registered"):
        patches._pil_plugins_registered = True


class YOLODetector(nn.Module):
    """DetectionModel wrapper whose forward returns (preds, pooled features) in training mode."""

    def __init__(self, model_yaml: str, num_classes: int):
        super().__init__()
        from ultralytics.nn.tasks import DetectionModel

        self.net = DetectionModel(model_yaml, nc=num_classes, verbose=False)
        self.net.args = LOSS_GAINS  # v8DetectionLoss reads its gains from model.args

    def forward(self, img):
        preds = self.net(img)
        if isinstance(preds, tuple):  # eval mode: (inference output, training dict)
            return preds
        # State for the agent: the three neck maps fed to the Detect head, average-pooled and joined.
        features = torch.cat([f.mean((2, 3)) for f in preds["feats"]], dim=1)
        return preds, features


def per_image_loss(criterion, preds: dict, batch: dict) -> torch.Tensor:
    """[B, 3] box, cls and dfl loss per image (gains applied); rows sum to ultralytics' batch loss."""
    return per_image_signals(criterion, preds, batch)[0]


def per_image_signals(criterion, preds: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, 3] box, cls and dfl loss per image, [B] fit per image), from one assignment.

    Mirrors `v8DetectionLoss.get_assigned_targets_and_loss`, keeping the image axis: each image's
    numerators over the batch's target-score sum, which is ultralytics' own normaliser. The fit
    (`box_fit`) reuses the assigner's output: no extra forward pass.
    """
    from ultralytics.utils.tal import bbox2dist, make_anchors
    from ultralytics.utils.metrics import bbox_iou

    pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
    pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
    anchor_points, stride_tensor = make_anchors(preds["feats"], criterion.stride, 0.5)
    dtype, bsz = pred_scores.dtype, pred_scores.shape[0]
    imgsz = torch.tensor(preds["feats"][0].shape[2:], device=criterion.device, dtype=dtype) * criterion.stride[0]
    targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"]), 1)
    targets = criterion.preprocess(targets.to(criterion.device), bsz, scale_tensor=imgsz[[1, 0, 1, 0]])
    gt_labels, gt_bboxes = targets.split((1, 4), 2)
    mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
    pred_bboxes = criterion.bbox_decode(anchor_points, pred_distri)
    target_labels, target_bboxes, target_scores, fg_mask, _ = criterion.assigner(
        pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
        anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
    tss = target_scores.sum().clamp_(min=1)

    cls = criterion.bce(pred_scores, target_scores.to(dtype)).sum((1, 2)) / tss
    img_idx, anchor_idx = fg_mask.nonzero(as_tuple=True)
    weight = target_scores[img_idx, anchor_idx].sum(-1)
    target_scaled = target_bboxes / stride_tensor
    iou = bbox_iou(pred_bboxes[img_idx, anchor_idx], target_scaled[img_idx, anchor_idx], xywh=False, CIoU=True)
    box = torch.zeros(bsz, device=cls.device, dtype=cls.dtype).index_add(0, img_idx, (1.0 - iou.view(-1)) * weight) / tss
    reg_max = criterion.reg_max
    target_ltrb = bbox2dist(anchor_points, target_scaled, reg_max - 1)
    dfl_each = criterion.bbox_loss.dfl_loss(pred_distri[img_idx, anchor_idx].view(-1, reg_max),
                                            target_ltrb[img_idx, anchor_idx]).view(-1) * weight
    dfl = torch.zeros(bsz, device=cls.device, dtype=cls.dtype).index_add(0, img_idx, dfl_each) / tss
    parts = torch.stack([box * criterion.hyp.box, cls * criterion.hyp.cls, dfl * criterion.hyp.dfl], dim=1)
    fit = box_fit(pred_scores, pred_bboxes, target_scaled, target_labels, img_idx, anchor_idx)
    return parts, fit


@torch.no_grad()
def box_fit(pred_scores, pred_bboxes, target_bboxes, target_labels, img_idx, anchor_idx) -> torch.Tensor:
    """[B] in [0, 1]: how much the model agrees with each image's annotation (the agent's p(given label)).

    Over the image's foreground anchors (those the TaskAlignedAssigner gave a box): the mean of
    sigmoid(score at the box's class) times the plain IoU of the predicted box with it: high only where
    the model finds the box, in its place, with its class. A wrong-class box drives the first factor
    down, a loose box the second. Plain IoU, not the loss's CIoU, which goes below 0.
    An image with no foreground anchor (no box, or boxes smaller than an anchor cell) agrees with
    "nothing here": 1 - its highest score over all anchors and classes, the probability that its most
    confident detection is not there. Not seen: a missing box (an object the labels leave out) only
    lowers the background term, which images with boxes leave out; their cls loss sees it.
    """
    from ultralytics.utils.metrics import bbox_iou

    bsz = pred_scores.shape[0]
    scores = pred_scores.detach().float()
    p_cls = scores[img_idx, anchor_idx, target_labels[img_idx, anchor_idx].long()].sigmoid()
    iou = bbox_iou(pred_bboxes[img_idx, anchor_idx].detach().float(), target_bboxes[img_idx, anchor_idx].float(),
                   xywh=False).view(-1).clamp(0.0, 1.0)
    total = scores.new_zeros(bsz).index_add(0, img_idx, p_cls * iou)
    count = scores.new_zeros(bsz).index_add(0, img_idx, torch.ones_like(p_cls))
    background = 1.0 - scores.flatten(1).amax(1).sigmoid()  # sigmoid is monotonic: one per image
    return torch.where(count > 0, total / count.clamp(min=1), background).clamp(0.0, 1.0)


class DetectionTask:
    metric = "mAP50-95"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.num_classes: int | None = None
        self.names: list[str] = []
        self._criterion = None
        configure_ultralytics()

    def dataset_yaml(self) -> Path:
        data = self.cfg.data
        if data.name == "synthetic_det":
            from raydata_agent.data.synthetic_det import make_synthetic_detection

            return make_synthetic_detection(Path(data.path or "data_cache"), data.num_samples, data.val_samples,
                                            data.image_size, data.seed, data.label_noise, data.duplicates)
        return Path(data.path).expanduser()

    @property
    def class_names(self) -> list[str]:
        return self.names

    def load_data(self):
        from raydata_agent.data.yolo import load_yolo

        train, val, self.names = load_yolo(self.dataset_yaml(), self.cfg.data.image_size, self.cfg.data.augment is not False)
        self.num_classes = len(self.names)
        self.skipped = train.skipped + val.skipped
        return train, val

    def build_model(self) -> nn.Module:
        return YOLODetector(f"{self.cfg.task.model}.yaml", self.num_classes)

    def criterion(self, model: nn.Module):
        from ultralytics.utils.loss import v8DetectionLoss

        if self._criterion is None:  # built once, from the de-paralleled model as ultralytics requires
            net = (model.module if hasattr(model, "module") else model).net
            self._criterion = v8DetectionLoss(net)
        return self._criterion

    def forward(self, model: nn.Module, batch: dict, device) -> TaskOutput:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        preds, features = model(batch["img"])
        parts, fit = per_image_signals(self.criterion(model), preds, batch)
        # One image's training loss: its parts times B, so the batch mean is the sum of ultralytics'
        # loss items (box + cls + dfl) for this batch.
        loss = parts.sum(1) * parts.shape[0]
        return TaskOutput(loss=loss, probs=None, features=features.detach(), fit=fit)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data, device, batch_size: int = 32) -> dict[str, float]:
        """mAP50 and mAP50-95 with ultralytics' NMS, matching and AP code."""
        from ultralytics.utils.metrics import ap_per_class, box_iou
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import xywh2xyxy

        model.eval()
        iouv = torch.linspace(0.5, 0.95, 10)
        stats = {"tp": [], "conf": [], "pred_cls": [], "target_cls": []}
        size = data.image_size
        for start in range(0, len(data), batch_size):
            ids = np.arange(start, min(start + batch_size, len(data)))
            batch = data.batch(ids)
            out = model(batch["img"].to(device))[0]
            dets = non_max_suppression(out, conf_thres=0.001, iou_thres=0.7, max_det=300)
            for k, det in enumerate(dets):
                det = det.cpu()
                mask = batch["batch_idx"] == k
                tcls = batch["cls"][mask].view(-1)
                tbox = xywh2xyxy(batch["bboxes"][mask]) * size
                stats["target_cls"].append(tcls.numpy())
                correct = torch.zeros(len(det), len(iouv), dtype=torch.bool)
                if len(det) and len(tcls):
                    correct = self._match(det[:, 5], tcls, box_iou(tbox, det[:, :4]), iouv)
                stats["tp"].append(correct.numpy())
                stats["conf"].append(det[:, 4].numpy())
                stats["pred_cls"].append(det[:, 5].numpy())
        model.train()
        s = {k: np.concatenate(v, 0) for k, v in stats.items()}
        if not len(s["target_cls"]) or not len(s["tp"]):
            return {"mAP50": 0.0, "mAP50-95": 0.0}
        ap = ap_per_class(s["tp"], s["conf"], s["pred_cls"], s["target_cls"])[5]  # [classes, 10 IoUs]
        return {"mAP50": float(ap[:, 0].mean()) if len(ap) else 0.0, "mAP50-95": float(ap.mean()) if len(ap) else 0.0}

    @staticmethod
    def _match(pred_cls, true_cls, iou, iouv) -> torch.Tensor:
        """ultralytics' BaseValidator.match_predictions (greedy), without a validator object."""
        from ultralytics.engine.validator import BaseValidator

        return BaseValidator.match_predictions(SimpleNamespace(iouv=iouv), pred_cls, true_cls, iou)
