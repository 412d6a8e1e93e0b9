"""Image classification: torchvision ResNets (random init) or a small CNN for CPU runs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raydata_agent.config import Config
from raydata_agent.data.classification import ImageData, load_dataset
from raydata_agent.data.longtail import tail_classes
from raydata_agent.data.recipes import Normalize, channel_stats, wants
from raydata_agent.tasks.base import TaskOutput


class SmallCNN(nn.Module):
    """Three conv blocks and global pooling: trains on 2 CPUs in seconds per epoch."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(block(in_channels, width), nn.MaxPool2d(2), block(width, 2 * width),
                                  nn.MaxPool2d(2), block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.out_dim = 4 * width

    def forward(self, x):
        return self.body(x)


def _resnet(name: str, in_channels: int, cifar_stem: bool) -> tuple[nn.Module, int]:
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)  # random init: nothing is downloaded
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    out_dim = net.fc.in_features
    net.fc = nn.Identity()  # the backbone returns pooled penultimate features
    return net, out_dim


class Classifier(nn.Module):
    """[Normalize +] backbone + linear head; forward returns (logits, pooled features)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, normalize: nn.Module | None = None):
        super().__init__()
        self.normalize = normalize or nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x):
        features = self.backbone(self.normalize(x))
        return self.head(features), features


class ClassificationTask:
    metric = "accuracy"  # the validation metric reported as `val_metric`

    def __init__(self, cfg: Config):
        self.cfg = cfg.task
        self.data_cfg = cfg.data
        self.label_smoothing = cfg.train.label_smoothing
        self.channel_stats: tuple[list[float], list[float]] | None = None
        self.num_classes: int | None = None
        self.in_channels: int | None = None
        self.train_counts: list[int] | None = None  # training labels per class: which classes are the tail

    @property
    def class_names(self) -> list[str] | None:
        """Names for the plots where the data set has them built in; others show class indices."""
        from raydata_agent.data.shapes import SHAPES

        return {"shapes": list(SHAPES), "digits": [str(d) for d in range(10)],
                "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"]}.get(self.data_cfg.name)

    def load_data(self) -> tuple[ImageData, ImageData]:
        train, val, self.num_classes = load_dataset(self.data_cfg)
        self.in_channels = train.channels
        self.train_counts = np.bincount(train.labels, minlength=self.num_classes).tolist()
        if wants(self.data_cfg.normalize, self.data_cfg.name):
            self.channel_stats = channel_stats(train)  # a file that fails to decode here is skipped at load
        self.skipped = train.skipped + val.skipped  # unreadable files dropped at load; the runner logs them
        return train, val

    def data_info(self) -> dict:
        """What the model is built from (read from the training set at load): a worker on the streaming
        path gets this instead of loading the set itself."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "channel_stats": self.channel_stats,
                "train_counts": self.train_counts}

    def use_data_info(self, info: dict) -> None:
        self.num_classes, self.in_channels, self.channel_stats = (info["num_classes"], info["in_channels"],
                                                                  info["channel_stats"])
        self.train_counts = info.get("train_counts")

    def build_model(self) -> Classifier:
        if self.cfg.model == "small_cnn":
            backbone = SmallCNN(self.in_channels)
            dim = backbone.out_dim
        else:
            backbone, dim = _resnet(self.cfg.model, self.in_channels, self.cfg.cifar_stem)
        normalize = Normalize(*self.channel_stats) if self.channel_stats else None
        return Classifier(backbone, dim, self.num_classes, normalize)

    def forward(self, model: nn.Module, batch, device) -> TaskOutput:
        x, y = (t.to(device, non_blocking=True) for t in batch)
        if torch.device(device).type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)  # the model is channels-last there too
        logits, features = model(x)
        loss = F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)
        # float32 whatever the autocast dtype: the signals and the pool are float32
        probs, features = logits.detach().float().softmax(-1), features.detach().float()
        # The gradient of a sample's cross-entropy w.r.t. the linear head is (p - onehot(y)) [h, 1]^T,
        # so its norm is |p - y| * sqrt(|h|^2 + 1): exact, and free from this forward pass.
        residual = probs - F.one_hot(y, probs.shape[-1]).to(probs.dtype)
        grad_norm = residual.norm(dim=-1) * torch.sqrt(features.float().pow(2).sum(-1) + 1.0)
        return TaskOutput(loss=loss, probs=probs, features=features, grad_norm=grad_norm)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data, device, batch_size: int = 512) -> dict[str, float]:
        """Accuracy and loss; on a long-tailed training set also `val_tail_recall`, the mean recall of
        its rarest classes (data/longtail.py), since accuracy alone hides a starved tail."""
        model.eval()
        loss_sum, preds = 0.0, []
        for start in range(0, len(data), batch_size):
            ids = range(start, min(start + batch_size, len(data)))
            x, y = data.batch(list(ids))
            x, y = x.to(device), y.to(device)
            logits, _ = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            preds.append(logits.argmax(-1).cpu())
        model.train()
        pred, labels = torch.cat(preds).numpy(), np.asarray(data.labels)
        out = {"accuracy": float((pred == labels).mean()), "val_loss": loss_sum / len(labels)}
        tail = tail_classes(self.train_counts) if self.train_counts is not None else None
        if tail is not None:
            out["val_tail_recall"] = tail_recall(pred, labels, tail)
        return out


def tail_recall(pred: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """Mean over `classes` of each class's recall (share of its samples predicted as it); a class
    with no sample here is left out of the mean."""
    recalls = [float((pred[labels == c] == c).mean()) for c in classes if (labels == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")
