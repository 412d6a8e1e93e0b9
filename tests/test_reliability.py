"""Fail fast, atomic state, private by default (unit tests, and one real run against an MLflow server)."""
import time

import numpy as np
import pyarrow as pa
import pytest
import ray

from raydata_agent import checkpoint
from raydata_agent.cli import main
from raydata_agent.tracking import Tracker, check_reachable, redact


@pytest.fixture
def no_ray(monkeypatch):
    """Every check here must fire before Ray starts."""
    import raydata_agent.cluster

    def refuse(cfg):
        raise AssertionError("Ray was started before the bad input was found")

    monkeypatch.setattr(raydata_agent.cluster, "init_ray", refuse)


def one_line_error(capsys, argv) -> str:
    start = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    err = err.splitlines()[-1]  # MLflow may log its own INFO lines (database set-up) before
    assert time.perf_counter() - start < 20
    return err


def test_unreachable_tracking_server_is_one_line_before_ray(no_ray, capsys, tmp_path):
    err = one_line_error(capsys, ["run", "tracking.uri=http://alice:s3cret@127.0.0.1:1",
                                  f"ray.storage_path={tmp_path}"])
    assert err == ("config error: tracking.uri=http://***@127.0.0.1:1 is not reachable within 5s "
                   "([Errno 111] Connection refused); start the MLflow server or fix the URI")


def test_empty_cifar_folder_is_one_line_before_ray(no_ray, capsys, tmp_path):
    err = one_line_error(capsys, ["run", "data.name=cifar10", f"data.path={tmp_path}",
                                  f"tracking.uri=sqlite:///{tmp_path}/m.db", f"ray.storage_path={tmp_path}"])
    assert err.startswith(f"data error: cannot read cifar10 from {tmp_path}: {tmp_path}/cifar-10-batches-py "
                          "does not exist") and "download=True" not in err


def test_bad_resume_checkpoint_is_one_line_before_ray(no_ray, capsys, tmp_path):
    (tmp_path / "ckpt").mkdir()
    err = one_line_error(capsys, ["run", f"train.resume_from={tmp_path / 'ckpt'}",
                                  f"tracking.uri=sqlite:///{tmp_path}/m.db", f"ray.storage_path={tmp_path}"])
    assert err.startswith(f"config error: train.resume_from: checkpoint {tmp_path / 'ckpt'} has no manifest.json")


def test_worker_group_bigger_than_the_local_cluster_is_one_line_before_ray(no_ray, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the suite's shared cluster may be up: a new run's path
    err = one_line_error(capsys, ["run", "train.num_workers=3", "ray.num_cpus=2",
                                  f"tracking.uri=sqlite:///{tmp_path}/m.db", f"ray.storage_path={tmp_path}"])
    assert err == ("config error: train.num_workers=3 x train.cpus_per_worker=1 needs 3 CPUs (it has 2) on the "
                   "local cluster (ray.num_cpus=2): lower train.num_workers, or join a bigger cluster with ray.address")


def test_what_a_joined_cluster_lacks_is_named():
    from raydata_agent.config import load_config
    from raydata_agent.preflight import shortfall, worker_group_request

    request = worker_group_request(load_config(None, ["train.num_workers=2", "train.use_gpu=true"]))
    assert shortfall(request, {"CPU": 8.0, "GPU": 1.0}) == "2 GPUs (it has 1)"
    assert shortfall(request, {"CPU": 8.0, "GPU": 2.0}) is None


def test_resume_of_an_unknown_run_is_one_line(capsys, tmp_path):
    err = one_line_error(capsys, ["resume", "0123456789abcdef", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert err == f"config error: no MLflow store at sqlite:///{tmp_path}/m.db: pass the run's --tracking-uri"
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path}/m.db").search_experiments()  # creates the store
    err = one_line_error(capsys, ["resume", "0123456789abcdef", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert err == (f"config error: cannot resume run 0123456789abcdef from sqlite:///{tmp_path}/m.db: "
                   "Run with id=0123456789abcdef not found")


def test_credentials_are_masked():
    assert redact("http://bob:pw@mlflow:5000/x") == "http://***@mlflow:5000/x"
    assert redact("https://token@host") == "https://***@host"
    assert redact("sqlite:////a/b.db") == "sqlite:////a/b.db"
    check_reachable("sqlite:////tmp/does/not/exist/yet/mlflow.db")  # MLflow creates the folders


def write_checkpoint(directory):
    table = pa.table({"id": np.arange(5), "loss": np.ones(5, np.float32)})
    checkpoint.write(directory, {"epoch": 3, "w": np.arange(3)}, table, {"history": [1, 2]})


def test_checkpoint_round_trip_and_torn_files_are_named(tmp_path):
    write_checkpoint(tmp_path / "a")
    state = checkpoint.read(tmp_path / "a")
    assert state["model"]["epoch"] == 3 and state["pool"].num_rows == 5 and state["store"] == {"history": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "manifest.json", "model.pt", "pool.parquet", "store.pkl"]  # no temporary file left behind

    pool = tmp_path / "a" / "pool.parquet"
    whole = pool.read_bytes()
    pool.write_bytes(whole[: len(whole) // 2])  # a copy cut short
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint file {pool} is truncated or corrupt"):
        checkpoint.read(tmp_path / "a")
    pool.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(checkpoint.CheckpointError, match="pool.parquet is truncated or corrupt"):
        checkpoint.read(tmp_path / "a")
    pool.write_bytes(whole)
    (tmp_path / "a" / "store.pkl").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="store.pkl is missing"):
        checkpoint.verify(tmp_path / "a")


def test_latest_skips_a_torn_checkpoint(tmp_path):
    write_checkpoint(tmp_path / "checkpoint_2026-01-01_00-00-01")
    write_checkpoint(tmp_path / "checkpoint_2026-01-01_00-00-02")
    (tmp_path / "checkpoint_2026-01-01_00-00-02" / "manifest.json").unlink()  # its writer died
    assert checkpoint.latest(tmp_path).name == "checkpoint_2026-01-01_00-00-01"


def test_snapshot_keeps_score_columns_compressed(tmp_path):
    import pyarrow.parquet as pq

    from raydata_agent.pool import SamplePool

    pool = SamplePool(np.arange(100) % 3, sources=[f"/data/img_{i}.jpg" for i in range(100)])
    pool.update(np.arange(10), epoch=0, loss=np.ones(10))
    path = pool.snapshot(tmp_path / "s.parquet", columns="scores")
    meta = pq.ParquetFile(path).metadata
    assert "source" not in pq.read_schema(path).names and "loss" in pq.read_schema(path).names
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "source" in pq.read_schema(pool.snapshot(tmp_path / "all.parquet")).names


@pytest.mark.integration
def test_the_local_clusters_metrics_port_is_not_on_the_network(ray_cluster):
    """The DashboardAgent's Prometheus port answers without Ray's token: on 0.0.0.0 it showed task and actor
    names to the network. A cluster started like a run's (init_ray) does not export metrics."""
    import psutil

    port = ray._private.worker._global_node.metrics_export_port
    bound = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            bound |= {conn.laddr.ip for conn in proc.net_connections(kind="tcp")
                      if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port}
        except psutil.NoSuchProcess:  # a Ray worker that ended meanwhile
            pass
    assert bound <= {"127.0.0.1"}, (port, bound)


@pytest.mark.integration
def test_tracking_credentials_never_reach_logs_params_or_artifacts(ray_cluster, tmp_path, capfd, monkeypatch):
    """A real run against a real `mlflow server` with user:password in the URI, started the way a shell
    starts it (the command line becomes the run's `raydata_agent.command` tag); then every byte the run
    wrote (server database and artifacts, checkpoints, snapshots, console, Ray's session logs) is grepped.
    The real server passes the pre-start check, and only our link to the run is printed, not MLflow's."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'server.db'}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300  # an MLflow server starts in seconds, or minutes on a loaded machine
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(1)
        secret = "s3cretPassw0rd"
        uri = f"http://alice:{secret}@127.0.0.1:{port}"
        monkeypatch.setattr(sys, "argv", [
            "raydata-agent", "run", "selection.selector=random_dynamic", "train.epochs=1", "data.num_samples=200",
            "data.val_samples=50", f"tracking.uri={uri}", f"ray.storage_path={tmp_path / 'runs'}"])
        code = main(sys.argv[1:])
        assert code == 0
        console = capfd.readouterr()
        assert secret not in console.out + console.err and "http://***@127.0.0.1" in console.out
        assert "View run" not in console.out and "?workflowType=machine_learning" in console.out
        client = MlflowClient(f"http://127.0.0.1:{port}")
        (run,) = client.search_runs([client.get_experiment_by_name("raydata_agent").experiment_id])
        assert run.data.params["tracking.uri"] == f"http://***@127.0.0.1:{port}"
        assert f"tracking.uri=http://***@127.0.0.1:{port}" in run.data.tags["raydata_agent.command"]
        plain = f"http://127.0.0.1:{port}"  # no password: MLflow would print its GenAI-view link at the end
        check_reachable(plain)
        Tracker.start(plain, "raydata_agent", "plain", {}).end()
        assert "View run" not in capfd.readouterr().out
        session_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
        leaks = [str(p) for folder in (tmp_path, session_logs) for p in folder.rglob("*")
                 if p.is_file() and secret.encode() in p.read_bytes()]
        assert not leaks, leaks
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
