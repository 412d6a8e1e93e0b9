"""The driver side of a run: connect to Ray, open the MLflow run, start the score store, fit the
TorchTrainer, and log the plots. `run(cfg)` is what `raydata-agent run`, the jobs and Tune call.
"""
from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.train import UserCallback

from raydata_agent import cluster
from raydata_agent.cluster import init_ray  # noqa: F401  (tests/conftest.py starts its cluster with it)
from raydata_agent.config import Config, ConfigError, from_dict, is_uri, resolve_paths, validate
from raydata_agent.errors import RunFailed, RunInterrupted
from raydata_agent.preflight import preflight, shortfall, worker_group_request
from raydata_agent.progress import say, watch
from raydata_agent.session_factory import CONFIG_ARTIFACT, RECIPE, open_run, open_session
from raydata_agent.tracking import Tracker, check_reachable, redact
from raydata_agent.train import train_loop_per_worker

__all__ = ["RunFailed", "RunInterrupted", "RunResult", "resume", "run"]


@dataclass
class RunResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    history: list[dict]
    checkpoint_path: str | None
    final: dict = field(default_factory=dict)
    task: str = "classification"


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


def run(cfg: Config, progress: bool = True, callbacks: list | None = None,
        source: dict | None = None, resume_run_id: str | None = None) -> RunResult:
    """Train one model with data selection. `callbacks` are Ray Train callbacks (e.g. Tune's
    TuneReportCallback, which forwards each epoch's metrics to a Tune trial); `source` the MLflow
    source tags of the process that started it (a sweep's trials run in Ray workers: theirs say nothing).
    `resume_run_id` continues that MLflow run from its latest checkpoint (see `resume`)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = resolve_paths(cfg)
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and cfg.tracking_uri.startswith(f"sqlite:///{Path.cwd()}"):
        say(f"WARNING: the MLflow store {cfg.tracking_uri} is inside this Ray job's temporary working dir, "
            f"which Ray deletes: set tracking.uri (a server, or an absolute sqlite path)")
    task, train_data, val_data = preflight(cfg)  # config, tracking store, checkpoint, data: before Ray starts
    # MLflow's client (about 1.5 s of imports) loads while Ray starts, which is mostly waiting on its processes.
    # After preflight (an http store's check imports mlflow itself) and joined before this thread imports it:
    # two threads importing mlflow at once can see it partly initialised ("partially initialized module
    # 'mlflow' has no attribute 'version'", seen in a loaded walkthrough job).
    mlflow_import = threading.Thread(target=importlib.import_module, args=("mlflow.tracking",), daemon=True)
    mlflow_import.start()
    cluster.init_ray(cfg)
    mlflow_import.join()
    missing = shortfall(worker_group_request(cfg), ray.cluster_resources())
    if missing:  # a cluster we joined may grow (an autoscaler); Ray Train waits for it
        say(f"waiting for the cluster to offer the {cfg.train.num_workers} training workers "
            f"{missing}: they start once nodes join (Ctrl-C stops)")
    tracker = open_run(cfg, RECIPE, source, resume_run_id)
    if resume_run_id is None:
        log_skipped(tracker, getattr(task, "skipped", []))
    storage = cfg.ray.storage_path.rstrip("/")  # a path, or a pyarrow.fs URI (s3://bucket/dir)
    # The same session a user's own loop gets from start_session: the workers get copies of it;
    # this one owns the MLflow run and the actors. The driver's progress lines come from `watch`.
    session = open_session(cfg, train_data.labels, train_data.sources, num_classes=task.num_classes, use_ray=True,
                           integration=RECIPE, progress=False, tracker=tracker,
                           truth=getattr(train_data, "truth", None), class_names=getattr(task, "class_names", None),
                           publish_on_commit=True)
    store = session.store

    loop_config = {"config": cfg, "session": session, "tracker": tracker}
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
                             # the latest N; restarts, `resume` and the store's roll-back read the latest
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.checkpoints_to_keep),
                             logging_config=ray.LoggingConfig(log_level="WARNING")),
    )
    done = threading.Event()
    watcher = threading.Thread(target=watch, args=(store, cfg.train.epochs, done), daemon=True)
    if progress:
        watcher.start()
    # matplotlib (about 1 s of imports) for the plots that close the run, loaded while the driver waits on
    # the workers: neither the start nor the end of the run waits for it.
    threading.Thread(target=importlib.import_module, args=("raydata_agent.plots",), daemon=True).start()
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


def log_skipped(tracker: Tracker, skipped: list) -> None:
    """Unreadable inputs the task dropped at load, with reasons: a metric, a list in MLflow, one console line."""
    tracker.log_metrics({"data_skipped": len(skipped)}, step=0)
    if skipped:
        tracker.log_text("".join(f"{path}\t{reason}\n" for path, reason in skipped), "data/skipped.tsv")
        say(f"skipped {len(skipped)} unreadable input(s); list in MLflow: data/skipped.tsv")


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
