"""Semantic segmentation: UperNet from mmsegmentation (ResNet backbone, random init) under selection.

Signals per image, from the training forward pass (docs/design.md#signals):
- loss (difficulty): the decode head's pixel cross-entropy averaged over the image's labelled
  pixels (mask != 255), plus the auxiliary FCN head's, weighted by `task.aux_weight`. The heads'
  mmseg losses are configured with `avg_non_ignore=True`, so mmseg's batch loss averages over the
  labelled pixels of the whole batch: it equals the mean of the per-image losses when every image
  has as many labelled pixels, and their labelled-pixel-weighted mean always. Training minimises
  the plain mean (train.py), so each image counts once, whatever its labelled area. An image with
  no labelled pixel has loss 0 (it gives no gradient either).
- uncertainty: the pixel entropy of the decode head's softmax over C classes, / log C, averaged
  over the same labelled pixels: in [0, 1].
- fit: the mean softmax probability of each labelled pixel's given label (the agent's p(given label)).
- features: the last backbone stage, global-average pooled (512-d for ResNet-18/34, 2048 for 50+).

mmseg is imported here, after `mmcv_ops.install()`: mmcv-lite has no compiled `mmcv.ops`.
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raydata_agent.config import IGNORE_INDEX, Config
from raydata_agent.data.ade20k import SegData, load_segmentation
from raydata_agent.integrations import mmcv_ops
from raydata_agent.tasks.base import TaskOutput

mmcv_ops.install()  # before the first mmseg import, in the driver and in every Ray worker
with warnings.catch_warnings():  # mmcv-lite's "install mmcv rather than mmcv-lite" for an op UperNet never uses
    warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
    import mmseg.models  # noqa: E402,F401  registers mmseg's models
from mmengine.config import ConfigDict  # noqa: E402
from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.models.utils import resize  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

# ImageNet statistics on the 0..1 scale: mmseg's SegDataPreProcessor values / 255.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def upernet_config(num_classes: int, depth: int = 50, head_channels: int = 512, aux_head: bool = True,
                   aux_weight: float = 0.4) -> ConfigDict:
    """mmseg's `upernet_r50` model config, with plain BN (SyncBN needs a process group and a GPU),
    no pretrained weights, and the backbone depth and head width from the task config."""
    norm_cfg = dict(type="BN", requires_grad=True)
    stage_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]  # Basic vs Bottleneck

    def ce(weight):
        return dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=weight, avg_non_ignore=True)

    model = dict(
        type="EncoderDecoder",
        backbone=dict(type="ResNetV1c", depth=depth, num_stages=4, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2), norm_cfg=norm_cfg, norm_eval=False,
                      style="pytorch", contract_dilation=True),
        decode_head=dict(type="UPerHead", in_channels=stage_channels, in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2, 3, 6), channels=head_channels, dropout_ratio=0.1,
                         num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                         ignore_index=IGNORE_INDEX, loss_decode=ce(1.0)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))
    if aux_head:
        model["auxiliary_head"] = dict(
            type="FCNHead", in_channels=stage_channels[2], in_index=2, channels=max(1, head_channels // 2),
            num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg,
            align_corners=False, ignore_index=IGNORE_INDEX, loss_decode=ce(aux_weight))
    return ConfigDict(model)


class UperNet(nn.Module):
    """mmseg's EncoderDecoder behind one `forward`, so DDP sees every training call.

    forward(x in [0, 1]) -> (decode logits [B, C, H/4, W/4], aux logits or None, pooled features [B, d]).
    The auxiliary head runs in training only, as in mmseg.
    """

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor):
        feats = self.segmentor.extract_feat(self.normalise(x))
        logits = self.segmentor.decode_head(feats)
        aux = None
        if self.training and self.segmentor.with_auxiliary_head:
            aux = self.segmentor.auxiliary_head(feats)
        return logits, aux, feats[-1].mean((2, 3))


def build_upernet(num_classes: int, depth: int = 50, head_channels: int = 512, aux_head: bool = True,
                  aux_weight: float = 0.4) -> UperNet:
    from mmengine.logging import MMLogger

    with warnings.catch_warnings():  # mmseg's heads call its own deprecated build_loss
        warnings.filterwarnings("ignore", message=".*build_loss.*")
        segmentor = MODELS.build(upernet_config(num_classes, depth, head_channels, aux_head, aux_weight))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter's initialiser at INFO
    try:
        segmentor.init_weights()  # random init: Kaiming convs, N(0, 0.01) classifiers; nothing downloaded
    finally:
        logger.setLevel(level)
    return UperNet(segmentor)


def per_image_loss(head: nn.Module, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """[B] mean pixel loss of one mmseg head over each image's labelled pixels.

    Uses the head's own loss module (its class weights and `loss_weight` included) with no reduction,
    on logits resized to the label as mmseg's `loss_by_feat` does.
    """
    logits = resize(logits, size=label.shape[-2:], mode="bilinear", align_corners=head.align_corners)
    pixel = head.loss_decode(logits, label, weight=None, ignore_index=head.ignore_index,
                             reduction_override="none")  # [B, H, W], 0 where ignored
    valid = (label != head.ignore_index).flatten(1).sum(1)
    return pixel.flatten(1).sum(1) / valid.clamp(min=1)


@torch.no_grad()
def pixel_signals(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([B] uncertainty, [B] fit) from one softmax of the decode head's logits, resized as the loss does.

    uncertainty: the mean normalised pixel entropy over each image's labelled pixels (eq. 3 per pixel).

    fit: the mean over each image's labelled pixels of the softmax probability of the pixel's given
    label, in [0, 1] (the agent's p(given label)). exp(-mean pixel CE) is their geometric mean instead:
    a few confidently contradicted pixels drive it to ~0, and it is not a probability of the mask.
    An image with no labelled pixel has fit 1 (nothing to disagree with) and uncertainty 0.
    """
    logits = resize(logits.detach().float(), size=label.shape[-2:], mode="bilinear", align_corners=False)
    logp = logits.log_softmax(1)
    entropy = -(logp.exp() * logp).sum(1) / math.log(logits.shape[1])  # [B, H, W]
    labelled = label != IGNORE_INDEX
    valid = labelled.float()
    pixels = valid.flatten(1).sum(1)
    uncertainty = ((entropy * valid).flatten(1).sum(1) / pixels.clamp(min=1)).clamp(0, 1)
    p_label = logp.gather(1, torch.where(labelled, label, 0).long().unsqueeze(1)).squeeze(1).exp()  # [B, H, W]
    fit = torch.where(pixels > 0, (p_label * valid).flatten(1).sum(1) / pixels.clamp(min=1), 1.0)
    return uncertainty, fit.clamp(0, 1)


class SegmentationTask:
    metric = "mIoU"  # the validation metric reported as `val_metric`
    num_examples = 4  # validation images drawn by log_examples

    def __init__(self, cfg: Config):
        self.cfg = cfg.task
        self.data_cfg = cfg.data
        self.batch_size = cfg.train.batch_size
        self.num_classes: int | None = None

    def load_data(self) -> tuple[SegData, SegData]:
        train, val, self.num_classes = load_segmentation(self.data_cfg)
        return train, val

    def build_model(self) -> UperNet:
        return build_upernet(self.num_classes, self.cfg.depth, self.cfg.head_channels, self.cfg.aux_head,
                             self.cfg.aux_weight)

    def forward(self, model: nn.Module, batch, device) -> TaskOutput:
        x, y = (t.to(device, non_blocking=True) for t in batch)
        if model.training and len(x) == 1:
            # BatchNorm after the 1x1 pyramid pooling needs two values per channel: run the image twice.
            out = self.forward(model, (x.repeat(2, 1, 1, 1), y.repeat(2, 1, 1)), device)
            return TaskOutput(out.loss[:1], None, out.features[:1], out.uncertainty[:1], fit=out.fit[:1])
        net = getattr(model, "module", model).segmentor  # DDP wraps our UperNet
        logits, aux, features = model(x)
        loss = per_image_loss(net.decode_head, logits, y)
        if aux is not None:
            loss = loss + per_image_loss(net.auxiliary_head, aux, y)  # aux_weight is its loss_weight
        uncertainty, fit = pixel_signals(logits, y)
        return TaskOutput(loss=loss, probs=None, features=features.detach(), uncertainty=uncertainty, fit=fit)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, C, H, W] at the input's size (mmseg's 'whole' inference)."""
        logits, _, _ = model(x)
        return resize(logits, size=x.shape[-2:], mode="bilinear",
                      align_corners=model.segmentor.decode_head.align_corners)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: SegData, device) -> dict[str, float]:
        """mIoU, aAcc and mAcc (fractions, not mmseg's percentages) from mmseg's IoUMetric helpers,
        over the validation images at `data.image_size`; val_loss is the labelled-pixel mean CE."""
        model.eval()
        totals = [torch.zeros(self.num_classes, dtype=torch.float64) for _ in range(4)]
        loss_sum, pixels = 0.0, 0
        for start in range(0, len(data), self.batch_size):
            x, y = data.batch(np.arange(start, min(start + self.batch_size, len(data))))
            x, y = x.to(device), y.to(device)
            logits = self.predict(model, x)
            loss_sum += F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum").item()
            pixels += int((y != IGNORE_INDEX).sum())
            areas = IoUMetric.intersect_and_union(logits.argmax(1), y, self.num_classes, IGNORE_INDEX)
            for total, area in zip(totals, areas):
                total += area.double()
        model.train()
        metrics = IoUMetric.total_area_to_metrics(*totals, metrics=["mIoU"])
        with warnings.catch_warnings():  # classes absent from both prediction and masks: NaN, skipped
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"mIoU": float(np.nanmean(metrics["IoU"])), "aAcc": float(metrics["aAcc"]),
                    "mAcc": float(np.nanmean(metrics["Acc"])), "val_loss": loss_sum / max(pixels, 1)}

    def log_examples(self, model: nn.Module, data: SegData, device, out_dir: str) -> list[str]:
        """A few validation images next to their mask and the prediction, one PNG each."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ids = np.linspace(0, len(data) - 1, min(self.num_examples, len(data))).astype(np.int64)
        x, y = data.batch(ids)
        model.eval()
        pred = self.predict(model, x.to(device)).argmax(1).cpu()
        model.train()
        cmap = plt.get_cmap("tab20", max(self.num_classes, 2)).with_extremes(bad="black")
        paths = []
        for k, i in enumerate(ids):
            fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
            mask = np.ma.masked_equal(y[k].numpy(), IGNORE_INDEX)  # ignored pixels in black
            panels = [(x[k].permute(1, 2, 0).numpy(), "image", {}),
                      (mask, "mask", dict(cmap=cmap, vmin=0, vmax=self.num_classes - 1)),
                      (pred[k].numpy(), "prediction", dict(cmap=cmap, vmin=0, vmax=self.num_classes - 1))]
            for ax, (img, title, kwargs) in zip(axes, panels):
                ax.imshow(img, interpolation="nearest", **kwargs)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
            fig.suptitle(Path(data.sources[i]).name, fontsize=8)
            path = Path(out_dir) / f"val_{k:02d}_{Path(data.sources[i]).stem}.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
            paths.append(str(path))
        return paths
