"""Real failures: a Train worker process killed mid-epoch, a CLI driver killed mid-run and resumed.

Each test trains for real on local Ray (tiny data, 4 epochs) and checks that nothing is lost or
counted twice: the pool's rows, the agent's updates and MLflow's metric history.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import ray
from mlflow.tracking import MlflowClient

import raydata_agent as rda
from raydata_agent import checkpoint  # reads checkpoint files: internal, not part of the public API

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[1]
EPOCHS = 4
SMALL = ["data.num_samples=800", "data.val_samples=100", "train.batch_size=8", f"train.epochs={EPOCHS}",
         "selection.ratio=0.5", "selection.delta=0.75"]


def train_worker_pids() -> list[int]:
    """Ray Train worker processes of this test session's cluster (descendants of this process only)."""
    return [p.pid for p in psutil.Process().children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline()) and p.is_running()]


def kill_worker_mid_epoch(uri: str, killed: dict, stop: threading.Event) -> None:
    try:
        _kill_worker_mid_epoch(uri, killed, stop)
    except Exception as err:  # a watcher that died would otherwise look like "never killed"
        killed["error"] = repr(err)


def _kill_worker_mid_epoch(uri: str, killed: dict, stop: threading.Event) -> None:
    """Mid-epoch, once at least one epoch is committed (in MLflow), SIGKILL the Train worker process; then
    watch the Data Agent's update count (its weight version)."""
    client = MlflowClient(uri)
    store = agent = None
    while not stop.is_set():
        time.sleep(0.1)
        if store is None:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                     if a["name"].startswith("score_store:")]
            if not names:
                continue
            run_id = names[0].split(":", 1)[1]
            store, agent = ray.get_actor(names[0]), ray.get_actor(f"data_agent:{run_id}")
        if "pids" in killed:  # the lowest update count after the kill: where the restart rolled the agent back to
            killed["versions_after"].append(ray.get(agent.state.remote())["version"])
            continue
        progress = ray.get(store.progress.remote(0))
        committed = [m.step for m in client.get_metric_history(run_id, "epoch")]
        done = len(progress["new"])  # mid-epoch, once at least one checkpoint is committed (Ray commits late)
        if committed and done < EPOCHS and progress["planned"] and progress["passes"] > 0:
            version = ray.get(agent.state.remote())["version"]
            pids = train_worker_pids()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.update(pids=pids, committed=len(committed), epochs_done=done, version_at_kill=version,
                          versions_after=[])


def assert_consistent(uri: str, run_id: str, history: list[dict], ckpt_dir: str) -> None:
    """One MLflow value per epoch; every epoch's passes counted once; the pool agrees with the history."""
    client = MlflowClient(uri)
    for key in ("epoch", "val_metric", "train_loss", "cumulative_cost"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(1, EPOCHS + 1)), (key, steps)  # MLflow counts epochs from 1
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    assert all(h["passes"] == h["selected"] for h in history)  # no partial epoch counted on top
    assert history[-1]["cumulative_cost"] == sum(h["selected"] for h in history)
    state = checkpoint.read(ckpt_dir)
    pool = state["pool"]
    assert pool["times_selected"].to_numpy().sum() == sum(h["selected"] for h in history)
    assert pool["last_epoch_seen"].to_numpy().max() == EPOCHS - 1


def test_worker_killed_mid_epoch_resumes_from_its_checkpoint(ray_cluster, run_dirs):
    uri = run_dirs[0].split("=", 1)[1]
    killed, stop = {}, threading.Event()
    killer = threading.Thread(target=kill_worker_mid_epoch, args=(uri, killed, stop), daemon=True)
    killer.start()
    try:
        # every checkpoint kept: the test reads the agent's update count in each (retention: test_runner.py)
        result = rda.run(rda.load_config(None, ["selection.selector=data_agent", *SMALL, *run_dirs,
                                                f"train.checkpoints_to_keep={EPOCHS}"]), progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed.get("pids"), f"the worker was never killed: the test did not exercise a failure {killed}"
    assert_consistent(uri, result.run_id, result.history, result.checkpoint_path)
    # The committed epochs came back from their checkpoint, not from a re-run: their rows are the ones
    # MLflow logged before the failure.
    logged = {m.step: m.value for m in MlflowClient(uri).get_metric_history(result.run_id, "epoch_time_s")}
    for h in result.history[:killed["committed"]]:
        assert logged[h["epoch"] + 1] == pytest.approx(h["epoch_time_s"])
    # The agent rolled back with the store to the update count of the checkpoint Ray restored (the latest
    # committed one: between those committed and those finished at the kill), then went on.
    versions = {len(state["history"]): state["selector"]["agent"]["version"]
                for state in (checkpoint.read(c, ("store",))["store"]
                              for c in Path(result.checkpoint_path).parent.glob("checkpoint_*") if c.is_dir())}
    candidates = [versions[k] for k in range(killed["committed"], killed["epochs_done"] + 1) if k in versions]
    assert min(killed["versions_after"]) in candidates and min(candidates) <= killed["version_at_kill"]


def test_driver_killed_then_resume_continues_the_same_mlflow_run(ray_cluster, run_dirs, tmp_path):
    uri = run_dirs[0].split("=", 1)[1]
    storage = Path(run_dirs[1].split("=", 1)[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(
        [sys.executable, "-m", "raydata_agent.cli", "run", "selection.selector=greedy", *SMALL, *run_dirs,
         "ray.num_cpus=2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, text=True)
    client = MlflowClient(uri)
    try:
        deadline = time.time() + 400
        run_id = None
        while time.time() < deadline:  # until epoch 1 is committed: at least two checkpoints on disk
            time.sleep(0.5)
            assert driver.poll() is None, driver.stdout.read()
            runs = [p.name for p in storage.glob("*") if p.is_dir()] if storage.is_dir() else []
            if runs and [m.step for m in client.get_metric_history(runs[0], "epoch")] == [1, 2]:
                run_id = runs[0]
                break
        assert run_id, "the driver did not get to its second epoch in time"
    finally:  # the driver, and the Ray cluster it started (its processes only)
        started = psutil.Process(driver.pid).children(recursive=True)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
        for proc in started:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    assert client.get_run(run_id).info.status == "RUNNING"  # a dead driver closes nothing

    from raydata_agent.cli import main

    assert main(["resume", run_id, "--tracking-uri", uri]) == 0
    mlrun = client.get_run(run_id)
    assert mlrun.info.status == "FINISHED"
    for key in ("epoch", "val_metric", "selected", "cumulative_cost"):  # no gap, no duplicate
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(1, EPOCHS + 1)), key
    passes = [m.value for m in sorted(client.get_metric_history(run_id, "passes"), key=lambda m: m.step)]
    cost = {m.step: m.value for m in client.get_metric_history(run_id, "cumulative_cost")}
    assert cost[EPOCHS] == sum(passes)  # the resumed epochs continued the dead driver's count
    assert len(client.search_runs([mlrun.info.experiment_id])) == 1  # the same run, not a new one
    latest = checkpoint.latest(storage / run_id)
    state = checkpoint.read(latest, ("store",))["store"]
    assert [h["epoch"] for h in state["history"]] == list(range(EPOCHS))


@pytest.mark.parametrize("sig", [signal.SIGTERM], ids=["sigterm"])  # one Ctrl-C takes the same path (SystemExit)
def test_interrupted_driver_marks_the_run_killed_and_resume_finishes_it(ray_cluster, run_dirs, tmp_path, capsys,
                                                                        sig):
    """One Ctrl-C (or SIGTERM) of `raydata-agent run`: the MLflow run is KILLED, not FINISHED with part of its
    epochs, the driver prints the resume command, and `resume` continues it from its last checkpoint."""
    uri = run_dirs[0].split("=", 1)[1]
    storage = Path(run_dirs[1].split("=", 1)[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    epochs = 6  # the signal lands after epoch 1 is committed: later epochs are left for resume to train
    driver = subprocess.Popen(
        [sys.executable, "-m", "raydata_agent.cli", "run", "selection.selector=greedy", *SMALL, *run_dirs,
         f"train.epochs={epochs}", "ray.num_cpus=2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, text=True)
    client = MlflowClient(uri)
    try:
        run_id, lines = None, []
        for line in driver.stdout:  # the run id is in Ray Train's storage folder; epoch 1 in MLflow = committed
            lines.append(line)
            if f"epoch 1/{epochs}" in line:
                break
        else:  # a driver that died at its start: say why now, not after the 300 s wait below
            pytest.fail(f"the driver ended before epoch 1 (exit {driver.wait()}):\n{''.join(lines)[-3000:]}")
        deadline = time.time() + 300
        while time.time() < deadline and run_id is None:
            time.sleep(0.3)
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            if runs and client.get_metric_history(runs[0].info.run_id, "epoch"):
                run_id = runs[0].info.run_id
        assert run_id, "epoch 1 was never committed"
        os.kill(driver.pid, sig)
        out = driver.stdout.read()
        # Ctrl-C exits 130. After SIGTERM, Ray 2.60's core worker aborts in the driver's teardown (-6, after
        # its handler's "SIGTERM received"), once the run is closed KILLED and the resume line printed.
        assert driver.wait(timeout=120) in (130, -signal.SIGABRT), out[-3000:]
    finally:
        started = psutil.Process(driver.pid).children(recursive=True) if driver.poll() is None else []
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        for proc in started:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    assert client.get_run(run_id).info.status == "KILLED", out[-3000:]
    assert f"continue it with: raydata-agent resume {run_id}" in out, out[-3000:]  # the store is the cwd's default
    # An epoch reaches MLflow only after its checkpoint is committed, so the signal can land between the
    # two: MLflow then shows one epoch fewer than the checkpoint holds, and resume logs the missing row.
    committed = len(checkpoint.read(checkpoint.latest(storage / run_id), ("store",))["store"]["history"])
    assert len(client.get_metric_history(run_id, "epoch")) in (committed - 1, committed)

    from raydata_agent.cli import main

    capsys.readouterr()
    assert main(["resume", run_id, "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert f"resumed from epoch {committed}" in printed, printed
    assert f"epoch {committed}/{epochs}" not in printed, printed  # the restored epochs are not printed again
    assert client.get_run(run_id).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run_id, "epoch")) == list(range(1, epochs + 1))


def test_a_score_store_that_cannot_start_fails_the_run_at_once(ray_cluster, tmp_path):
    """Input the store's constructor rejects is rejected the same on every try: one line, the MLflow run
    ends FAILED, and no Train worker is started to be retried against a dead actor."""
    import re

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reason = re.escape(r"DataError: the source of row 1, '\udcff.png', is not valid UTF-8")  # a name from bytes
    with pytest.raises(rda.RunFailed, match="failed before training: the score store did not start: .*" + reason):
        rda.start_session(labels=[0, 1], sources=["a.png", "\udcff.png"], epochs=2, use_ray=True,
                                    tracking_uri=uri, storage_path=str(tmp_path / "runs"), progress=False)
    client = MlflowClient(uri)
    [failed] = client.search_runs([client.get_experiment_by_name("raydata_agent").experiment_id])
    assert failed.info.status == "FAILED"
