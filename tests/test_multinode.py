"""Several nodes on one machine, with Ray's own `ray.cluster_utils.Cluster`: a head with no CPU (the
driver, the score store) and two one-CPU worker nodes (the Train workers). Checked: the score store
stays on the driver's node, Train workers run on the others, checkpoints and pool snapshots land on
the shared storage path (given as a pyarrow.fs URI), and a sweep's trials spread over both worker
nodes with `max_concurrent_trials` derived from the cluster.

The cluster runs in a subprocess: the test session already has a `ray.init` cluster in this process,
and a process joins one cluster at a time. Every port of these nodes is their own (Ray's fixed
defaults, e.g. the dashboard agent's 52365, are held by the session's cluster).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_ports() -> dict:
    return {name: free_port() for name in ("dashboard_agent_listen_port", "metrics_agent_port",
                                           "metrics_export_port", "runtime_env_agent_port")}


def main(tmp: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    from raydata_agent.config import load_config
    from raydata_agent.runner import run
    from raydata_agent.sweep import run_sweep

    tmp.mkdir(parents=True, exist_ok=True)
    dashboard = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": dashboard,
        **own_ports()})
    storage = f"file://{tmp / 'shared'}"  # one file system all nodes see, named as a URI like s3://...
    small = ["data.num_samples=120", "data.val_samples=40", "train.batch_size=40", "train.epochs=2",
             f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}", f"ray.storage_path={storage}",
             "tracking.log_snapshots=false", "tracking.snapshot_every=1", f"ray.address={cluster.address}"]
    try:  # the head's processes go too when a worker node fails to start
        workers = [cluster.add_node(num_cpus=1, **own_ports()) for _ in range(2)]
        cluster.wait_for_nodes()
        result = run(load_config(None, ["selection.selector=random_dynamic", *small]), progress=False)
        head = ray.get_runtime_context().get_node_id()
        address = f"http://127.0.0.1:{dashboard}"
        stores = list_actors(address=address, filters=[("class_name", "=", "ScoreStore")], detail=True)
        run_workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], detail=True)
        spec = tmp / "sweep.yaml"
        spec.write_text(yaml.safe_dump({"tracking": {"experiment": "multinode"}, "sweep": {
            "grid": {"selection.selector": ["random_dynamic"], "selection.ratio": [0.3, 0.6]},
            "full_baseline": False}}))
        before = {a.actor_id for a in run_workers}
        run_sweep(str(spec), small)
        sweep_workers = [a for a in list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")],
                                                detail=True) if a.actor_id not in before]
        return {"head": head, "worker_nodes": [w.node_id for w in workers],
                "store_nodes": [a.node_id for a in stores], "run_worker_nodes": [a.node_id for a in run_workers],
                "sweep_worker_nodes": [a.node_id for a in sweep_workers], "run_id": result.run_id,
                "checkpoint": result.checkpoint_path}
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.integration
def test_runs_and_sweeps_across_nodes(tmp_path, mlflow_template):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    for attempt in range(2):  # Ray gives a node 30 s to register (fixed in node.py); a loaded 2-CPU CI machine
        run_dir = tmp_path / f"attempt{attempt}"  # can miss that: then the whole cluster starts afresh, once
        run_dir.mkdir()
        shutil.copyfile(mlflow_template, run_dir / "mlflow.db")  # an empty store, its tables made once (conftest)
        out = subprocess.run([sys.executable, __file__, str(run_dir)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        if out.returncode == 0 or "timed out during startup" not in out.stderr:
            break
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["store_nodes"] == [facts["head"]]  # pinned where it writes: the driver's node
    assert facts["run_worker_nodes"] and facts["head"] not in facts["run_worker_nodes"]
    assert set(facts["sweep_worker_nodes"]) == set(facts["worker_nodes"])  # both trials at once, one per node
    assert "[raydata-agent] sweep: 2 trials, 2 at a time" in out.stdout  # derived: 2 CPUs / (1 worker x 1 CPU)
    shared = run_dir / "shared" / facts["run_id"]
    assert facts["checkpoint"].startswith(f"file://{shared}/checkpoint_") or \
        facts["checkpoint"].startswith(f"{shared}/checkpoint_")
    assert sorted(p.name for p in (shared / "pool").iterdir()) == ["pool_epoch_001.parquet", "pool_epoch_002.parquet"]
    assert (Path(facts["checkpoint"].removeprefix("file://")) / "model.pt").is_file()


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
