"""The streaming input path (data.pipeline=ray_data): each epoch's selected ids reach the Train workers
through Ray Data, decoded and augmented in map_batches; a bad file met mid-stream is skipped and counted."""
import json

import numpy as np
import pytest
import torch

from raydata_agent.config import ConfigError, load_config
from raydata_agent.data import ImageData
from raydata_agent.data.jpeg_folder import write_image_folder
from raydata_agent.data.streaming import decode_batch


@pytest.fixture(scope="module")
def jpeg_root(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("stream") / "shapes", train=64, val=32, size=32)
    # A file whose header reads (it passes the load-time check) but whose pixels are cut off: met mid-stream.
    bad = sorted((root / "train" / "square").glob("*.jpg"))[1]
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) * 2 // 3])
    return root, bad


def test_decode_augments_when_asked_and_marks_unreadable_files(jpeg_root):
    root, bad = jpeg_root
    files = np.array([str(bad)] + [str(p) for p in sorted((root / "train" / "disc").glob("*.jpg"))[:3]], dtype=object)
    batch = {"id": np.arange(4), "label": np.arange(4), "path": files, "epoch": np.zeros(4, np.int64)}
    plain = decode_batch(batch, 32, 3, None, seed=0, threads=2)
    view = decode_batch(batch, 32, 3, "resized_crop_flip", seed=0, threads=2)
    again = decode_batch(batch, 32, 3, "resized_crop_flip", seed=0, threads=2)
    later = decode_batch({**batch, "epoch": np.ones(4, np.int64)}, 32, 3, "resized_crop_flip", seed=0, threads=2)
    assert plain["ok"].tolist() == [False, True, True, True] and not plain["x"][0].any()
    assert plain["x"].shape == view["x"].shape == (4, 3, 32, 32)
    assert not np.array_equal(view["x"][1:], plain["x"][1:])  # training views are augmented ...
    assert np.array_equal(view["x"], again["x"]) and not np.array_equal(view["x"], later["x"])  # ... seeded per epoch
    assert plain["y"].tolist() == [0, 1, 2, 3] and plain["id"].tolist() == [0, 1, 2, 3]
    assert plain["x"].dtype == np.uint8  # a quarter of float32's bytes through the object store


def test_pipeline_key_is_checked():
    with pytest.raises(ConfigError, match="data.pipeline='stream' is not allowed"):
        load_config(None, ["data.pipeline=stream"])
    with pytest.raises(ConfigError, match="data.pipeline=ray_data streams classification"):
        load_config(None, ["task.name=segmentation", "data.pipeline=ray_data"])


def test_ray_data_run_that_leaves_its_tasks_no_cpu_is_refused_before_ray_starts(tmp_path):
    from raydata_agent.data.streaming import ray_data_starved
    from raydata_agent.preflight import preflight

    cfg = load_config(None, ["data.pipeline=ray_data", "train.num_workers=2", "ray.num_cpus=2",
                             f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    with pytest.raises(ConfigError, match=r"train.num_workers=2 x train.cpus_per_worker=1 hold 2 of the cluster's 2 "
                                          r"CPUs, .* less than data.stream_cpus=1: training would wait forever"):
        preflight(cfg)  # (the check comes first: a cluster already up in this process has 2 CPUs too)
    assert not ray_data_starved(2, 1, 1, 1) and not ray_data_starved(2, 2, 0.5, 1)  # the defaults; the example's
    assert ray_data_starved(2, 2, 1, 0.25) and not ray_data_starved(None, 8, 1, 1)  # None: a cluster that may grow


def test_ray_data_path_yields_each_selected_id_once_across_two_workers(ray_cluster, tmp_path, mlflow_uri):
    import ray.train
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    import raydata_agent
    from raydata_agent.data.streaming import epoch_dataset

    def _collect_ids(config: dict) -> None:
        """A Train worker (nested: pickled by value) writes the ids its shard gave it each epoch."""
        import ray.train
        import torch

        from raydata_agent.data.streaming import worker_batches

        session = config["session"]
        rank = ray.train.get_context().get_world_rank()
        shard = ray.train.get_dataset_shard("train")
        for epoch in range(config["epochs"]):
            session.plan_epoch(epoch)
            got = []
            for ids, (x, y), _, ok in worker_batches(shard, 8, 2):
                got.append(ids.tolist())
                session.record(ids, torch.zeros(len(ids)))  # a run that records nothing fails at close
            with open(f"{config['out']}/{rank}_{epoch}.json", "w") as f:
                json.dump({"ids": sum(got, []), "selected": session._sorted_ids.tolist()}, f)
            session.end_epoch()
            ray.train.report({"epoch": epoch})

    rng = np.random.default_rng(0)
    data = ImageData(rng.integers(0, 4, 64), images=rng.integers(0, 255, (64, 3, 8, 8), dtype=np.uint8),
                     image_size=8, augment="crop_flip")
    session = raydata_agent.start_session(labels=data.labels, epochs=2, selector="random_dynamic", ratio=0.5,
                                          use_ray=True, tracking_uri=mlflow_uri,
                                          storage_path=str(tmp_path / "runs"), progress=False)
    cfg = load_config(None, ["data.pipeline=ray_data", "data.stream_cpus=0.25"])
    TorchTrainer(_collect_ids, datasets={"train": epoch_dataset(session, data, cfg)},
                 train_loop_config={"session": session, "epochs": 2, "out": str(tmp_path)},
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                 run_config=ray.train.RunConfig(storage_path=str(tmp_path / "runs"))).fit()
    session.close()
    for epoch, expected in ((0, 64), (1, 32)):  # a full warm-up epoch, then half
        got = [json.loads((tmp_path / f"{rank}_{epoch}.json").read_text()) for rank in (0, 1)]
        assert got[0]["selected"] == got[1]["selected"] and len(got[0]["selected"]) == expected
        assert len(got[0]["ids"]) == len(got[1]["ids"]) == expected // 2  # equal shares: DDP steps match
        assert sorted(got[0]["ids"] + got[1]["ids"]) == got[0]["selected"]  # each selected id, once


def test_run_streams_jpeg_files_and_skips_a_bad_one(ray_cluster, jpeg_root, run_dirs):
    from raydata_agent.runner import run

    root, _ = jpeg_root
    cfg = load_config(None, ["data.name=imagefolder", f"data.path={root}", "data.image_size=32",
                             "data.pipeline=ray_data", "data.stream_cpus=0.5", "train.precision=bf16",
                             "train.epochs=2", "train.batch_size=16", *run_dirs])
    result = run(cfg, progress=False)
    assert [h["selected"] for h in result.history] == [64, 32]
    assert result.history[0]["data_skipped_stream"] == 1  # met in the full warm-up epoch, counted, not fatal
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
