"""The cluster walk-through, jobs/walkthrough.sh (the docs show it), run as a user runs it: bash, from a
shell whose PATH has no venv until the script activates it. `ray start --head` on loopback, a run, a
sweep and a resume submitted with `ray job submit`, all logged to a real `mlflow server`.

What the test changes, through the script's environment only: ports (the test session's cluster and
other users of this host hold Ray's and MLflow's defaults), the state folder (a temporary one), smaller
data and a one-trial sweep. The script leaves the head running; the processes it started are ended by
their temp dir here, never by `ray stop` (it would stop every Ray on the host).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from console_lines import assert_clean

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[1]
SMALL = "data.num_samples=200 data.val_samples=50 data.label_noise=0.0 train.batch_size=50"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def users_path() -> str:
    """PATH as a login shell has it: without the venv this test process runs from."""
    venv_bin = str(Path(sys.prefix) / "bin")
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p.rstrip("/") != venv_bin)


def test_walkthrough_runs_as_written(tmp_path):
    from mlflow.tracking import MlflowClient

    home = tmp_path / "home"
    ports = {"mlflow": free_port(), "dashboard": free_port(), "gcs": free_port()}
    ray_tmp = tempfile.mkdtemp(prefix="rdj", dir="/tmp")  # short: Ray's unix sockets live under it
    own = " ".join(f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "VIRTUAL_ENV", "RAY_AUTH_MODE")}
    env.update(
        PATH=users_path(), STATE=str(home), MLFLOW_PORT=str(ports["mlflow"]), DASHBOARD_PORT=str(ports["dashboard"]),
        RAY_START_ARGS=f"--port={ports['gcs']} --num-cpus=2 --temp-dir={ray_tmp} {own}",
        JOB_ARGS=f"{SMALL} tracking.experiment=walkthrough",
        SWEEP_ARGS="sweep.grid.selection.selector=[random_dynamic] sweep.grid.selection.ratio=[0.5] sweep.full_baseline=false",
        RAY_raylet_start_wait_time_s="180")  # a busy 2-CPU host registers a new node slowly
    if not (ROOT / ".venv").exists():
        env["VENV"] = sys.prefix  # a git worktree runs the main checkout's venv
    assert subprocess.run(["bash", "-c", "command -v ray || true"], env=env, capture_output=True,
                          text=True).stdout.strip() != str(Path(sys.prefix) / "bin" / "ray")
    shell = subprocess.Popen(["bash", "jobs/walkthrough.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = shell.communicate(timeout=900)
        assert shell.returncode == 0, out[-4000:]
        assert out.count("succeeded") >= 3, out[-4000:]
        assert "No module named" not in out and "multiple active Ray instances" not in out
        jobs_output = out[out.index("Job submission server address"):]  # the jobs' output, after `ray start`
        assert_clean(jobs_output)
        logs = "".join(p.read_text(errors="replace") for p in Path(ray_tmp).glob("session_*/logs/*.err"))
        assert "ConnectionError: Found multiple active Ray instances" not in logs  # Train's PG cleaner

        uri = f"http://127.0.0.1:{ports['mlflow']}"
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("walkthrough")
        runs = client.search_runs([exp.experiment_id])
        trained = [r for r in runs if r.data.params.get("selection.selector") == "greedy"]
        assert len(trained) == 2 and all(r.info.status == "FINISHED" for r in trained)
        resumed = next(r for r in trained if "resumed_from" in r.data.tags)
        assert resumed.data.tags["resumed_from"].startswith(str(home / "checkpoints"))
        steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "val_metric")]
        assert steps == [1, 2, 3]  # run 1's two epochs restored, then one more
        assert resumed.data.tags["mlflow.source.name"] == "jobs/train.py"
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert all(r.data.tags.get("mlflow.source.git.commit") == head for r in trained)  # from --metadata-json
        parent = next(r for r in runs if r.data.tags.get("raydata_agent.sweep") == "parent")
        assert "best_val_metric" in parent.data.metrics and parent.info.status == "FINISHED"
        assert f"{uri}/#/experiments/{exp.experiment_id}/runs/" in out  # the printed pages, not `mlflow ui`
        assert "mlflow ui --backend-store-uri http" not in out
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the script's `mlflow server &` and its workers
            try:
                os.killpg(shell.pid, sig)
            except ProcessLookupError:
                break
            for _ in range(50):  # up to 5 s for the group to go, then the harder signal
                time.sleep(0.1)
                try:
                    os.killpg(shell.pid, 0)
                except ProcessLookupError:
                    break
        # Everything this head started carries its temp dir on the command line; never `ray stop`,
        # which would also stop the test session's own cluster.
        subprocess.run(["pkill", "-f", ray_tmp], check=False)
