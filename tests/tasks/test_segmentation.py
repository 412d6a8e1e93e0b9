"""Segmentation: the mmcv.ops stand-in, per-image signals against mmseg's own loss, the ADE20K-layout
reader's bad-input handling, the synthetic set, and one short real run on local Ray."""
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from raydata_agent.config import ConfigError, DataConfig, load_config
from raydata_agent.data import DataError
from raydata_agent.data.ade20k import SegData
from raydata_agent.integrations import mmcv_ops

SEG = ["task.name=segmentation", "task.depth=18", "task.head_channels=32"]


# --- the mmcv.ops stand-in -------------------------------------------------------------------------

def test_point_sample_hand_checked_values():
    feat = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # [1, 1, 2, 2]
    # (x, y) in [0, 1]: pixel centres sit at 0.25 and 0.75; the middle is the mean of all four
    points = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5], [0.5, 0.25]]])
    out = mmcv_ops.point_sample(feat, points)
    assert out.shape == (1, 1, 5)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 1.0, 2.0, 1.5, 0.5]))


def test_point_sample_is_grid_sample_and_matches_mmcv_source():
    g = torch.Generator().manual_seed(0)
    feat, points = torch.randn(2, 3, 7, 5, generator=g), torch.rand(2, 11, 2, generator=g)
    expected = F.grid_sample(feat, points.unsqueeze(2) * 2 - 1, align_corners=False).squeeze(3)
    torch.testing.assert_close(mmcv_ops.point_sample(feat, points), expected)
    grid = torch.rand(2, 4, 6, 2, generator=g)  # the 4-D form keeps its grid shape
    assert mmcv_ops.point_sample(feat, grid, align_corners=True).shape == (2, 3, 4, 6)
    # mmcv-lite ships the op's Python source (only the package import needs the compiled ops)
    import mmcv

    source = Path(mmcv.__file__).parent / "ops" / "point_sample.py"
    if not source.is_file():
        pytest.skip("mmcv's point_sample.py is not installed")
    spec = importlib.util.spec_from_file_location("mmcv_point_sample_source", source)
    original = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(original)
    for align in (False, True):
        torch.testing.assert_close(mmcv_ops.point_sample(feat, points, align_corners=align),
                                   original.point_sample(feat, points, align_corners=align))


def test_stand_in_is_mmcv_ops_only_without_a_real_build(monkeypatch):
    import raydata_agent.tasks.segmentation  # noqa: F401  installs it before importing mmseg

    from mmengine.utils.dl_utils import mmcv_full_available

    assert sys.modules["mmcv.ops"] is mmcv_ops and mmcv_ops.install() is True
    import mmcv.ops

    assert mmcv.ops.point_sample is mmcv_ops.point_sample
    assert not mmcv_full_available()  # mmengine's DCN/SyncBN code paths stay off
    real = type(sys)("mmcv.ops")  # a full mmcv build, already imported: left alone
    monkeypatch.setitem(sys.modules, "mmcv.ops", real)
    assert mmcv_ops.install() is False and sys.modules["mmcv.ops"] is real


def test_unsupported_ops_raise_a_clear_error():
    from mmcv.ops import CrissCrossAttention, sigmoid_focal_loss

    with pytest.raises(NotImplementedError, match=r"mmcv\.ops\.sigmoid_focal_loss.*full mmcv"):
        sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(NotImplementedError, match=r"mmcv\.ops\.CrissCrossAttention.*full mmcv"):
        CrissCrossAttention(8)


# --- model and per-image signals -------------------------------------------------------------------

@pytest.fixture(scope="module")
def upernet():
    from raydata_agent.tasks.segmentation import build_upernet

    torch.manual_seed(0)
    return build_upernet(num_classes=5, depth=18, head_channels=32, aux_head=True, aux_weight=0.4)


def _mmseg_losses(model, x, y):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for label in y:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    return model.segmentor.loss(model.normalise(x), samples)


def _signals(model, x, y):
    from raydata_agent.tasks.segmentation import SegmentationTask

    task = SegmentationTask(load_config(None, SEG))
    return task.forward(model, (x, y), "cpu")


@pytest.mark.parametrize("equal_counts", [True, False])
def test_per_image_loss_matches_mmseg_batch_loss(upernet, equal_counts):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, 5, (4, 32, 32), generator=g)
    if equal_counts:
        y[:, :4] = 255  # the same number of ignored pixels in every image
    else:
        for i in range(4):
            y[i, : 3 * i] = 255
    upernet.train()  # aux head on; dropout draws the same masks in both passes with the same seed
    torch.manual_seed(7)
    out = _signals(upernet, x, y)
    torch.manual_seed(7)
    losses = _mmseg_losses(upernet, x, y)
    batch_loss = losses["decode.loss_ce"] + losses["aux.loss_ce"]  # aux loss_weight = aux_weight
    valid = (y != 255).flatten(1).sum(1).double()
    weighted = (out.loss.double() * valid).sum() / valid.sum()
    torch.testing.assert_close(weighted, batch_loss.double(), rtol=1e-5, atol=1e-6)
    if equal_counts:
        torch.testing.assert_close(out.loss.mean(), batch_loss, rtol=1e-5, atol=1e-6)
    else:  # the plain mean differs: images count once each, not per labelled pixel
        assert not torch.isclose(out.loss.mean(), batch_loss, rtol=1e-6)
    assert out.loss.requires_grad and out.probs is None
    assert out.uncertainty.shape == (4,) and ((out.uncertainty >= 0) & (out.uncertainty <= 1)).all()
    assert out.features.shape == (4, 512) and not out.features.requires_grad


def test_per_image_loss_ignores_unlabelled_pixels_and_empty_images(upernet):
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(3, 3, 32, 32, generator=g), torch.randint(0, 5, (3, 32, 32), generator=g)
    y2 = y.clone()
    y2[0, :16] = 255
    y2[1] = 255  # nothing labelled: loss 0, not NaN
    upernet.eval()  # no dropout, no aux head: the decode loss alone
    a, b = _signals(upernet, x, y), _signals(upernet, x, y2)
    upernet.train()
    assert b.loss[1] == 0 and b.uncertainty[1] == 0
    torch.testing.assert_close(a.loss[2], b.loss[2])
    # image 0 with its top half ignored: plain cross-entropy averaged over the bottom half only
    with torch.no_grad():
        logits, _, _ = upernet.eval()(x[:1])
    upernet.train()
    pixel = F.cross_entropy(F.interpolate(logits, size=(32, 32), mode="bilinear"), y[:1], reduction="none")
    torch.testing.assert_close(b.loss[0], pixel[0, 16:].mean(), rtol=1e-5, atol=1e-6)
    assert not torch.isclose(a.loss[0], b.loss[0])


def test_a_batch_of_one_trains(upernet):
    upernet.train()
    out = _signals(upernet, torch.rand(1, 3, 32, 32), torch.randint(0, 5, (1, 32, 32)))
    assert out.loss.shape == (1,) and out.features.shape == (1, 512) and torch.isfinite(out.loss).all()
    out.loss.mean().backward()


# --- data: ADE20K layout, bad inputs, the synthetic set ----------------------------------------------

def _write_pair(root: Path, name: str, size=(16, 12), mask_size=None, values=(0, 3), split="training"):
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    w, h = size
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / split / f"{name}.jpg")
    mw, mh = mask_size or size
    mask = rng.integers(values[0], values[1] + 1, (mh, mw)).astype(np.uint8)
    Image.fromarray(mask, mode="L").save(root / "annotations" / split / f"{name}.png")


def _ade(tmp_path, num_classes=3, **kwargs):
    return SegData(tmp_path, "train", image_size=8, num_classes=num_classes, **kwargs)


def test_reader_resizes_reduces_and_labels(tmp_path):
    _write_pair(tmp_path, "a", values=(0, 3))
    _write_pair(tmp_path, "b", size=(12, 12), values=(2, 2))  # all class 1 after reduction
    data = _ade(tmp_path)
    x, y = data.batch([0, 1])
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (2, 8, 8) and y.dtype == torch.int64
    assert set(y[0].unique().tolist()) <= {0, 1, 2, 255} and (y[0] == 255).any()  # 0 -> 255
    assert data.labels.dtype == np.int64 and data.labels[1] == 1
    assert data.sources == [str(tmp_path / "images/training/a.jpg"), str(tmp_path / "images/training/b.jpg")]
    assert data.skipped == 0


def test_missing_mask_is_skipped_and_logged(tmp_path, caplog):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    (tmp_path / "annotations/training/b.png").unlink()
    with caplog.at_level(logging.WARNING):
        data = _ade(tmp_path)
    assert len(data) == 1 and data.skipped == 1 and "no mask" in data.skipped_reasons[0]
    assert "skipped 1 of 2" in caplog.text and "b.jpg" in caplog.text


def test_size_mismatch_is_skipped(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b", size=(16, 12), mask_size=(15, 12))
    data = _ade(tmp_path)
    assert len(data) == 1 and data.skipped == 1
    assert "b.jpg: image is 16x12 but mask" in data.skipped_reasons[0]


def test_mask_value_out_of_range_is_an_error_naming_the_file(tmp_path):
    _write_pair(tmp_path, "a", values=(0, 3))
    _write_pair(tmp_path, "b", values=(0, 9))  # 9 -> class 8, but num_classes=3
    data = _ade(tmp_path)
    with pytest.raises(DataError, match=r"b\.png has class values \[3, 4, .*data\.num_classes"):
        data.labels
    with pytest.raises(DataError, match=r"b\.png"):
        data.batch([1])
    data.batch([0])  # the good pair still reads


def test_unreadable_files_are_errors_naming_the_file(tmp_path):
    _write_pair(tmp_path, "a")
    (tmp_path / "images/training/b.jpg").write_bytes(b"not an image")
    _write_pair(tmp_path, "c", size=(64, 48))
    (tmp_path / "annotations/training/b.png").write_bytes((tmp_path / "annotations/training/c.png").read_bytes())
    with pytest.raises(DataError, match=r"cannot read .*images/training/b\.jpg"):
        _ade(tmp_path)  # the header is read at load
    (tmp_path / "images/training/b.jpg").unlink()
    truncated = tmp_path / "images/training/c.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-1200])  # header intact, pixels cut off
    data = _ade(tmp_path)
    with pytest.raises(DataError, match=r"cannot read .*images/training/c\.jpg"):
        data.batch([1])


def test_rgb_mask_is_an_error_at_load(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    Image.new("RGB", (16, 12)).save(tmp_path / "annotations/training/b.png")
    with pytest.raises(DataError, match=r"mask .*b\.png has mode RGB; expected single-channel"):
        _ade(tmp_path)  # with the header at load, not when its labels are first read


def test_synthetic_set_is_deterministic_and_written_once(tmp_path):
    from raydata_agent.data.synthetic_seg import NUM_CLASSES, ensure_synthetic_seg

    cfg = DataConfig(name="synthetic_seg", path=str(tmp_path / "a"), num_samples=6, val_samples=2, image_size=24)
    root = ensure_synthetic_seg(cfg)
    other = ensure_synthetic_seg(DataConfig(**{**vars(cfg), "path": str(tmp_path / "b")}))
    files = sorted(p.relative_to(root) for p in root.rglob("*.*"))
    assert len(files) == 2 * 8 + 1
    assert all((root / f).read_bytes() == (other / f).read_bytes() for f in files)
    stamp = (root / files[0]).stat().st_mtime_ns
    assert ensure_synthetic_seg(cfg) == root and (root / files[0]).stat().st_mtime_ns == stamp  # reused
    with pytest.raises(DataError, match="made with"):
        ensure_synthetic_seg(DataConfig(**{**vars(cfg), "num_samples": 7}))
    data = SegData(root, "train", 24, NUM_CLASSES)
    assert len(data) == 6 and data.labels.min() >= 0 and (data.batch(range(6))[1] == 255).any()


@pytest.mark.parametrize("override,message", [
    (["task.depth=20"], "task.depth=20 is not allowed; choose one of: 18, 34, 50, 101, 152"),
    (["task.model=resnet18"], "task.model='resnet18' is not allowed; choose one of: upernet"),
    (["data.name=ade20k"], "data.path is required for data.name=ade20k"),
    (["data.name=ade20k", "data.num_classes=300", "data.path=/"], "data.num_classes=300 is out of range"),
    (["data.num_classes=10"], "data.num_classes applies to data.name=ade20k only"),
    (["task.aux_weight=-1"], "task.aux_weight=-1.0 must be >= 0"),
])
def test_segmentation_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["task.name=segmentation", *override])
    assert message in str(err.value)


def test_task_name_alone_picks_the_tasks_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["task.name=segmentation"])
    assert (cfg.task.model, cfg.data.name) == ("upernet", "synthetic_seg")
    assert (load_config().task.model, load_config().data.name) == ("small_cnn", "shapes")
    # data.path is made absolute in the driver: Ray Train workers run in another working directory
    assert cfg.data.path == str(tmp_path / "data_cache" / "synthetic_seg-n3000-v600-s32-seed0")
    assert load_config(None, ["task.name=segmentation", "data.path=here"]).data.path == str(tmp_path / "here")


# --- a real run -------------------------------------------------------------------------------------

@pytest.mark.integration
def test_segmentation_trains_with_a_selector_and_logs_miou_and_examples(ray_cluster, run_dirs, tmp_path):
    from mlflow.tracking import MlflowClient

    from raydata_agent.runner import run

    cfg = load_config(None, [*SEG, "data.image_size=64", "data.num_samples=64", "data.val_samples=16",
                             f"data.path={tmp_path / 'seg'}", "selection.selector=infobatch",
                             "selection.ratio=0.5", "train.epochs=2", "train.batch_size=16",
                             "train.optimizer=adamw", "train.lr=1e-3", *run_dirs])
    result = run(cfg, progress=False)
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert result.history[0]["selected"] == 64 and result.history[1]["selected"] < 64  # selection acted
    client = MlflowClient(result.tracking_uri)
    mlrun = client.get_run(result.run_id)
    assert mlrun.info.status == "FINISHED" and mlrun.data.params["task.name"] == "segmentation"
    metrics = mlrun.data.metrics
    assert 0 < metrics["mIoU"] <= 1 and 0 < metrics["aAcc"] <= 1
    assert metrics["val_metric"] == metrics["mIoU"]
    assert metrics["aAcc"] > 0.3  # most pixels are background: even 2 epochs learn that
    assert 0.5 <= metrics["cost_fraction"] < 1.0
    assert len(client.get_metric_history(result.run_id, "mIoU")) == 2
    examples = [a.path for a in client.list_artifacts(result.run_id, "examples")]
    assert len(examples) == 4 and all(p.startswith("examples/val_") and p.endswith(".png") for p in examples)
    assert result.checkpoint_path and (Path(result.checkpoint_path) / "model.pt").is_file()
