"""The README's "Cluster jobs" walk-through, run as a user runs it: its own lines in bash, from a shell
whose PATH has no venv until the walk-through activates it. `ray start --head` on loopback, a run, a
sweep and a resume submitted with `ray job submit`, all logged to a real `mlflow server`.

What the test changes, and only that: ports (the test session's cluster and other users of this host
hold Ray's and MLflow's defaults), `~` (a temporary folder instead of the real home), smaller data on
each job line, a two-trial sweep file in place of the bundled one, and no `ray stop` (it would stop
every Ray on the host): the processes this head started are ended by their temp dir instead.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[1]
# An error-level line: Ray core's C++ log (`[2026-12-03 18:22:14,231 E 6481 6567] core_worker.cc:...`)
# or Python logging's ERROR.
ERROR_LINE = re.compile(r"\[[\d-]+ [\d:,]+ E \d+ \d+\] .*|\bERROR\b.*")
SMALL = "data.num_samples=200 data.val_samples=50 data.label_noise=0.0 train.batch_size=50"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def walkthrough() -> str:
    """The bash block under the README's walk-through heading, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Walk-through"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return block.replace("\\\n", " ")


def users_path() -> str:
    """PATH as a login shell has it: without the venv this test process runs from."""
    venv_bin = str(Path(sys.prefix) / "bin")
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p.rstrip("/") != venv_bin)


def as_test_script(block: str, home: Path, ports: dict, ray_tmp: str, sweep_file: Path) -> str:
    own = " ".join(f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port"))
    lines = []
    for line in block.splitlines():
        line = line.replace("$HOME/", f"{home}/").replace("~/", f"{home}/")
        line = line.replace("--port 5000", f"--port {ports['mlflow']}").replace(":5000", f":{ports['mlflow']}")
        line = line.replace(":8265", f":{ports['dashboard']}")
        if line.startswith("source .venv/bin/activate") and not (ROOT / ".venv").exists():
            line = line.replace(".venv", sys.prefix, 1)  # a git worktree runs the main checkout's venv
        if line.startswith("ray start --head"):
            line += (f" --port={ports['gcs']} --dashboard-port={ports['dashboard']} --num-cpus=2"
                     f" --temp-dir={ray_tmp} {own}")
        if line.startswith("ray job submit"):
            line = line.replace("jobs/configs/sweep_shapes.yaml", str(sweep_file))
            line += f" {SMALL} ray.storage_path={home}/ray_results/raydata_agent tracking.experiment=walkthrough"
        if line.startswith("ray stop"):
            continue
        if line.startswith("mlflow server"):
            line = line.replace(" &", f" > {home}/mlflow.log 2>&1 &") + "\nfor i in $(seq 180); do curl -s " \
                   f"http://127.0.0.1:{ports['mlflow']}/health && break; sleep 1; done"
        lines.append(line)
    return "set -e\n" + "\n".join(lines) + "\n"


def test_readme_walkthrough_runs_as_written(tmp_path):
    from mlflow.tracking import MlflowClient

    home = tmp_path / "home"
    home.mkdir()
    ports = {"mlflow": free_port(), "dashboard": free_port(), "gcs": free_port()}
    ray_tmp = tempfile.mkdtemp(prefix="rdj", dir="/tmp")  # short: Ray's unix sockets live under it
    sweep_file = tmp_path / "sweep_small.yaml"
    bundled = yaml.safe_load((ROOT / "jobs/configs/sweep_shapes.yaml").read_text())
    bundled["sweep"]["grid"] = {"selection.selector": ["random_dynamic"], "selection.ratio": [0.5]}
    bundled["train"]["epochs"] = 2
    sweep_file.write_text(yaml.safe_dump(bundled))
    script = as_test_script(walkthrough(), home, ports, ray_tmp, sweep_file)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "VIRTUAL_ENV", "RAY_AUTH_MODE")}
    env["PATH"] = users_path()
    env["RAY_raylet_start_wait_time_s"] = "180"  # a busy 2-CPU host registers a new node slowly
    assert subprocess.run(["bash", "-c", "command -v ray || true"], env=env, capture_output=True,
                          text=True).stdout.strip() != str(Path(sys.prefix) / "bin" / "ray")
    shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = shell.communicate(timeout=900)
        assert shell.returncode == 0, out[-4000:]
        assert out.count("succeeded") >= 3, out[-4000:]
        assert "No module named" not in out and "multiple active Ray instances" not in out
        jobs_output = out[out.index("Job submission server address"):]  # the jobs' output, after `ray start`
        assert not ERROR_LINE.search(jobs_output), ERROR_LINE.search(jobs_output).group(0)  # a clean console
        assert "Traceback" not in jobs_output, jobs_output[max(0, jobs_output.index("Traceback") - 400):][:2000]
        logs = "".join(p.read_text(errors="replace") for p in Path(ray_tmp).glob("session_*/logs/*.err"))
        assert "ConnectionError: Found multiple active Ray instances" not in logs  # Train's PG cleaner

        uri = f"http://127.0.0.1:{ports['mlflow']}"
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("walkthrough")
        runs = client.search_runs([exp.experiment_id])
        trained = [r for r in runs if r.data.params.get("selection.selector") == "greedy"]
        assert len(trained) == 2 and all(r.info.status == "FINISHED" for r in trained)
        resumed = next(r for r in trained if "resumed_from" in r.data.tags)
        assert resumed.data.tags["resumed_from"].startswith(str(home / "ray_results" / "raydata_agent"))
        steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "val_metric")]
        assert steps == [1, 2, 3, 4, 5, 6]  # run 1's four epochs restored, then two more
        assert resumed.data.tags["mlflow.source.name"] == "jobs/train.py"
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert all(r.data.tags.get("mlflow.source.git.commit") == head for r in trained)  # from --metadata-json
        parent = next(r for r in runs if r.data.tags.get("raydata_agent.sweep") == "parent")
        assert "best_val_metric" in parent.data.metrics and parent.info.status == "FINISHED"
        assert f"{uri}/#/experiments/{exp.experiment_id}/runs/" in out  # the printed pages, not `mlflow ui`
        assert "mlflow ui --backend-store-uri http" not in out
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the walk-through's `mlflow server &` and its workers
            try:
                os.killpg(shell.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(5)
        # Everything this head started carries its temp dir on the command line; never `ray stop`,
        # which would also stop the test session's own cluster.
        subprocess.run(["pkill", "-f", ray_tmp], check=False)
