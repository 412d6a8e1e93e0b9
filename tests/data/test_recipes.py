"""Standard classification recipes: augmentation on training only, normalisation in the model,
mixed precision on CPU, threaded decoding with prefetch, and a run from generated JPEG files."""
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from raydata_agent.config import ConfigError, load_config
from raydata_agent.data import ImageData
from raydata_agent.data.jpeg_folder import write_image_folder
from raydata_agent.data.recipes import augment_batch
from raydata_agent.runner import run
from raydata_agent.tasks import build_task
from raydata_agent.train import autocast, prefetched


@pytest.fixture(scope="module")
def jpeg_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("jpeg") / "shapes", train=60, val=30, size=32)


def folder_task(root, *overrides):
    task = build_task(load_config(None, ["data.name=imagefolder", f"data.path={root}", "data.image_size=32",
                                         *overrides]))
    return (task, *task.load_data())


def test_generated_folder_is_written_once_and_readable(jpeg_root):
    assert sorted(p.name for p in (jpeg_root / "train").iterdir())[:3] == ["cross", "diamond", "disc"]
    assert sum(1 for _ in (jpeg_root / "train").rglob("*.jpg")) == 60
    stamp = (jpeg_root / "train" / "disc").stat().st_mtime_ns
    write_image_folder(jpeg_root, train=60, val=30, size=32)  # same settings: left alone
    assert (jpeg_root / "train" / "disc").stat().st_mtime_ns == stamp


def test_augmentation_is_for_training_only_and_seeded(jpeg_root):
    task, train, val = folder_task(jpeg_root)
    assert train.augment == "resized_crop_flip" and val.augment is None  # the imagefolder standard
    ids = np.arange(8)
    plain, _ = train.batch(ids)
    view, _ = train.batch(ids, rng=np.random.default_rng(3))
    again, _ = train.batch(ids, rng=np.random.default_rng(3))
    assert view.shape == plain.shape and not torch.equal(view, plain) and torch.equal(view, again)
    assert torch.equal(val.batch(ids, rng=np.random.default_rng(3))[0], val.batch(ids)[0])
    # evaluation reads the stored images: the same accuracy with or without the training recipe
    model = task.build_model()
    assert task.evaluate(model, val, torch.device("cpu")) == task.evaluate(model, val, torch.device("cpu"))


def test_crop_flip_keeps_content_and_generated_sets_stay_plain():
    x = torch.rand(16, 3, 32, 32)
    out = augment_batch(x, "crop_flip", np.random.default_rng(0))
    assert out.shape == x.shape
    # a crop of the reflect-padded image, maybe flipped: its centre is a shifted copy of the original's
    centre = out[:, :, 4:28, 4:28]
    assert all(any(torch.equal(centre[i], c[:, 4 + dy:28 + dy, 4 + dx:28 + dx])
                   for c in (x[i], x[i].flip(-1)) for dy in range(-4, 5) for dx in range(-4, 5)) for i in range(16))
    train, _, _ = __import__("raydata_agent.data", fromlist=["load_dataset"]).load_dataset(load_config(None, []).data)
    assert train.augment is None  # shapes: the figures in RESULTS.md are measured without


def test_normalisation_lives_in_the_model(jpeg_root):
    task, train, _ = folder_task(jpeg_root)
    mean, std = task.channel_stats
    x, _ = train.batch(np.arange(len(train)))
    assert np.allclose(mean, x.mean(dim=(0, 2, 3)).tolist(), atol=0.02)  # 60 < NORM_SAMPLE: all of them
    model = task.build_model()
    assert torch.allclose(model.normalize(x).mean(dim=(0, 2, 3)), torch.zeros(3), atol=0.05)
    assert "normalize.mean" in model.state_dict()  # saved with the checkpoint
    task, _, _ = folder_task(jpeg_root, "data.normalize=false")
    assert task.channel_stats is None and "normalize.mean" not in task.build_model().state_dict()


def test_bf16_forward_backward_on_cpu_keeps_signals_float32(jpeg_root):
    task, train, _ = folder_task(jpeg_root, "train.precision=bf16", "train.label_smoothing=0.1")
    model = task.build_model()
    with autocast("bf16", torch.device("cpu")):
        out = task.forward(model, train.batch(np.arange(8), rng=np.random.default_rng(0)), torch.device("cpu"))
        logits, _ = model(train.batch(np.arange(2))[0])
    assert logits.dtype == torch.bfloat16  # autocast is really on
    assert out.loss.dtype == out.probs.dtype == out.features.dtype == torch.float32
    out.loss.mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_precision_and_smoothing_are_validated():
    with pytest.raises(ConfigError, match="train.precision='fp8' is not allowed"):
        load_config(None, ["train.precision=fp8"])
    with pytest.raises(ConfigError, match="train.label_smoothing=1.0 is out of range"):
        load_config(None, ["train.label_smoothing=1.0"])


def test_prefetch_loads_the_next_batch_while_this_one_trains():
    loaded, starts = [], {}

    def load(chunk):
        starts[chunk] = time.perf_counter()
        time.sleep(0.05)
        loaded.append((chunk, threading.current_thread().name))
        return chunk * 10

    seen = []
    for chunk, batch, _ in prefetched([1, 2, 3], load):
        seen.append((chunk, batch))
        step = time.perf_counter()
        time.sleep(0.05)  # the "training step"
        if chunk < 3:
            assert starts[chunk + 1] <= step + 0.01  # the next load started before this step ended
    assert seen == [(1, 10), (2, 20), (3, 30)]
    assert all(name.startswith("prefetch") for _, name in loaded)


def test_a_file_the_channel_statistics_cannot_decode_is_a_load_time_skip(jpeg_root, tmp_path):
    root = tmp_path / "jpeg"
    shutil.copytree(jpeg_root, root)
    victim = sorted((root / "train" / "disc").iterdir())[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) * 2 // 3])  # the header reads; the pixels do not
    task, train, _ = folder_task(root)  # normalisation on (imagefolder): the statistics decode it
    assert [(path, why.split(":")[0]) for path, why in task.skipped] == [(str(victim), "mid-run")]
    # in the run's data_skipped (load), so the workers, whose own load meets it too, do not count it again


@pytest.mark.integration
def test_run_trains_from_jpeg_files_in_bf16_and_skips_a_file_cut_mid_run(ray_cluster, run_dirs, jpeg_root, tmp_path):
    root = tmp_path / "jpeg"
    shutil.copytree(jpeg_root, root)
    victim = sorted((root / "train" / "disc").iterdir())[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) * 2 // 3])  # the header survives the load check; the pixels do not
    # A sound image whose name is not UTF-8 (a pool source must be): skipped at load, named by its bytes.
    with open(os.open(bytes(root / "train" / "disc") + b"/\xff.jpg", os.O_WRONLY | os.O_CREAT), "wb") as f:
        f.write(whole)
    result = run(load_config(None, ["data.name=imagefolder", f"data.path={root}", "data.image_size=32",
                                    "data.normalize=false",  # no channel statistics: the cut file is met mid-run
                                    "train.precision=bf16", "train.label_smoothing=0.1", "train.epochs=2",
                                    "train.batch_size=20", "selection.selector=random_dynamic", *run_dirs]),
                 progress=False)
    client = MlflowClient(run_dirs[0].split("=", 1)[1])
    run_info = client.get_run(result.run_id)
    assert run_info.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(result.run_id, "selected")] == [60, 30]
    assert run_info.data.params["train.precision"] == "bf16"
    assert "data_wait_s" in run_info.data.metrics
    assert [m.value for m in client.get_metric_history(result.run_id, "data_skipped")] == [1]
    listed = Path(client.download_artifacts(result.run_id, "data/skipped.tsv")).read_text()
    assert "disc/\\xff.jpg\tfile name is not valid UTF-8" in listed
    # the cut file is skipped and counted once, in the epoch that first decoded it, not fatal
    assert [m.value for m in client.get_metric_history(result.run_id, "skipped_files")] == [1, 0]
