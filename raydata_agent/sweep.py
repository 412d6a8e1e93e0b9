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
      asha: false                        # early-stop weak trials on `metric`, at equal compute
      grace_period: null                 # ASHA: compute (full-data epochs) before a trial can be stopped;
                                         # null: half of train.epochs
      max_concurrent_trials: null        # null: as many as the cluster's CPUs/GPUs fit

`sweep.KEY=VALUE` on the command line overrides the file's `sweep:` section like any other key;
`sweep.grid.SECTION.KEY=[...]` sets one axis of the grid.

ASHA measures a trial's progress in compute, `cumulative_cost_epochs` (sample passes / pool size),
not in epochs: a selector at ratio 0.3 has trained on a third of the data by epoch 2, so ranking it
there against full data ranks its ratio, not its choices. The full-data reference is never stopped.
A trial that ends before its last epoch is tagged raydata_agent.stopped and listed apart by the
summary: never ranked, never best, never on the Pareto front (report.py).

MLflow: one parent run per sweep (tagged raydata_agent.sweep) with each trial nested under it
(mlflow.parentRunId), in the config's experiment. At the end the parent gets the summary: a table
and a plot of final metric against cost fraction, Pareto front marked, full data as a reference.
Each trial builds and fits its own TorchTrainer (the Train V2 pattern); Tune's
TuneReportCallback forwards every epoch's metrics to the trial, which is what ASHA acts on.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import yaml

from raydata_agent.config import RENAMED, Config, ConfigError, apply_overrides, did_you_mean, load_dict
from raydata_agent.config.sweep import SweepConfig


# ASHA's clock: compute spent, in full-data epochs (the score store's per-epoch row)
ASHA_TIME_ATTR = "cumulative_cost_epochs"


def load_sweep(path: str | None, overrides: list[str]) -> tuple[dict, SweepConfig]:
    """(base run config as a raw dict, sweep settings); every trial's config is validated here."""
    raw: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"sweep file {path!r} does not exist")
        raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep file {path!r} must hold a mapping of sections (sweep, task, data, ...)")
    sections = ["sweep", *Config.model_fields]
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    for section in [*raw, *(k.split(".", 1)[0] for k in keys if "." in k)]:
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r}{did_you_mean(section, sections)}; "
                              f"allowed: {', '.join(sections)}")
    spec = dict(raw.pop("sweep", None) or {})
    for item, key in zip(overrides, keys):  # sweep.asha=true, or one grid axis: sweep.grid.train.seed=[0,1]
        if key.startswith("sweep."):
            text = item.split("=", 1)[1]
            value = yaml.safe_load(text) if text != "" else None
            name = key.split(".", 1)[1]
            if name.startswith("grid.") and isinstance(spec.get("grid", {}), dict):
                spec["grid"] = {**spec.get("grid", {}), name.split(".", 1)[1]: value}
            else:
                spec[name] = value
    sweep = sweep_config(spec)
    raw = apply_overrides(raw, [o for o, k in zip(overrides, keys) if not k.startswith("sweep.")])
    flat_keys = set(Config().flat())
    for key, values in sweep.grid.items():
        if key not in flat_keys:
            moved = f" (it is now {RENAMED[key]})" if key in RENAMED else ""
            raise ConfigError(f"sweep.grid key {key!r} is not a config key{moved} (section.key, e.g. selection.ratio)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.{key} must be a non-empty list of values")
    for trial in trials(sweep):
        load_config_from(raw, trial)  # a bad combination fails now, not an hour into the sweep
    return raw, sweep


def sweep_config(spec: dict) -> SweepConfig:
    """The `sweep:` section, checked like the run config: unknown keys and wrong types named."""
    if not isinstance(spec, dict):
        raise ConfigError(f"the sweep section must be a mapping of its keys, got {type(spec).__name__} {spec!r}")
    for key in spec:
        if key not in SweepConfig.model_fields:
            raise ConfigError(f"unknown sweep key sweep.{key}{did_you_mean(key, SweepConfig.model_fields, 'sweep.')}; "
                              f"allowed: {', '.join(SweepConfig.model_fields)}")
    if "grid" in spec and not isinstance(spec["grid"], dict):
        raise ConfigError(f"sweep.grid must map config keys to value lists, got {spec['grid']!r}")
    return SweepConfig.build(spec)


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
    """A trial's config: the sweep's base config with the trial's overrides, through the one builder."""
    return load_dict(raw, overrides)


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
    shown = ("selection.selector", "selection.ratio", "train.seed")
    extra = [f"{key.split('.', 1)[1]}={value}" for key, value in (o.split("=", 1) for o in overrides)
             if key not in shown]
    tracking = cfg.tracking.model_copy(update={"run_name": " ".join([cfg.run_name(), *extra])})
    return cfg.model_copy(update={"tracking": tracking})


def run_sweep(path: str | None, overrides: list[str]) -> tuple[str, str]:
    """Run the sweep; returns (parent run id, summary table)."""
    from ray import tune

    from raydata_agent import report
    from raydata_agent.cluster import init_ray
    from raydata_agent.tracking import Tracker, source_tags, ui_url
    from raydata_agent.progress import say

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
    scheduler = asha_scheduler(sweep, base.train.epochs) if sweep.asha else None
    concurrency = concurrent_trials(base, sweep.max_concurrent_trials)
    say(f"sweep: {len(grid)} trials, {concurrency} at a time; MLflow parent run {parent.run_id}")
    if url := ui_url(parent.uri, parent.experiment_id, parent.run_id):
        say(f"follow it live: {url}")
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


def asha_scheduler(sweep: SweepConfig, epochs: int):
    """ASHA on `metric` against compute spent (ASHA_TIME_ATTR), so each trial is judged after the same
    number of sample passes whatever its ratio; it never stops the full-data reference."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class ReferenceKeepingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            if is_reference(trial.config):
                return TrialScheduler.CONTINUE  # and it sets no rung's bar
            return super().on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller, trial, result):
            if not is_reference(trial.config):
                super().on_trial_complete(tune_controller, trial, result)

    # max_t one past the most compute a trial can spend: ASHA stops every trial that reaches max_t, and a
    # trial stopped after its last report would be killed before it logs its plots and closes its MLflow run.
    return ReferenceKeepingASHA(metric=sweep.metric, mode="max", time_attr=ASHA_TIME_ATTR, max_t=epochs + 1,
                                grace_period=sweep.grace_period or epochs / 2)


def is_reference(trial_config: dict) -> bool:
    return "selection.selector=full" in trial_config.get("overrides", [])


def log_summary(parent, rows, metric: str) -> None:
    """The sweep's result on the parent run itself, so the runs table and its charts show it folded:
    the best finished trial's metric and cost, the full-data reference, and the Pareto front as a series
    (step i = the i-th cheapest point of the front). Stopped trials are only counted."""
    from raydata_agent import report

    done = report.finished(rows)  # collect() sorts them best metric first, cheaper first on ties
    front = sorted((r for r in done if r.run_id in report.pareto(rows)), key=lambda r: r.cost)
    full = [r.metric for r in done if r.selector == "full"]
    parent.log_metrics({"trials_finished": len(done), "trials_stopped": len(rows) - len(done),
                        "pareto_points": len(front),
                        **({f"best_{metric}": done[0].metric, "best_cost_fraction": done[0].cost} if done else {}),
                        **({f"full_{metric}": sum(full) / len(full)} if full else {})}, step=0)
    for i, r in enumerate(front):
        parent.log_metrics({f"pareto_{metric}": r.metric, "pareto_cost_fraction": r.cost}, step=i)
    if done:
        parent.set_tag("best_trial", f"{done[0].name} ({done[0].run_id})")
    parent.set_tag("pareto_front", "; ".join(f"{r.name}: {r.metric:.4f} at cost {r.cost:.3f}" for r in front))


def close_stopped_trials(parent, sweep: SweepConfig) -> None:
    """A trial that ASHA stops (or that dies) never closes its MLflow run: end it as KILLED, so the table
    does not show it running for ever. Every trial that ended before its last epoch is tagged
    raydata_agent.stopped (why) for the MLflow UI; its metrics up to the stop stay."""
    from raydata_agent.report import STOPPED_TAG

    children = parent.client.search_runs([parent.experiment_id], max_results=5000,
                                         filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    for run in children:
        running = run.info.status == "RUNNING"
        if running or run.data.metrics.get("epoch", 0) < int(run.data.params.get("train.epochs", 0)):
            parent.client.set_tag(run.info.run_id, STOPPED_TAG, "ASHA" if sweep.asha else "trial ended")
        if running:
            parent.client.set_terminated(run.info.run_id, "KILLED")
