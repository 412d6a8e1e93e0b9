"""Real runs: local Ray, Ray Train workers, the score store actor and an MLflow SQLite store."""
import math


import numpy as np

import pytest
from console_lines import assert_clean
from mlflow.tracking import MlflowClient

import raydata_agent as rda
from raydata_agent.cli import main  # the console entry point itself, as `raydata-agent` runs it

pytestmark = pytest.mark.integration
SMALL = ["data.num_samples=400", "data.val_samples=100", "train.batch_size=50"]


def only_run(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("raydata_agent")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.fixture(scope="module")
def lead_cli_run(ray_cluster, tmp_path_factory, mlflow_template):
    """One CLI run (lead with the IDU reward, 3 epochs) that two tests read: starting a run costs far
    more than its epochs, so the CLI's output and the lead bandit's logs come from the same one."""
    import contextlib
    import io
    import shutil

    tmp = tmp_path_factory.mktemp("lead_cli")
    shutil.copyfile(mlflow_template, tmp / "mlflow.db")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    out = io.StringIO()  # stdout and stderr: Ray prints its workers' lines to the driver's stderr too
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["run", "selection.selector=lead", "reward.variant=idu", "selection.ratio=0.3",
                     "train.epochs=3", *SMALL, f"tracking.uri={uri}", f"ray.storage_path={tmp / 'runs'}"])
    return code, out.getvalue(), uri, tmp / "runs"


def test_cli_run_logs_metrics_plots_and_snapshots(lead_cli_run):
    code, out, uri, storage = lead_cli_run
    assert code == 0
    assert "summary" in out and "cost fraction" in out and "mlflow ui --backend-store-uri" in out
    assert_clean(out)  # a successful run prints no error-level line and no traceback (issue 28)
    client, mlrun = only_run(uri)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["selection.selector"] == "lead"
    for key in ("val_metric", "train_loss", "reward_mean", "reward_var", "adaptive_w", "selected",
                "cumulative_cost", "cost_fraction"):
        assert len(client.get_metric_history(mlrun.info.run_id, key)) == 3, key
    selected = [m.value for m in client.get_metric_history(mlrun.info.run_id, "selected_fraction")]
    assert selected == [1.0, 0.3, 0.3]  # the same warm-up epoch as every selector: equal cost
    assert mlrun.data.metrics["cost_fraction"] == pytest.approx(1.6 / 3)
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id, "plots")}
    assert {"plots/metric_vs_cost.png", "plots/weights.png", "plots/adaptive_weight.png"} <= artifacts
    snapshots = [a.path for a in client.list_artifacts(mlrun.info.run_id, "pool")]
    assert snapshots == ["pool/pool_epoch_003.parquet"]  # every tracking.snapshot_every=5 epochs and the last
    assert "config.yaml" in {a.path for a in client.list_artifacts(mlrun.info.run_id)}  # what `resume` reads
    kept = [p for p in (storage / mlrun.info.run_id).glob("checkpoint_*") if p.is_dir()]
    assert len(kept) == 2  # train.checkpoints_to_keep=2: Ray Train deleted the first epoch's


# Every selector's budget, annealing and state run in process (test_selectors.py); here, through Ray
# Train, InfoBatch's rescaled loss weights. The full selector trains for real in test_sweep.py (the
# sweep's full-data trial); random_dynamic, greedy, lead and data_agent in the tests below, in
# test_failures.py and test_two_ddp_workers_share_the_epoch.
def test_infobatch_trains_for_real_and_prunes_to_its_budget(ray_cluster, run_dirs):
    cfg = rda.load_config(None, ["selection.selector=infobatch", "selection.ratio=0.3", "selection.delta=0.75",
                             "train.epochs=4", *SMALL, *run_dirs])
    result = rda.run(cfg, progress=False)
    fractions = [h["selected_fraction"] for h in result.history]
    assert len(fractions) == 4 and fractions[3] == 1.0  # epoch 3 >= 0.75 * 4 anneals
    assert all(h["passes"] == h["selected"] for h in result.history)  # one forward-backward per selected sample
    budget = math.ceil(0.3 * 400) / 400  # it prunes exactly down to the budget
    assert fractions[1:3] == [budget, budget]
    assert result.final["val_metric"] > 0.1  # better than chance on 10 classes
    assert result.checkpoint_path


def test_resume_continues_from_checkpoint(ray_cluster, run_dirs):
    first = rda.run(rda.load_config(None, ["selection.selector=greedy", "train.epochs=4", *SMALL, *run_dirs,
                                           "train.lr=0.02", "train.checkpoints_to_keep=4"]), progress=False)
    # Pretend the first run stopped after epoch 1: resume from its epoch-1 checkpoint.
    import glob

    checkpoints = sorted(glob.glob(f"{first.checkpoint_path.rsplit('/', 1)[0]}/checkpoint_2*"))
    assert len(checkpoints) == 4
    resumed = rda.run(rda.load_config(None, ["selection.selector=greedy", "train.epochs=4", *SMALL, *run_dirs,
                                             "train.lr=0.02", f"train.resume_from={checkpoints[1]}"]), progress=False)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    # Restored, not re-trained (mlflow_log_s is timed when the epoch is logged, after its checkpoint).
    drop = lambda rows: [{k: v for k, v in r.items() if k != "mlflow_log_s"} for r in rows]  # noqa: E731
    assert drop(resumed.history[:2]) == drop(first.history[:2])
    assert resumed.history[2]["cumulative_cost"] == first.history[2]["cumulative_cost"]


def test_nan_loss_fails_clearly_and_keeps_the_run(ray_cluster, run_dirs):
    cfg = rda.load_config(None, ["selection.selector=full", "train.epochs=2", "train.lr=1e30", *SMALL, *run_dirs])
    with pytest.raises(rda.RunFailed) as err:
        rda.run(cfg, progress=False)
    message = str(err.value)
    assert "non-finite loss at epoch" in message and "sample ids" in message
    client, mlrun = only_run(run_dirs[0].split("=", 1)[1])
    assert mlrun.info.status == "FAILED"


def test_pool_is_a_ray_dataset(ray_cluster):
    import numpy as np

    from raydata_agent.pool import SamplePool

    pool = SamplePool(np.arange(100) % 3)
    pool.update(np.arange(50), epoch=0, loss=np.ones(50))
    ds = pool.to_dataset()
    assert ds.count() == 100
    assert ds.filter(lambda row: row["last_epoch_seen"] == 0).count() == 50


@pytest.fixture(scope="module")
def agent_run(ray_cluster, tmp_path_factory, mlflow_template):
    """One data_agent run on the deterministic schedule that two tests read (a run's start costs far more
    than its epochs): its overrides (every epoch snapshotted) and its result."""
    import shutil

    tmp = tmp_path_factory.mktemp("agent_run")
    shutil.copyfile(mlflow_template, tmp / "mlflow.db")
    overrides = ["selection.selector=data_agent", "agent.schedule=deterministic", "selection.ratio=0.5",
                 "train.epochs=3", *SMALL, "tracking.snapshot_every=1", f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
                 f"ray.storage_path={tmp / 'runs'}"]
    return overrides, rda.run(rda.load_config(None, overrides), progress=False)


def epoch_pools(result) -> list[dict]:
    """Each epoch's pool snapshot of a run: which ids were trained in the epoch, and their actions."""
    import os

    import pyarrow.parquet as pq

    pool_dir = os.path.join(os.path.dirname(result.checkpoint_path), "pool")
    return [pq.read_table(os.path.join(pool_dir, f"pool_epoch_{e:03d}.parquet"),
                          columns=["last_epoch_seen", "times_selected", "weight"]).to_pydict()
            for e in range(1, len(result.history) + 1)]


def test_data_agent_run_logs_agent_metrics_and_resumes_with_its_policy(agent_run):
    import pyarrow.parquet as pq

    overrides, first = agent_run
    client = MlflowClient(first.tracking_uri)
    for key in ("agent_policy_loss", "agent_entropy", "agent_kl", "agent_time_s",
                "agent_overhead", "adaptive_w"):
        assert client.get_metric_history(first.run_id, key), key
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {"plots/agent_losses.png", "plots/weights.png", "plots/adaptive_weight.png",
            "plots/class_selection.png"} <= plots
    assert first.history[1]["selected"] == 200 and not first.history[1]["full_epoch"]

    # Resume from the epoch-1 checkpoint: epoch 2 is chosen from the restored pool weights (the
    # latest sampled actions) exactly as in the first run, and acted on by the restored policy.
    import glob
    import os

    run_dir = os.path.dirname(first.checkpoint_path)
    checkpoints = sorted(glob.glob(f"{run_dir}/checkpoint_2*"))
    assert len(checkpoints) == 2  # train.checkpoints_to_keep=2: epochs 1 and 2 (counted from 0) are left
    resumed = rda.run(rda.load_config(None, overrides + [f"train.resume_from={checkpoints[0]}"]), progress=False)
    original = pq.read_table(f"{run_dir}/pool/pool_epoch_003.parquet")["times_selected"].to_numpy()
    restored = pq.read_table(
        f"{os.path.dirname(resumed.checkpoint_path)}/pool/pool_epoch_003.parquet")["times_selected"].to_numpy()
    np.testing.assert_array_equal(restored, original)  # the same epoch-2 selection
    weights = pq.read_table(f"{run_dir}/pool/pool_epoch_002.parquet")["weight"].to_numpy()
    assert len(np.unique(weights)) > 10  # real per-sample weights, not a constant
    # A fresh policy would be at version 1 after epoch 2 alone; the restored one carries on past the warm start.
    assert resumed.history[-1]["agent_weight_version"] > 64


def test_same_seed_same_selections_and_metric_beside_a_cpu_hog(agent_run):
    """agent.schedule=deterministic: the learner's timing decides nothing, so a run beside a busy
    process selects the same samples with the same actions and ends at the same metric (issue 26)."""
    import subprocess
    import sys

    overrides, quiet = agent_run
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = rda.run(rda.load_config(None, overrides), progress=False)
    finally:
        hog.kill()
        hog.wait()
    for epoch, (a, b) in enumerate(zip(epoch_pools(quiet), epoch_pools(loaded), strict=True), start=1):
        assert a == b, f"epoch {epoch}: the selections or actions differ"
    assert quiet.final["val_metric"] == loaded.final["val_metric"]


def test_two_ddp_workers_share_the_epoch(ray_cluster, run_dirs):
    cfg = rda.load_config(None, ["selection.selector=random_dynamic", "selection.ratio=0.5", "train.epochs=2",
                             "train.num_workers=2", "data.name=digits", *run_dirs])
    result = rda.run(cfg, progress=False)
    for row in result.history:
        # Each worker trains on half of the subset, padded to equal length so DDP steps stay in sync.
        assert row["passes"] == row["selected"] + row["selected"] % 2
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


def test_lead_with_the_idu_reward_runs_and_logs_its_bandit(lead_cli_run):
    import pyarrow.parquet as pq

    client, mlrun = only_run(lead_cli_run[2])
    assert [m.value for m in client.get_metric_history(mlrun.info.run_id, "selected_fraction")][:2] == [1.0, 0.3]
    history = client.get_metric_history(mlrun.info.run_id, "lead_p0")
    assert len(history) == 3
    probs = [mlrun.data.metrics[f"lead_p{k}"] for k in range(7)]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    pool = pq.read_table(client.download_artifacts(mlrun.info.run_id, "pool/pool_epoch_003.parquet"))
    idu, reward = pool["idu"].to_numpy(), pool["reward"].to_numpy()
    assert (idu > 0).all() and 0.0 <= reward.min() and reward.max() <= 1.0 + 1e-6
