"""`raydata-agent tune`: a Ray Tune sweep in which every trial is one full training run.

A sweep file is a run config plus a `sweep:` section:

    sweep:
      grid:                              # dotted config keys -> values; the trials are the product
        selection.selector: [greedy, data_agent]
        reward.variant: [adaptive, difficulty]
        selection.ratio: [0.3, 0.5]
        train.seed: [0]
      full_baseline: true                # plus one selector=full run per seed, the reference line
      metric: val_metric                 # what ASHA and the summary rank by (higher is better)
      asha: false                        # early-stop weak trials on `metric`, per epoch
      grace_period: 2                    # ASHA: epochs before a trial can be stopped
      max_concurrent_trials: null        # null: as many as the cluster's CPUs/GPUs fit

MLflow: one parent run per sweep (tagged raydata_agent.sweep) with each trial nested under it
(mlflow.parentRunId), in the config's experiment. At the end the parent gets the summary: a table
and a plot of final metric against cost fraction, Pareto front marked, full data as a reference.
Each trial builds and fits its own TorchTrainer (the Train V2 pattern); Tune's
TuneReportCallback forwards every epoch's metrics to the trial, which is what ASHA acts on.
"""
from __future__ import annotations

import itertools
import math
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from raydata_agent.config import Config, ConfigError, apply_overrides, load_config


@dataclass
class SweepConfig:
    grid: dict[str, list] = field(default_factory=dict)
    full_baseline: bool = True
    metric: str = "val_metric"
    asha: bool = False
    grace_period: int = 2
    max_concurrent_trials: int | None = None


def load_sweep(path: str | None, overrides: list[str]) -> tuple[dict, SweepConfig]:
    """(base run config as a raw dict, sweep settings); every trial's config is validated here."""
    raw: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"sweep file {path!r} does not exist")
        raw = yaml.safe_load(Path(path).read_text()) or {}
    spec = raw.pop("sweep", None) or {}
    allowed = {f.name for f in fields(SweepConfig)}
    for key in spec:
        if key not in allowed:
            raise ConfigError(f"unknown sweep key sweep.{key}; allowed: {', '.join(sorted(allowed))}")
    sweep = SweepConfig(**spec)
    raw = apply_overrides(raw, overrides)
    flat_keys = set(Config().flat())
    for key, values in sweep.grid.items():
        if key not in flat_keys:
            raise ConfigError(f"sweep.grid key {key!r} is not a config key (section.key, e.g. selection.ratio)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.{key} must be a non-empty list of values")
    for trial in trials(sweep):
        load_config_from(raw, trial)  # a bad combination fails now, not an hour into the sweep
    return raw, sweep


def trials(sweep: SweepConfig) -> list[list[str]]:
    """Override lists, one per trial: the grid's product, plus a full-data run per seed."""
    keys = list(sweep.grid)
    out = [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*sweep.grid.values())]
    if sweep.full_baseline:
        for seed in sweep.grid.get("train.seed", [None]):
            base = ["selection.selector=full", "selection.ratio=1.0"]
            trial = base + ([f"train.seed={seed}"] if seed is not None else [])
            if trial not in out:
                out.append(trial)
    # Seed by seed (each seed's full-data run with it): an interrupted sweep leaves complete paired seeds.
    seed_of = lambda trial: next((o for o in trial if o.startswith("train.seed=")), "")  # noqa: E731
    order = list(dict.fromkeys(seed_of(t) for t in out))
    return sorted(out, key=lambda t: order.index(seed_of(t)))


def load_config_from(raw: dict, overrides: list[str]) -> Config:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(raw, f)
    try:
        return load_config(f.name, overrides)
    finally:
        Path(f.name).unlink(missing_ok=True)


def concurrent_trials(cfg: Config, requested: int | None) -> int:
    """Trials that fit the cluster side by side, so none waits half-started for workers."""
    import ray

    if requested:
        return requested
    res = ray.cluster_resources()
    per_trial_cpu = cfg.train.num_workers * cfg.train.cpus_per_worker
    fit = math.floor(res.get("CPU", 1) / per_trial_cpu)
    if cfg.train.use_gpu:
        fit = min(fit, math.floor(res.get("GPU", 0) / cfg.train.num_workers))
    return max(1, fit)


def _trial(config: dict) -> None:
    """One Tune trial: one training run, nested under the sweep's parent MLflow run."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from raydata_agent.runner import run

    cfg = load_config_from(config["base"], config["overrides"] + [f"tracking.parent_run_id={config['parent_run_id']}"])
    run(apply_run_name(cfg, config["overrides"]), progress=False, callbacks=[TuneReportCallback()],
        source=config["source"])


def apply_run_name(cfg: Config, overrides: list[str]) -> Config:
    """`data_agent r0.5 s0 variant=difficulty`: the run's own name plus the other grid values of the trial."""
    import dataclasses

    shown = ("selection.selector", "selection.ratio", "train.seed")
    extra = [f"{key.split('.', 1)[1]}={value}" for key, value in (o.split("=", 1) for o in overrides)
             if key not in shown]
    return dataclasses.replace(cfg, tracking=dataclasses.replace(
        cfg.tracking, run_name=" ".join([cfg.run_name(), *extra])))


def run_sweep(path: str | None, overrides: list[str]) -> tuple[str, str]:
    """Run the sweep; returns (parent run id, summary table)."""
    from ray import tune

    from raydata_agent import report
    from raydata_agent.runner import init_ray
    from raydata_agent.tracking import Tracker, source_tags, ui_url

    raw, sweep = load_sweep(path, overrides)
    base = load_config_from(raw, [])  # paths and the tracking URI made absolute, here in the driver
    raw = base.to_dict()
    init_ray(base)
    grid = trials(sweep)
    source = source_tags()
    name = base.tracking.run_name or f"sweep {Path(path).stem if path else ''} ({len(grid)} trials)"
    parent = Tracker.start(base.tracking_uri, base.tracking.experiment, name,
                           {"sweep.grid": yaml.safe_dump(sweep.grid), "sweep.trials": len(grid),
                            "sweep.asha": sweep.asha, "sweep.metric": sweep.metric, **base.run_params()},
                           tags={report.SWEEP_TAG: "parent", **source})
    scheduler = None
    if sweep.asha:
        # max_t one past the last epoch: ASHA stops every trial that reaches max_t, and a trial stopped
        # after its last report would be killed before it logs its plots and closes its MLflow run.
        scheduler = tune.schedulers.ASHAScheduler(metric=sweep.metric, mode="max", max_t=base.train.epochs + 1,
                                                  grace_period=sweep.grace_period, time_attr="training_iteration")
    concurrency = concurrent_trials(base, sweep.max_concurrent_trials)
    print(f"[raydata-agent] sweep: {len(grid)} trials, {concurrency} at a time; MLflow parent run {parent.run_id}",
          flush=True)
    if url := ui_url(parent.uri, parent.experiment_id, parent.run_id):
        print(f"[raydata-agent] follow it live: {url}", flush=True)
    tuner = tune.Tuner(
        # The trial itself only drives its TorchTrainer, which reserves the workers' CPUs/GPUs, so it
        # asks for no CPU (Tune needs some resource in a request: a little memory).
        tune.with_resources(_trial, {"CPU": 0, "memory": 256 * 1024**2}),
        param_space={"base": raw, "parent_run_id": parent.run_id, "source": source,
                     "overrides": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, scheduler=scheduler),
        run_config=tune.RunConfig(name=f"sweep_{parent.run_id}", storage_path=base.ray.storage_path,
                                  verbose=0),
    )
    status = "FINISHED"
    try:
        tuner.fit()
    except Exception:
        status = "FAILED"
        raise
    finally:
        close_stopped_trials(parent, sweep)
        rows = report.collect(parent.client, [parent.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
        summary = ""
        if rows:
            summary = report.table(rows)
            log_summary(parent, rows, sweep.metric)
            parent.log_text(summary + "\n", "summary/trials.txt")
            parent.log_text(report.csv(rows), "summary/trials.csv")
            parent.log_figure(report.plot(rows, title=f"{name}: final {sweep.metric} against cost"), "metric_vs_cost.png",
                              artifact_path="summary")
        parent.end(status)
    return parent.run_id, summary


def log_summary(parent, rows, metric: str) -> None:
    """The sweep's result on the parent run itself, so the runs table and its charts show it folded:
    the best trial's metric and cost, the full-data reference, and the Pareto front as a series
    (step i = the i-th cheapest point of the front)."""
    from raydata_agent import report

    best = rows[0]  # collect() sorts best metric first, cheaper first on ties
    front = sorted((r for r in rows if r.run_id in report.pareto(rows)), key=lambda r: r.cost)
    full = [r.metric for r in rows if r.selector == "full"]
    parent.log_metrics({f"best_{metric}": best.metric, "best_cost_fraction": best.cost,
                        "trials_finished": len(rows), "pareto_points": len(front),
                        **({f"full_{metric}": sum(full) / len(full)} if full else {})}, step=0)
    for i, r in enumerate(front):
        parent.log_metrics({f"pareto_{metric}": r.metric, "pareto_cost_fraction": r.cost}, step=i)
    parent.set_tag("best_trial", f"{best.name} ({best.run_id})")
    parent.set_tag("pareto_front", "; ".join(f"{r.name}: {r.metric:.4f} at cost {r.cost:.3f}" for r in front))


def close_stopped_trials(parent, sweep: SweepConfig) -> None:
    """A trial that ASHA stops (or that dies) never closes its MLflow run: end it as KILLED, tagged,
    so the table does not show it running for ever. Its metrics up to the stop stay."""
    children = parent.client.search_runs([parent.experiment_id], max_results=5000,
                                         filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}' "
                                                       "and attributes.status = 'RUNNING'")
    for run in children:
        parent.client.set_tag(run.info.run_id, "raydata_agent.stopped", "ASHA" if sweep.asha else "trial ended")
        parent.client.set_terminated(run.info.run_id, "KILLED")
