"""Detection (ultralytics YOLOv8): per-image loss, bad inputs, and real runs on local Ray."""
import os

import numpy as np
import pytest
import torch

from raydata_agent.config import load_config
from raydata_agent.data import DataError
from raydata_agent.data.synthetic_det import make_synthetic_detection
from raydata_agent.data.yolo import load_yolo, read_labels

TINY = ["task.name=detection", "task.model=yolov8n", "data.name=synthetic_det", "data.num_samples=48",
        "data.val_samples=16", "data.image_size=64", "train.batch_size=16"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_detection(tmp_path_factory.mktemp("det"), 24, 8, size=64, seed=0)


def test_per_image_loss_adds_up_to_ultralytics_batch_loss(synthetic):
    from ultralytics.utils.loss import v8DetectionLoss

    from raydata_agent.tasks import build_task
    from raydata_agent.tasks.detection import per_image_loss

    cfg = load_config(None, TINY + [f"data.path={synthetic.parent.parent}"])
    task = build_task(cfg)
    train, _ = task.load_data()
    torch.manual_seed(0)
    model = task.build_model().train()
    batch = train.batch(np.arange(8))
    assert len(batch["cls"]) > 8
    preds, features = model(batch["img"])
    total, items = v8DetectionLoss(model.net)(preds, batch)
    parts = per_image_loss(task.criterion(model), preds, batch)
    assert parts.shape == (8, 3)
    torch.testing.assert_close(parts.sum(0), torch.stack(list(items.values())), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts.sum() * 8, total.sum(), rtol=1e-5, atol=1e-4)
    out = task.forward(model, batch, "cpu")
    assert out.loss.shape == (8,) and out.probs is None and out.features.shape == (8, 448)
    assert len(set(out.loss.tolist())) == 8  # one loss per image, not a shared batch value


def write_set(root, label_text=None, image_bytes=None, extra=None):
    from PIL import Image

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (10, 20, 30)).save(root / "images" / split / "a.png")
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    if label_text is not None:
        (root / "labels" / "train" / "a.txt").write_text(label_text)
    if image_bytes is not None:
        (root / "images" / "train" / "b.png").write_bytes(image_bytes)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: a, 1: b}\n")
    return root / "data.yaml"


@pytest.mark.parametrize("text,message", [
    ("0 0.5 0.5 0.2\n", "a.txt:1: expected 5 fields"),
    ("0 0.5 0.5 0.2 0.2\nx 0.5 0.5 0.2 0.2\n", "a.txt:2: not numbers"),
    ("7 0.5 0.5 0.2 0.2\n", "a.txt:1: class id 7 is outside 0..1"),
    ("1 0.95 0.5 0.2 0.2\n", "a.txt:1: box [0.95, 0.5, 0.2, 0.2] is not inside [0, 1]"),
])
def test_bad_labels_name_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_yolo(write_set(tmp_path, label_text=text), 32)


@pytest.mark.parametrize("content,reason", [(b"", "zero-byte file"),
                                            (b"not a png at all", "unreadable: cannot identify image file")])
def test_broken_images_are_skipped_and_counted(tmp_path, content, reason):
    from raydata_agent.tasks.detection import configure_ultralytics

    configure_ultralytics()
    import ultralytics.utils.patches  # noqa: F401  (its PIL patch must not turn this into a pip install)

    train, val, names = load_yolo(write_set(tmp_path, image_bytes=content), 32)
    assert len(train) == 1 and len(train.skipped) == 1
    path, why = train.skipped[0]
    assert path.endswith("b.png") and why.startswith(reason)


def test_missing_label_file_is_background(tmp_path):
    spec = write_set(tmp_path)
    os.remove(tmp_path / "labels" / "train" / "a.txt")
    train, _, _ = load_yolo(spec, 32)
    assert train.boxes[0].shape == (0, 5) and train.labels.tolist() == [-1]
    assert read_labels(tmp_path / "nope.txt", 2).shape == (0, 5)
    batch = train.batch([0])
    assert batch["bboxes"].shape == (0, 4) and batch["img"].shape == (1, 3, 32, 32)


def test_bad_yaml_and_missing_keys(tmp_path):
    (tmp_path / "d.yaml").write_text("train: images/train\n")
    with pytest.raises(DataError, match="lacks the key 'val'"):
        load_yolo(tmp_path / "d.yaml", 32)


def test_offline_configuration(tmp_path, monkeypatch):
    from raydata_agent.tasks.detection import configure_ultralytics

    configure_ultralytics()
    from ultralytics.utils import SETTINGS

    assert os.environ["YOLO_OFFLINE"] == "1"
    assert (os.path.exists(os.path.join(os.environ["YOLO_CONFIG_DIR"], "Arial.ttf")))
    for key in ("sync", "mlflow", "raytune", "tensorboard"):
        assert SETTINGS.get(key) in (False, None), key


@pytest.mark.integration
@pytest.mark.parametrize("selector", ["infobatch", "data_agent"])
def test_detection_trains_on_ray_with_selection(ray_cluster, run_dirs, tmp_path, monkeypatch, selector):
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    from raydata_agent.runner import run

    monkeypatch.chdir(tmp_path)  # nothing may appear in the working directory but our own outputs
    cfg = load_config(None, TINY + [f"selection.selector={selector}", "train.epochs=2", "train.optimizer=adamw",
                                    "train.lr=0.002", f"data.path={tmp_path / 'data'}", *run_dirs])
    result = run(cfg, progress=False)
    client = MlflowClient(result.tracking_uri)
    for key in ("mAP50", "mAP50-95", "val_metric", "cost_fraction"):
        assert len(client.get_metric_history(result.run_id, key)) == 2, key
    assert result.history[1]["selected_fraction"] < 1.0
    pool = pq.read_table(os.path.join(os.path.dirname(result.checkpoint_path), "pool", "pool_epoch_002.parquet"))
    assert (pool["loss"].to_numpy() > 0).all()  # every image has its own loss from epoch 0
    assert len(np.unique(pool["loss"].to_numpy())) > 40
    assert sorted(os.listdir(tmp_path)) == ["data", "mlflow.db", "mlruns", "runs"]  # no ultralytics runs/ or db


@pytest.mark.parametrize("line", ["../outside.png", "images/../../outside.png", "/etc/hostname"])
def test_image_list_cannot_leave_the_data_root(tmp_path, line):
    from PIL import Image

    root = tmp_path / "set"
    spec = write_set(root)
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")  # exists, but is not the data set's
    (root / "train.txt").write_text(f"images/train/a.png\n{line}\n")
    spec.write_text("path: .\ntrain: train.txt\nval: images/val\nnames: {0: a, 1: b}\n")
    with pytest.raises(DataError, match=rf"train.txt:2: '{line}' points outside the data set root"):
        load_yolo(spec, 32)
    (root / "train.txt").write_text("./images/train/../train/a.png\n")
    assert len(load_yolo(spec, 32)[0]) == 1  # inside the root, however written


def test_an_image_listed_twice_is_one_row_with_a_warning(tmp_path, caplog):
    spec = write_set(tmp_path)
    (tmp_path / "train.txt").write_text("images/train/a.png\n./images/train/../train/a.png\nimages/train/a.png\n")
    spec.write_text("path: .\ntrain: train.txt\nval: images/val\nnames: {0: a, 1: b}\n")
    train, _, _ = load_yolo(spec, 32)
    assert train.files == [str(tmp_path / "images" / "train" / "a.png")]
    assert "names 1 image(s) more than once" in caplog.text and "a.png" in caplog.text


def test_an_image_whose_name_is_not_utf8_is_skipped_and_named(tmp_path):
    spec = write_set(tmp_path)
    good = (tmp_path / "images" / "train" / "a.png").read_bytes()
    with open(os.open(bytes(tmp_path / "images" / "train") + b"/\xff.png", os.O_WRONLY | os.O_CREAT), "wb") as f:
        f.write(good)
    train, _, _ = load_yolo(spec, 32)
    assert len(train) == 1 and train.skipped == [(f"{tmp_path}/images/train/\\xff.png",
                                                  "file name is not valid UTF-8 (rename the file)")]
