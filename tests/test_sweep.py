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


@pytest.mark.integration
def test_sweep_nests_trials_under_a_parent_and_logs_the_summary(ray_cluster, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from raydata_agent.cli import main

    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "data": {"name": "shapes", "num_samples": 200, "val_samples": 50},
        "train": {"epochs": 2, "batch_size": 50}, "selection": {"delta": 1.0},
        "tracking": {"experiment": "sweep_test", "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "log_snapshots": False},
        "ray": {"storage_path": str(tmp_path / "runs")},
        "sweep": {"grid": {"selection.selector": ["random_dynamic"], "selection.ratio": [0.5]},
                  "full_baseline": True}}))
    assert main(["tune", "--config", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "sweep summary" in out and "random_dynamic" in out and "full" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sweep_test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raydata_agent.sweep") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.params["selection.selector"] for r in children) == ["full", "random_dynamic"]
    assert all(len(client.get_metric_history(r.info.run_id, "val_metric")) == 2 for r in children)
    summary = {a.path for a in client.list_artifacts(parents[0].info.run_id, "summary")}
    assert {"summary/trials.csv", "summary/metric_vs_cost.png", "summary/trials.txt"} <= summary

    assert main(["report", "sweep_test", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "random_dynamic" in capsys.readouterr().out
