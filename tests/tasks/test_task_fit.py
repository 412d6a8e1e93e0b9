"""The fit each task hands the agent as p(given label): detection's boxes and segmentation's pixels."""
import math

import numpy as np
import pytest
import torch

from raydata_agent.config import IGNORE_INDEX, load_config
from raydata_agent.data.synthetic_det import make_synthetic_detection

TINY = ["task.name=detection", "task.model=yolov8n", "data.name=synthetic_det", "data.num_samples=48",
        "data.val_samples=16", "data.image_size=64", "train.batch_size=16"]


@pytest.fixture(scope="module")
def detection(tmp_path_factory):
    from raydata_agent.tasks import build_task

    synthetic = make_synthetic_detection(tmp_path_factory.mktemp("det"), 24, 8, size=64, seed=0)
    task = build_task(load_config(None, TINY + [f"data.path={synthetic.parent.parent}"]))
    train, _ = task.load_data()
    torch.manual_seed(0)
    return task, task.build_model().train(), train


def says_class(model, cls: int, logit: float = 6.0) -> None:
    """Make the Detect head score class `cls` at `logit` and every other at -`logit` on every anchor:
    a model sure that every object is of class `cls`, whatever its boxes."""
    for branch in model.net.model[-1].cv3:
        last = branch[-1]
        torch.nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.fill_(-logit)
            last.bias[cls] = logit


def test_detection_fit_is_higher_where_the_model_agrees_with_the_boxes_class(detection):
    task, model, train = detection
    says_class(model, 0)
    batch = train.batch(np.arange(8))
    assert len(batch["cls"]) > 8
    batch["cls"] = torch.zeros_like(batch["cls"])  # every box of class 0: what the model predicts
    right = task.forward(model, batch, "cpu")
    assert right.fit.shape == (8,) and not right.fit.requires_grad
    assert bool(((right.fit >= 0) & (right.fit <= 1)).all())
    wrong = task.forward(model, {**batch, "cls": torch.ones_like(batch["cls"])}, "cpu")  # the same boxes, class 1
    assert bool((wrong.fit >= 0).all())
    assert bool((right.fit > 0).all())
    # sigmoid(6) / sigmoid(-6) ~ 400: the same anchors and boxes, only the class probability differs
    torch.testing.assert_close(right.fit / wrong.fit, torch.full((8,), (1 + math.exp(6)) / (1 + math.exp(-6))),
                               rtol=1e-3, atol=0)
    # the loss cannot carry this over: exp(-loss) is 0 for every image, right class or wrong
    assert float(torch.exp(-right.loss.detach()).max()) < 1e-6 < float(right.fit.min())


def test_detection_fit_by_hand():
    from raydata_agent.tasks.detection import box_fit

    logits = torch.full((2, 3, 2), -4.0)  # 2 images, 3 anchors, 2 classes
    logits[0, 0, 1], logits[0, 2, 0] = 2.0, 0.0
    logits[1, 1, 0] = 1.0  # image 1 has no box: its strongest detection
    pred = torch.tensor([[[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]]] * 2, dtype=torch.float32)
    target = torch.tensor([[[0, 0, 2, 2], [0, 0, 1, 1], [1, 0, 3, 2]]] * 2, dtype=torch.float32)
    labels = torch.tensor([[1, 0, 0], [0, 0, 0]])
    img_idx, anchor_idx = torch.tensor([0, 0]), torch.tensor([0, 2])  # image 0's foreground anchors
    fit = box_fit(logits, pred, target, labels, img_idx, anchor_idx)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected0 = (sig(2.0) * 1.0 + sig(0.0) * (2 / 6)) / 2  # IoU 1; IoU of [0,2]x[0,2] and [1,3]x[0,2]: 2/6
    torch.testing.assert_close(fit, torch.tensor([expected0, 1 - sig(1.0)]), rtol=1e-5, atol=1e-6)


def test_segmentation_fit_is_the_mean_given_label_probability_over_labelled_pixels():
    from raydata_agent.tasks.segmentation import pixel_signals

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 2, 2, generator=g)  # already at the label's size: resize keeps it
    label = torch.tensor([[[0, 2], [IGNORE_INDEX, 1]], [[IGNORE_INDEX] * 2] * 2])
    unc, fit = pixel_signals(logits, label)
    p = logits.softmax(1)
    by_hand = (p[0, 0, 0, 0] + p[0, 2, 0, 1] + p[0, 1, 1, 1]) / 3
    torch.testing.assert_close(fit, torch.stack([by_hand, torch.tensor(1.0)]))  # no labelled pixel: 1
    assert float(unc[1]) == 0.0
    moved = logits.clone()
    moved[0, :, 1, 0] = torch.tensor([9.0, -9.0, 0.0])  # the ignored pixel's logits do not count
    torch.testing.assert_close(pixel_signals(moved, label)[1], fit)
    # not exp(-mean pixel CE), the geometric mean of the same probabilities
    ce = -torch.log(torch.stack([p[0, 0, 0, 0], p[0, 2, 0, 1], p[0, 1, 1, 1]])).mean()
    assert float(torch.exp(-ce)) < float(fit[0])


def test_segmentation_task_hands_its_fit_to_the_loop():
    from raydata_agent.config import Config
    from raydata_agent.tasks.segmentation import SegmentationTask, build_upernet, pixel_signals

    cfg = Config()
    task = SegmentationTask(cfg)
    torch.manual_seed(0)
    model = build_upernet(num_classes=5, depth=18, head_channels=32, aux_head=True).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.randint(0, 5, (2, 32, 32), generator=g)
    y[1, :8] = IGNORE_INDEX
    torch.manual_seed(2)
    out = task.forward(model, (x, y), "cpu")
    torch.manual_seed(2)  # the same dropout draw: the same logits
    logits, _, _ = model(x)
    torch.testing.assert_close(out.fit, pixel_signals(logits, y)[1])
    assert out.fit.shape == (2,) and bool(((out.fit > 0) & (out.fit < 1)).all())
