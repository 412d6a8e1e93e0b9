"""A real job round trip: `ray start --head` on loopback, a job submitted through the Jobs API,
and its run read back from a real `mlflow server`. Everything started here is stopped here."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 90) -> None:
    """Until the server answers at all (any HTTP status, 401 included)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def submit(client, uri: str, tmp_path: Path) -> str:
    return client.submit_job(
        entrypoint=f"{sys.executable} jobs/train.py selection.selector=random_dynamic data.num_samples=200 "
                   f"data.val_samples=50 train.epochs=2 tracking.uri={uri} tracking.experiment=job_round_trip "
                   f"ray.storage_path={tmp_path / 'runs'}",
        runtime_env={"working_dir": str(ROOT),
                     "excludes": [".venv", ".git", "runs", "mlruns", "mlflow.db", "data_cache", ".whl", ".gl"]})


def test_submitted_job_logs_to_a_real_mlflow_server(tmp_path):
    from mlflow.tracking import MlflowClient
    from ray.job_submission import JobStatus, JobSubmissionClient

    ray_tmp = tempfile.mkdtemp(prefix="rdj", dir="/tmp")  # short: Ray's unix sockets live under it
    gcs, dashboard, mlflow_port = free_port(), free_port(), free_port()
    # Every port of this second head is its own: the test session's cluster already holds Ray's
    # fixed defaults (its dashboard agent listens on 52365), and an agent that cannot bind never
    # registers, so the Jobs API would answer "No available agent" for ever.
    own_ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port")]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    mlflow = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--num-cpus=2", f"--temp-dir={ray_tmp}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--disable-usage-stats", *own_ports],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{mlflow_port}/health")
        # Token auth is on (Ray >= 2.59) and stays on: the head uses the token in ~/.ray/auth_token
        # (or RAY_AUTH_TOKEN), and this client presents the same token, deliberately.
        wait_for(f"http://127.0.0.1:{dashboard}/", timeout=120)  # by now the head has written its token
        token = os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").read_text().strip()
        client = JobSubmissionClient(f"http://127.0.0.1:{dashboard}", headers={"Authorization": f"Bearer {token}"})
        uri = f"http://127.0.0.1:{mlflow_port}"
        deadline = time.time() + 120
        while True:  # the head's dashboard answers before its job agent has registered
            try:
                job = submit(client, uri, tmp_path)
                break
            except RuntimeError as err:
                if "No available agent" not in str(err) or time.time() > deadline:
                    raise
                time.sleep(3)
        deadline = time.time() + 400
        while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                              JobStatus.STOPPED}:
            assert time.time() < deadline, "job did not finish in time"
            time.sleep(3)
        logs = client.get_job_logs(job)
        assert status == JobStatus.SUCCEEDED, logs[-3000:]
        assert "summary" in logs and "cost fraction" in logs

        mlflow_client = MlflowClient(uri)
        exp = mlflow_client.get_experiment_by_name("job_round_trip")
        runs = mlflow_client.search_runs([exp.experiment_id])
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert len(mlflow_client.get_metric_history(runs[0].info.run_id, "val_metric")) == 2
        assert mlflow_client.list_artifacts(runs[0].info.run_id, "plots")
    finally:
        for proc in (head, mlflow):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        head.wait(timeout=60)
        mlflow.wait(timeout=30)
        # Anything this head started (raylet, workers) carries its temp dir on the command line; never
        # `ray stop`, which would also stop the test session's own cluster.
        subprocess.run(["pkill", "-f", ray_tmp], check=False)
