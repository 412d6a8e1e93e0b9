"""`raydata-agent up` and `down`: a local head that later runs join instead of starting Ray, and that
`down` ends completely (every process it started, nothing else). Run as a user runs them: the CLI in
fresh processes, with the state file in a home of the test's own."""
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[1]
JOIN = """
from raydata_agent.cluster import init_ray
from raydata_agent.config import Config
import ray
init_ray(Config())
print("GCS", ray.get_runtime_context().gcs_address)
print("ENV", ray.get(ray.remote(lambda: __import__("os").environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]).remote()))
"""


def cli(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "raydata_agent.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout


def own_processes(state: dict) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(state["temp_dir"] in a or state["address"] in a for a in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_up_starts_a_head_that_runs_join_and_down_ends_it(tmp_path):
    env = {**os.environ, "RAYDATA_AGENT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE"):
        env.pop(key, None)
    env.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)  # conftest's; the head must bring its own
    state = None
    try:
        assert "started a local Ray cluster" in cli(env, "up", "--num-cpus", "1")
        state = json.loads((tmp_path / "local_cluster.json").read_text())
        assert "already up" in cli(env, "up")  # a second `up` finds it, starts nothing
        joined = subprocess.run([sys.executable, "-c", JOIN], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)
        assert joined.returncode == 0, joined.stderr[-3000:]
        assert "joined the local Ray cluster that `raydata-agent up` started" in joined.stdout
        assert f"GCS {state['address']}" in joined.stdout  # this head, not a new local cluster
        assert "ENV 0.5" in joined.stdout  # the local Train settings reach the cluster's workers
        assert own_processes(state)
    finally:
        if state is None and (tmp_path / "local_cluster.json").exists():
            state = json.loads((tmp_path / "local_cluster.json").read_text())
        cli(env, "down")
    assert not (tmp_path / "local_cluster.json").exists()
    assert [p.pid for p in own_processes(state) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert "no local Ray cluster was up" in cli(env, "down")
