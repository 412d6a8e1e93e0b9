"""Classification's evaluate: accuracy, and the rarest classes' recall on a long-tailed training set."""
import numpy as np
import pytest
import torch
from torch import nn

from raydata_agent.config import Config
from raydata_agent.data import ImageData
from raydata_agent.tasks.classification import ClassificationTask, tail_recall


class PixelSays(nn.Module):
    """Predicts the class written in each image's first pixel (value = 10 * class)."""

    def forward(self, x):
        pred = torch.round(x[:, 0, 0, 0] * 255 / 10).long()
        return nn.functional.one_hot(pred, 4).float() * 5, x.flatten(1)


def test_tail_recall_is_the_mean_recall_of_the_rarest_training_classes():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])  # balanced validation
    pred = np.array([0, 0, 0, 0, 1, 1, 1, 0, 2, 0, 0, 0, 3, 3, 0, 0])
    # by hand: recall 1 = 3/4, 2 = 1/4, 3 = 2/4; accuracy 10/16
    images = np.zeros((16, 1, 2, 2), np.uint8)
    images[:, 0, 0, 0] = pred * 10
    task = ClassificationTask(Config())
    task.train_counts = [500, 40, 10, 30]  # tail: ceil(0.3 * 4) = 2 rarest, classes 2 and 3
    out = task.evaluate(PixelSays(), ImageData(labels, images=images), "cpu", batch_size=5)
    assert out["accuracy"] == pytest.approx(10 / 16)
    assert out["val_tail_recall"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert tail_recall(pred, labels, np.array([1, 2])) == pytest.approx(0.5)
    task.train_counts = [100, 100, 90, 100]  # balanced training set: no tail to report
    assert "val_tail_recall" not in task.evaluate(PixelSays(), ImageData(labels, images=images), "cpu")


def test_the_training_counts_reach_a_streaming_worker():
    task = ClassificationTask(Config(data={"name": "textures", "imbalance": 10, "num_samples": 200,
                                          "val_samples": 50}))
    task.load_data()
    assert sum(task.train_counts) == 200 and task.train_counts[0] > 5 * task.train_counts[-1]
    worker = ClassificationTask(Config())
    worker.use_data_info(task.data_info())
    assert worker.train_counts == task.train_counts
