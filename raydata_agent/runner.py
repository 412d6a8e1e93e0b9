"""The driver side of a run: connect to Ray, open the MLflow run, start the score store, fit the
TorchTrainer, and log the plots. `run(cfg)` is what `raydata-agent run`, the jobs and Tune call.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.train import UserCallback

from raydata_agent import plots
from raydata_agent.config import Config, ConfigError, from_dict, is_uri, resolve_paths, validate
from raydata_agent.preflight import preflight, shortfall, worker_group_request
from raydata_agent.ray_logs import hide_known_ray_lines
from raydata_agent.score_store import ScoreStore
from raydata_agent.session import SelectionSession
from raydata_agent.tracking import Tracker, check_reachable, redact, source_tags
from raydata_agent.train import train_loop_per_worker


class RunFailed(RuntimeError):
    """Training stopped with an error; what was computed before it is kept (see the message)."""


class RunInterrupted(RunFailed):
    """The driver was stopped (Ctrl-C, SIGTERM): the MLflow run is marked KILLED and `resume` continues it."""


@dataclass
class RunResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    history: list[dict]
    checkpoint_path: str | None
    final: dict = field(default_factory=dict)
    task: str = "classification"


def init_ray(cfg: Config) -> None:
    """Join the configured cluster (ray.address, else RAY_ADDRESS), or start a local one.

    Ray >= 2.59 turns token authentication on for local clusters and keeps the token in
    ~/.ray/auth_token; we leave that on. Remote clusters read RAY_AUTH_TOKEN / the token file.
    A local cluster runs its dashboard on loopback: Ray Train's placement-group cleaner watches
    its controller through the State API the dashboard serves (without it, it warns every second).
    Metrics export is off: the DashboardAgent's Prometheus port answers without the token (task and
    actor names, the node IP) and binds to 0.0.0.0 unless the node's address is loopback, which
    ray.init replaces with the host's IP; nothing here scrapes it.
    """
    if ray.is_initialized():
        return hide_known_ray_lines()  # a cluster joined by the caller's own ray.init: its printer too
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    # Ray Train's placement-group cleaner (an actor) finds "its" cluster's State API by looking for Ray on
    # the host; with two clusters there (a test cluster beside a job's) it fails with "Found multiple
    # active Ray instances", or picks the wrong one. Every process of the job gets the address instead.
    if address:
        env = {"RAY_ADDRESS": address} if address != "auto" and not address.startswith("ray://") else {}
        ray.init(address=address, runtime_env={"env_vars": env} if env else None)
    else:
        port = _free_port()
        context = ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                           dashboard_port=port, _system_config={"enable_metrics_collection": False},
                           runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}})
        if context.dashboard_url:
            print(f"[raydata-agent] Ray dashboard: http://{context.dashboard_url}", flush=True)
    hide_known_ray_lines()  # Ray's known error-level lines of a healthy run (ray_logs.py)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ACTOR_RESTARTS = 3  # a dead score store or agent comes back empty; the workers' restart restores it


def _store_on_this_node(run_id: str):
    """Pin the score store to the driver's node: it writes the local MLflow store and snapshots.

    If the actor dies, Ray restarts it (its constructor runs again: an empty pool); the workers'
    calls fail, Ray Train restarts them, and rank 0 rolls the new store back to the last checkpoint.
    Named `score_store:<run id>`, so `ray list actors` shows whose it is."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return ray.remote(ScoreStore).options(
        name=f"score_store:{run_id}", num_cpus=0, max_restarts=ACTOR_RESTARTS,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))


def start_store(config: dict, labels, sources, num_classes: int, tracker: Tracker, snapshot_dir: str, agent=None,
                truth: dict | None = None, publish_on_commit: bool = False):
    """The score store actor (ScoreStore's arguments), once its constructor has run. An error there
    (bad input: the same on every try) ends the run here, FAILED in MLflow, with its last line,
    not as Train workers retried against an actor that never started."""
    store = _store_on_this_node(tracker.run_id).remote(config, labels, sources, num_classes, tracker, snapshot_dir,
                                                       agent, truth, publish_on_commit=publish_on_commit)
    try:
        ray.get(store.__ray_ready__.remote())
    except ray.exceptions.RayActorError as err:
        for actor in (store, agent):
            if actor is not None:
                ray.kill(actor)
        tracker.end("FAILED")
        reason = [line for line in str(err).splitlines() if line.strip()][-1]  # "DataError: ..."
        raise RunFailed(f"run {tracker.run_id} failed before training: the score store did not start: "
                        f"{reason}") from None
    return store


def log_plots(tracker: Tracker, history: list[dict], title: str = "", class_names: list[str] | None = None) -> None:
    if not history:
        return
    if any(plots.has_metric(h) for h in history):  # no val_metric logged: no empty frame either
        tracker.log_figure(plots.metric_vs_cost(history, title), "metric_vs_cost.png")
    tracker.log_figure(plots.weight_histograms(history, title), "weights.png")
    tracker.log_figure(plots.adaptive_weight(history, title), "adaptive_weight.png")
    tracker.log_figure(plots.class_selection(history, title, class_names), "class_selection.png")
    if any("agent_policy_loss" in h for h in history):
        tracker.log_figure(plots.agent_losses(history, title), "agent_losses.png")


def plot_title(cfg: Config, run_id: str) -> str:
    """`run 1a2b3c4d: greedy, ratio 0.3, shapes, small_cnn`: what each figure is about."""
    return (f"run {run_id[:8]}: {cfg.selection.selector}, ratio {cfg.selection.ratio:g}, "
            f"{cfg.data.name}, {cfg.task.model}")


def _progress(store, total_epochs: int, done: threading.Event, out=None) -> None:
    """Print one line per finished epoch, and (on a terminal) a live count of samples trained in the current one.
    `out` defaults to sys.stdout as it is when the run starts (a caller may have redirected it)."""
    out = out or sys.stdout
    shown = 0
    live = out.isatty()
    prefix = "\r" if live else ""  # a live line is overwritten in place
    while True:
        stopping = done.wait(2.0)  # after the run ends, one last poll prints the final epochs
        try:
            p = ray.get(store.progress.remote(shown), timeout=10)
        except Exception:  # the store is busy: progress is best effort
            if stopping:
                return
            continue
        if p.get("resumed_from", 0) > shown:  # a resumed run: the run before printed the restored epochs
            print(f"{prefix}[raydata-agent] resumed from epoch {p['resumed_from']}", file=out, flush=True)
            p["new"], shown = p["new"][p["resumed_from"] - shown:], p["resumed_from"]
        for h in p["new"]:
            shown += 1
            print(f"{prefix}[raydata-agent] epoch {h['epoch'] + 1}/{total_epochs}  selected {h['selected']}"
                  f"  train_loss {h['train_loss']:.4f}  val {h['val_metric']:.4f}  w {h['adaptive_w']:.2f}"
                  f"  cost {h['cost_fraction']:.2f}  {h['epoch_time_s']:.1f}s", file=out, flush=True)
        if stopping:
            return
        if not p["new"] and p["planned"] and live:
            print(f"\r[raydata-agent] epoch {shown + 1}/{total_epochs}  trained {p['passes']}/{p['planned']}",
                  end="", file=out, flush=True)


class EpochCommits(UserCallback):
    """Runs in the Ray Train controller. When a report's checkpoint is committed, the epoch it holds
    is logged to MLflow (once): an epoch a restart will redo never shows in the metric history.
    A worker error that a restart cannot mend (a NaN loss, bad data) stops the run here instead of
    being retried `train.max_failures` times."""

    def __init__(self, store):
        self.store = store

    def after_report(self, run_context, metrics, checkpoint):
        if checkpoint is not None and metrics and "epoch" in metrics[0]:
            ray.get(self.store.publish.remote(int(metrics[0]["epoch"])))

    def after_exception(self, run_context, worker_exceptions):
        for error in worker_exceptions.values():
            cause = root_cause(error)
            if type(cause).__name__ in DETERMINISTIC_ERRORS:
                raise cause


DETERMINISTIC_ERRORS = ("NonFiniteLossError", "DataError", "CheckpointError")  # the same on every retry


def root_cause(error: BaseException) -> BaseException:
    """The user's exception inside Ray's wrappers (RayTaskError.cause, ControllerError.controller_failure)."""
    while True:
        inner = (getattr(error, "controller_failure", None) or getattr(error, "cause", None)
                 or error.__cause__)
        if not isinstance(inner, BaseException) or inner is error:
            return error
        error = inner


def _start_tracking(cfg: Config, task, resume_run_id: str | None, source: dict | None) -> Tracker:
    if resume_run_id is not None:
        tracker = Tracker(cfg.tracking_uri, resume_run_id)
        tracker.client.update_run(resume_run_id, status="RUNNING")
        return tracker
    name = cfg.tracking.run_name or cfg.run_name() + (" resumed" if cfg.train.resume_from else "")
    tracker = Tracker.start(cfg.tracking_uri, cfg.tracking.experiment, name,
                            {k: v for k, v in cfg.run_params().items()
                             if k not in ("tracking.run_name", "tracking.parent_run_id")},  # the name and tag
                            tags={**(source or source_tags()),
                                  **({"mlflow.parentRunId": cfg.tracking.parent_run_id}
                                     if cfg.tracking.parent_run_id else {}),
                                  "selector": cfg.selection.selector, "task": cfg.task.name,
                                  "data": cfg.data.name})
    tracker.log_text(config_yaml(cfg), CONFIG_ARTIFACT)  # what `raydata-agent resume` reads back
    skipped = getattr(task, "skipped", [])  # unreadable inputs the task dropped, with reasons
    tracker.log_metrics({"data_skipped": len(skipped)}, step=0)
    if skipped:
        tracker.log_text("".join(f"{path}\t{reason}\n" for path, reason in skipped), "data/skipped.tsv")
        print(f"[raydata-agent] skipped {len(skipped)} unreadable input(s); list in MLflow: data/skipped.tsv",
              flush=True)
    return tracker


CONFIG_ARTIFACT = "config.yaml"


def config_yaml(cfg: Config) -> str:
    import yaml

    raw = cfg.to_dict()
    raw["tracking"]["uri"] = redact(raw["tracking"]["uri"])  # never a password in an artifact
    return yaml.safe_dump(raw, sort_keys=False)


def run(cfg: Config, progress: bool = True, callbacks: list | None = None,
        source: dict | None = None, resume_run_id: str | None = None) -> RunResult:
    """Train one model with data selection. `callbacks` are Ray Train callbacks (e.g. Tune's
    TuneReportCallback, which forwards each epoch's metrics to a Tune trial); `source` the MLflow
    source tags of the process that started it (a sweep's trials run in Ray workers: theirs say nothing).
    `resume_run_id` continues that MLflow run from its latest checkpoint (see `resume`)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = resolve_paths(cfg)
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and cfg.tracking_uri.startswith(f"sqlite:///{Path.cwd()}"):
        print(f"[raydata-agent] WARNING: the MLflow store {cfg.tracking_uri} is inside this Ray job's temporary "
              f"working dir, which Ray deletes: set tracking.uri (a server, or an absolute sqlite path)", flush=True)
    task, train_data, val_data = preflight(cfg)  # config, tracking store, checkpoint, data: before Ray starts
    init_ray(cfg)
    missing = shortfall(worker_group_request(cfg), ray.cluster_resources())
    if missing:  # a cluster we joined may grow (an autoscaler); Ray Train waits for it
        print(f"[raydata-agent] waiting for the cluster to offer the {cfg.train.num_workers} training workers "
              f"{missing}: they start once nodes join (Ctrl-C stops)", flush=True)
    tracker = _start_tracking(cfg, task, resume_run_id, source)
    storage = cfg.ray.storage_path.rstrip("/")  # a path, or a pyarrow.fs URI (s3://bucket/dir)
    agent = None
    if cfg.selection.selector == "data_agent":
        from raydata_agent.agent import start_agent

        agent = start_agent(cfg, len(train_data), name=f"data_agent:{tracker.run_id}")
    store = start_store(cfg.to_dict(), train_data.labels, train_data.sources, task.num_classes, tracker,
                        f"{storage}/{tracker.run_id}/pool", agent, getattr(train_data, "truth", None),
                        publish_on_commit=True)
    if cfg.train.resume_from:
        tracker.set_tag("resumed_from", cfg.train.resume_from)
    # The same session a user's own loop gets from start_session: the workers get copies of it;
    # this one owns the MLflow run and the actors.
    session = SelectionSession(store, cfg, tracker=tracker, agent=agent, owner=True,
                               plot_title=plot_title(cfg, tracker.run_id),
                               class_names=getattr(task, "class_names", None))

    loop_config = {"config": cfg.to_dict(), "session": session, "tracker": tracker}
    datasets = {}
    if cfg.data.pipeline == "ray_data":  # the training set streams to the workers (data/streaming.py)
        from ray.data import DataContext

        from raydata_agent.data.streaming import epoch_dataset

        context = DataContext.get_current()  # the driver prints one line per epoch; Ray Data's plan lines are noise
        context.print_on_execution_start = context.enable_progress_bars = False
        datasets["train"] = epoch_dataset(session, train_data, cfg)
        loop_config.update(data_info=task.data_info(), val_data=ray.put(val_data))
    trainer = TorchTrainer(
        train_loop_per_worker, datasets=datasets,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                     resources_per_worker={"CPU": cfg.train.cpus_per_worker}),
        # The run's name is its MLflow run id: `raydata-agent resume` finds Ray Train's state by it.
        # Ray Train logs every report at INFO; the driver prints one line per epoch instead.
        run_config=RunConfig(name=tracker.run_id, storage_path=storage,
                             callbacks=[EpochCommits(store), *(callbacks or [])],
                             failure_config=FailureConfig(max_failures=cfg.train.max_failures),
                             logging_config=ray.LoggingConfig(log_level="WARNING")),
    )
    done = threading.Event()
    watcher = threading.Thread(target=_progress, args=(store, cfg.train.epochs, done), daemon=True)
    if progress:
        watcher.start()
    status, error = "FINISHED", None
    result = None
    try:
        result = trainer.fit()
    except Exception as err:  # Ray wraps the worker's exception; keep its message for the user
        status, error = "FAILED", err
    except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C (Ray Train's handler exits), SIGTERM (Ray's handler exits)
        status, error = "KILLED", err
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join(timeout=15)
        if error is None:
            ray.get(store.publish_all.remote())  # every epoch is committed by now
        session.close(status)  # plots, the MLflow run's end, the store and agent actors
        history = session.history
    if error is not None:
        where = (f"  MLflow run (partial metrics, plots, pool snapshots): {redact(tracker.uri)} run {tracker.run_id}\n"
                 f"  checkpoints: {storage}/{tracker.run_id}\n"
                 f"  continue it with: {resume_command(tracker.run_id, tracker.uri)}")
        if status == "KILLED":
            raise RunInterrupted(f"run {tracker.run_id} interrupted after {len(history)} finished epochs "
                                 f"(MLflow status KILLED)\n{where}") from error
        cause = root_cause(error)
        raise RunFailed(f"run {tracker.run_id} failed after {len(history)} finished epochs: "
                        f"{type(cause).__name__}: {cause}\n{where}") from error
    checkpoint = result.checkpoint.path if result is not None and result.checkpoint else None
    return RunResult(tracker.run_id, tracker.experiment_id, tracker.uri, history, checkpoint,
                     final=history[-1] if history else {}, task=cfg.task.name)


def resume_command(run_id: str, tracking_uri: str) -> str:
    """What continues a run; the tracking URI is named unless it is the default one of this directory."""
    uri = "" if tracking_uri == Config().tracking_uri else f" --tracking-uri {redact(tracking_uri)}"
    return f"raydata-agent resume {run_id}{uri}"


def resume(run_id: str, tracking_uri: str | None = None, progress: bool = True) -> RunResult:
    """Continue a run whose driver died (or that failed) into the same MLflow run.

    The config comes from the run's `config.yaml` artifact; Ray Train finds the run's latest
    committed checkpoint under `<ray.storage_path>/<run id>` by the run's name and hands it to the
    workers, which restore the model and roll the score store back to it. Epochs that MLflow already
    holds are not logged again, and those the dead driver had checkpointed but not logged are.
    """
    import yaml
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or Config().tracking_uri
    check_reachable(uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise ConfigError(f"no MLflow store at {uri}: pass the run's --tracking-uri")
    client = Tracker(uri, run_id).client
    try:
        info = client.get_run(run_id).info
        raw = yaml.safe_load(Path(client.download_artifacts(run_id, CONFIG_ARTIFACT)).read_text())
    except MlflowException as err:
        raise ConfigError(f"cannot resume run {run_id} from {redact(uri)}: "
                          f"{str(err).splitlines()[0]}") from None
    except OSError:
        raise ConfigError(f"run {run_id} has no {CONFIG_ARTIFACT} artifact: it was not started by "
                          f"raydata-agent run, or by an older version") from None
    if info.status == "FINISHED":
        raise ConfigError(f"run {run_id} already finished; there is nothing to resume")
    raw["tracking"]["uri"] = uri  # the stored one has its credentials masked
    raw["train"]["resume_from"] = None  # Ray Train's own latest checkpoint of this run wins
    cfg = validate(from_dict(raw))
    run_dir = Path(cfg.ray.storage_path) / run_id
    if not is_uri(cfg.ray.storage_path) and not run_dir.is_dir():
        raise ConfigError(f"run {run_id} has no checkpoints under {run_dir} (ray.storage_path of the run)")
    return run(cfg, progress=progress, resume_run_id=run_id)
