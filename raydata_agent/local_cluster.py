"""A local Ray head that outlives one run: `raydata-agent up` starts it, later runs on this machine join
it instead of starting Ray each time (seconds off every run, sweep and test), `raydata-agent down` ends it.

The head is Ray's own (`ray start --head`): on loopback, with ports and a temp dir of its own so that it
never collides with another cluster on the host, and with the Ray Train settings of a local run
(LOCAL_TRAIN_ENV) in its environment, which the runs' Train controllers inherit. Its address and
temp dir are kept in a state file; `down` ends the processes whose command line names either, never
`ray stop` (which stops every Ray on the host).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

# Ray Train settings for a local cluster we start (ray/train/v2/_internal/constants.py, Ray 2.60): in the job's
# runtime env of cluster.init_ray's own cluster, in the head's environment for `up`, so the runs' Train
# controllers inherit them; one the user exports wins (Ray Train passes the driver's own value to its
# controller). Any other joined cluster keeps Ray's defaults.
LOCAL_TRAIN_ENV = {
    # The controller polls its workers every 2 s by default: a run waits up to that long for its workers to
    # be seen running and again for the last epoch to be seen finished. 0.5 s costs a few RPCs a second.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    # The PreemptionWatcher actor polls for node drains, which a single local node started here never gets:
    # it is one more process to start with every run, and its start logs an error-level line (ray_logs.py).
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
# The ports `ray start` would otherwise take from fixed defaults (another cluster on the host holds them).
OWN_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
             "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port")


def state_file() -> Path:
    """Where `up` records the head it started (RAYDATA_AGENT_HOME, default ~/.raydata_agent)."""
    return Path(os.environ.get("RAYDATA_AGENT_HOME", "~/.raydata_agent")).expanduser() / "local_cluster.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def ray_node_ip() -> str:
    from ray.util import get_node_ip_address

    return get_node_ip_address()


def running() -> dict | None:
    """The state of the head `up` started, if it still answers; None otherwise (a stale file is ignored)."""
    path = state_file()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if _answers(state["address"]) else None


def up(num_cpus: int | None = None, num_gpus: int | None = None) -> tuple[dict, bool]:
    """Start the head, or find the one already up. Returns (its state, whether this call started it)."""
    state = running()
    if state is not None:
        return state, False
    temp_dir = tempfile.mkdtemp(prefix="rda", dir="/tmp")  # short: Ray's unix sockets live under it
    gcs, dashboard = _free_port(), _free_port()
    # The head's own address is the host's, as for a cluster ray.init starts (ray.init turns a loopback
    # address into the host's before it connects, so a head bound to loopback could not be joined).
    node_ip = ray_node_ip()
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--node-ip-address={node_ip}",
               f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
               f"--temp-dir={temp_dir}", "--disable-usage-stats",
               # as a run's own cluster (cluster.init_ray): no Prometheus endpoint that answers without the token
               '--system-config={"enable_metrics_collection": false}',
               *(f"--{name}={_free_port()}" for name in OWN_PORTS),
               *([f"--num-cpus={num_cpus}"] if num_cpus is not None else []),
               *([f"--num-gpus={num_gpus}"] if num_gpus is not None else [])]
    env = {**os.environ, **LOCAL_TRAIN_ENV, "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard}"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        _end_processes(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise RuntimeError(f"`ray start --head` failed (exit {out.returncode}):\n{(out.stdout + out.stderr)[-2000:]}")
    state = {"address": f"{node_ip}:{gcs}", "dashboard": f"http://127.0.0.1:{dashboard}", "temp_dir": temp_dir}
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1) + "\n")
    return state, True


def _end_processes(*marks: str) -> int:
    """SIGTERM, then SIGKILL after 10 s, every process whose command line names one of `marks` (the head's
    temp dir, which its raylet and workers carry, or its GCS address, which the client server carries)."""
    import psutil

    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(mark in arg for arg in proc.info["cmdline"] or () for mark in marks):
                procs.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return len(procs)


def down() -> int:
    """End the head `up` started (its processes only) and forget it. Returns how many processes ended."""
    path = state_file()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    ended = _end_processes(state["temp_dir"], state["address"])
    shutil.rmtree(state["temp_dir"], ignore_errors=True)
    path.unlink(missing_ok=True)
    return ended
