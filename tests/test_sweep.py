"""Sweeps (Ray Tune + nested MLflow runs), the report command, and cluster.yaml."""
from pathlib import Path

import pytest
import yaml

from raydata_agent.config import ConfigError
from raydata_agent.report import RunRow, pareto
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


def test_pareto_front():
    row = lambda i, metric, cost: RunRow(str(i), "", "s", "r", 0.5, 0, metric, cost, "FINISHED")  # noqa: E731
    rows = [row(1, 0.90, 0.3), row(2, 0.95, 0.5), row(3, 0.93, 0.6), row(4, 0.97, 1.0), row(5, 0.85, 0.4)]
    assert pareto(rows) == {"1", "2", "4"}


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
def test_sweep_nests_trials_asha_stops_the_weak_one_and_the_parent_holds_the_summary(ray_cluster, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from raydata_agent.cli import main

    spec = tmp_path / "sweep.yaml"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec.write_text(yaml.safe_dump({
        "data": {"name": "digits"}, "train": {"epochs": 3, "batch_size": 32},
        "selection": {"selector": "random_dynamic", "ratio": 0.5},
        "tracking": {"experiment": "sweep_test", "uri": uri, "log_snapshots": False},
        "ray": {"storage_path": str(tmp_path / "runs")},
        # One at a time, so the order is fixed: the lr=1e-5 trial reaches ASHA's first rung after the
        # lr=0.05 one and, far below it, is stopped there (the full-data run may or may not be).
        "sweep": {"grid": {"train.lr": [0.05, 0.00001]}, "full_baseline": True, "asha": True,
                  "grace_period": 1, "max_concurrent_trials": 1}}))
    assert main(["tune", "--config", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "sweep summary" in out and "random_dynamic" in out and "full" in out
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
    assert all(r.info.status != "RUNNING" for r in children.values())  # a stopped trial's run is closed
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/trials.csv", "summary/metric_vs_cost.png", "summary/trials.txt"} <= summary
    best = max(children.values(), key=lambda r: r.data.metrics["val_metric"])
    assert parent.data.metrics["best_val_metric"] == best.data.metrics["val_metric"]
    assert parent.data.tags["best_trial"].endswith(f"({best.info.run_id})")
    assert parent.data.metrics["pareto_points"] >= 1 and "full_val_metric" in parent.data.metrics
    assert len(client.get_metric_history(parent.info.run_id, "pareto_val_metric")) == parent.data.metrics["pareto_points"]

    assert main(["report", "sweep_test", "--tracking-uri", uri, "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "random_dynamic" in capsys.readouterr().out
