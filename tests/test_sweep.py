"""Sweeps (Ray Tune + nested MLflow runs), the report command, and cluster.yaml."""
from pathlib import Path

import pytest
import yaml

from raydata_agent.config import ConfigError
from raydata_agent.report import RunRow, collect, csv, pareto, table
from raydata_agent.sweep import SweepConfig, load_sweep, trials

ROOT = Path(__file__).parents[1]


def test_grid_is_the_product_plus_full_baselines():
    sweep = SweepConfig(grid={"selection.selector": ["greedy", "data_agent"], "selection.ratio": [0.3, 0.5],
                              "train.seed": [0, 1]})
    runs = trials(sweep)
    assert len(runs) == 2 * 2 * 2 + 2
    assert ["selection.selector=full", "selection.ratio=1.0", "train.seed=1"] in runs
    assert len(trials(SweepConfig(grid=sweep.grid, full_baseline=False))) == 8
    seeds = [next(o for o in t if o.startswith("train.seed=")) for t in runs]
    assert seeds == ["train.seed=0"] * 5 + ["train.seed=1"] * 5  # seed by seed, its full run included


def test_sweep_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text(yaml.safe_dump({"sweep": {"grid": {"selection.colour": [1]}}}))
    with pytest.raises(ConfigError, match="sweep.grid key 'selection.colour' is not a config key"):
        load_sweep(str(bad), [])
    bad.write_text(yaml.safe_dump({"sweep": {"grid": {"selection.ratio": [0.5, 1.5]}}}))
    with pytest.raises(ConfigError, match=r"selection.ratio=1.5 is out of range"):
        load_sweep(str(bad), [])
    bad.write_text(yaml.safe_dump({"sweep": {"gird": {}}}))
    with pytest.raises(ConfigError, match="unknown sweep key sweep.gird"):
        load_sweep(str(bad), [])


def test_sweep_keys_override_on_the_command_line_with_one_line_errors():
    spec = str(ROOT / "jobs/configs/sweep_shapes.yaml")
    _, sweep = load_sweep(spec, ["sweep.asha=true", "sweep.grace_period=3", "sweep.grid.selection.ratio=[0.3]",
                                 "train.epochs=4"])
    assert sweep.asha and sweep.grace_period == 3.0 and sweep.grid["selection.ratio"] == [0.3]
    assert sweep.grid["selection.selector"] == ["random_dynamic", "infobatch", "greedy", "data_agent"]
    for override, error in [("sweep.ashaa=true", r"unknown sweep key sweep.ashaa \(did you mean `sweep.asha`\?\)"),
                            ("swep.asha=true", r"unknown config section 'swep' \(did you mean `sweep`\?\)"),
                            ("sweep.asha=maybe", r"sweep.asha='maybe' has the wrong type; expected bool"),
                            ("sweep.grace_period=0", r"sweep.grace_period=0.0 must be > 0")]:
        with pytest.raises(ConfigError, match=error):
            load_sweep(spec, [override])


def row(i, metric, cost, epochs=6, selector="s"):
    return RunRow(str(i), f"run{i}", selector, "r", 0.5, 0, metric, cost, "FINISHED", epochs, planned_epochs=6)


def test_pareto_front():
    rows = [row(1, 0.90, 0.3), row(2, 0.95, 0.5), row(3, 0.93, 0.6), row(4, 0.97, 1.0), row(5, 0.85, 0.4)]
    assert pareto(rows) == {"1", "2", "4"}


def test_stopped_trials_are_listed_apart_never_best_nor_on_the_front():
    """An ASHA-stopped trial's metric and cost cover a shorter run: cheap, so it would top the front."""
    rows = [row(1, 0.90, 0.5), row(2, 0.95, 1.0, selector="full"), row(3, 0.97, 0.2, epochs=2)]
    assert rows[2].stopped and not rows[0].stopped
    assert pareto(rows) == {"1", "2"}
    text = table(sorted(rows, key=lambda r: (r.stopped, -r.metric)))
    ranked, stopped = text.split("stopped early, not ranked (1)")
    assert "run3" in stopped and "run3" not in ranked and "  2/6 " in stopped
    assert csv(rows).splitlines()[3].split(",")[8] == "1"  # stopped_early column


def test_summary_and_report_keep_stopped_trials_apart(tmp_path, monkeypatch):
    """Real MLflow (SQLite), no Ray: a finished and a stopped trial under a sweep parent."""
    from raydata_agent.cli import main
    from raydata_agent.report import STOPPED_TAG
    from raydata_agent.sweep import close_stopped_trials, log_summary
    from raydata_agent.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    parent = Tracker.start(uri, "exp", "sweep", {}, tags={"raydata_agent.sweep": "parent"})
    trials = {}
    for name, epochs, metric in [("finished", 6, 0.90), ("stopped", 2, 0.95)]:
        trial = Tracker.start(uri, "exp", name, {"train.epochs": 6, "selection.selector": "greedy",
                                                 "selection.ratio": 0.5}, tags={"mlflow.parentRunId": parent.run_id})
        for epoch in range(1, epochs + 1):
            trial.log_metrics({"epoch": epoch, "val_metric": metric * epoch / epochs, "cost_fraction": 0.5}, step=epoch)
        trials[name] = trial
    trials["finished"].end("FINISHED")  # the stopped one stays RUNNING, as a trial ASHA killed does
    close_stopped_trials(parent, SweepConfig(asha=True))
    rows = collect(parent.client, [parent.experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'")
    log_summary(parent, rows, "val_metric")
    stopped = parent.client.get_run(trials["stopped"].run_id)
    assert stopped.info.status == "KILLED" and stopped.data.tags[STOPPED_TAG] == "ASHA"
    assert STOPPED_TAG not in parent.client.get_run(trials["finished"].run_id).data.tags
    summary = parent.client.get_run(parent.run_id).data
    assert summary.metrics["best_val_metric"] == 0.90 and summary.metrics["trials_stopped"] == 1
    assert summary.tags["best_trial"] == f"finished ({trials['finished'].run_id})"
    assert summary.tags["pareto_front"].startswith("finished:") and "stopped" not in summary.tags["pareto_front"]

    # `report` without --out: the plot goes beside the store (mlruns/, ignored by git), not into the cwd
    monkeypatch.chdir(tmp_path)
    assert main(["report", "exp", "--tracking-uri", uri]) == 0
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "store" / "mlruns" / "exp" / "report_exp.png").stat().st_size > 0


def test_asha_judges_trials_at_equal_compute_and_keeps_the_reference():
    """At epoch 2 a ratio-0.5 trial has had 1.5 epochs of data: ASHA must wait for its compute, not its
    epochs (default grace: half of train.epochs of compute), and never stop the full-data run."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from raydata_agent.sweep import ASHA_TIME_ATTR, asha_scheduler

    scheduler = asha_scheduler(SweepConfig(asha=True), epochs=6)
    trial = lambda overrides: Trial("t", config={"overrides": overrides}, stub=True)  # noqa: E731
    good, weak = trial(["selection.ratio=0.5", "train.lr=0.05"]), trial(["selection.ratio=0.5", "train.lr=1e-5"])
    full = trial(["selection.selector=full", "selection.ratio=1.0"])
    for t in (good, weak, full):
        scheduler.on_trial_add(None, t)
    compute = lambda epoch, ratio: 1 + (epoch - 1) * ratio  # noqa: E731  (epoch 1: full-data warm-up)
    decide = lambda t, epoch, ratio, metric: scheduler.on_trial_result(  # noqa: E731
        None, t, {ASHA_TIME_ATTR: compute(epoch, ratio), "val_metric": metric, "training_iteration": epoch})
    for epoch in range(1, 7):  # 3.0 of compute (the rung) at epoch 5: the first there sets the bar
        assert decide(good, epoch, 0.5, 0.2 + 0.1 * epoch) == TrialScheduler.CONTINUE
    for epoch in (1, 2, 3):
        assert decide(full, epoch, 1.0, 0.1) == TrialScheduler.CONTINUE  # the reference: never stopped
    assert decide(weak, 3, 0.5, 0.3) == TrialScheduler.CONTINUE  # half its epochs, but 2.0 of compute
    assert decide(weak, 5, 0.5, 0.4) == TrialScheduler.STOP  # at equal compute, below the rung's bar


def test_cluster_yaml_is_valid_for_the_cluster_launcher():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's own schema (ray-schema.json)
    types = config["available_node_types"]
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values()), "a GPU worker type"
    head = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head and "0.0.0.0" not in head  # bound to the private network only
    # Ray starts from the venv `make install` fills, so a job's `python` is the venv's on every node.
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith(". /home/ubuntu/raydata_agent/.venv/bin/activate;") for c in starts)


@pytest.mark.integration
def test_sweep_nests_trials_asha_stops_the_weak_one_and_the_parent_holds_the_summary(ray_cluster, tmp_path, capsys,
                                                                                     mlflow_uri):
    from mlflow.tracking import MlflowClient

    from raydata_agent.cli import main

    spec = tmp_path / "sweep.yaml"
    uri = mlflow_uri
    spec.write_text(yaml.safe_dump({
        "data": {"name": "digits"}, "train": {"epochs": 3, "batch_size": 32},
        "selection": {"selector": "random_dynamic", "ratio": 0.5},
        "tracking": {"experiment": "sweep_test", "uri": uri, "log_snapshots": False},
        "ray": {"storage_path": str(tmp_path / "runs")},
        # One at a time, so the order is fixed: the lr=1e-5 trial reaches ASHA's first rung (1 epoch of
        # compute) after the lr=0.05 one and, far below it, is stopped there; the full-data run never is.
        "sweep": {"grid": {"train.lr": [0.05, 0.00001]}, "full_baseline": True, "asha": True,
                  "grace_period": 1, "max_concurrent_trials": 1}}))
    assert main(["tune", "--config", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "sweep summary" in out and "random_dynamic" in out and "full" in out
    ranked, stopped_part = out.split("sweep summary", 1)[1].split("stopped early, not ranked (1)")
    assert "lr=1e-05" in stopped_part and "lr=1e-05" not in ranked
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sweep_test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raydata_agent.sweep") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["full r1 s0", "random_dynamic r0.5 s0 lr=0.05", "random_dynamic r0.5 s0 lr=1e-05"]
    epochs = {name: len(client.get_metric_history(r.info.run_id, "val_metric")) for name, r in children.items()}
    # Stopped at the first rung; the stop reaches the trial while its next epoch may already be logged.
    stopped = children["random_dynamic r0.5 s0 lr=1e-05"]
    assert epochs["random_dynamic r0.5 s0 lr=0.05"] == 3 and epochs["random_dynamic r0.5 s0 lr=1e-05"] < 3
    assert stopped.info.status == "KILLED" and stopped.data.tags["raydata_agent.stopped"] == "ASHA"
    assert epochs["full r1 s0"] == 3 and parent.data.metrics["trials_stopped"] == 1
    # The full selector trains for real here (test_runner.py has no run of its own for it): every epoch on
    # all the data, one forward-backward per sample, better than chance on 10 classes.
    full = children["full r1 s0"].info.run_id
    values = lambda key: [m.value for m in sorted(client.get_metric_history(full, key), key=lambda m: m.step)]  # noqa: E731
    assert values("selected_fraction") == [1.0] * 3 and values("passes") == values("selected")
    assert children["full r1 s0"].data.metrics["val_metric"] > 0.1
    assert all(r.info.status != "RUNNING" for r in children.values())  # a stopped trial's run is closed
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/trials.csv", "summary/metric_vs_cost.png", "summary/trials.txt"} <= summary
    best = max((r for name, r in children.items() if epochs[name] == 3), key=lambda r: r.data.metrics["val_metric"])
    assert parent.data.metrics["best_val_metric"] == best.data.metrics["val_metric"]
    assert parent.data.tags["best_trial"].endswith(f"({best.info.run_id})")
    assert parent.data.metrics["pareto_points"] >= 1 and "full_val_metric" in parent.data.metrics
    assert len(client.get_metric_history(parent.info.run_id, "pareto_val_metric")) == parent.data.metrics["pareto_points"]

    assert main(["report", "sweep_test", "--tracking-uri", uri, "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "stopped early, not ranked (1)" in capsys.readouterr().out
