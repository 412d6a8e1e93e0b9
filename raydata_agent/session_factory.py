"""The one place a selection session is made: its MLflow run (params, tags, title), its actors and its
figures' title. `start_session` (a loop the user owns) and `runner.run` (our recipe on Ray Train) both
call `open_session`, so the two paths log and print alike."""
from __future__ import annotations

import numpy as np

from raydata_agent import cluster
from raydata_agent.config import Config, apply_dotted, load_dict
from raydata_agent.progress import say
from raydata_agent.session import SelectionSession
from raydata_agent.tracking import Tracker, redact, source_tags

CONFIG_ARTIFACT = "config.yaml"  # what `raydata-agent resume` reads back
RECIPE = "recipe"  # the `integration` of our own training recipe (train.py), run by runner.run
OWN_LOOP_SECTIONS = ("selection", "reward", "agent")  # what a session reads in a loop the user owns


def run_params(cfg: Config, integration: str) -> dict:
    """The MLflow params of a run: the keys its task, data set and selector read (Config.run_params). A
    loop the user owns has no task or data set of ours: only the session's keys, the epochs and the seed."""
    params = {k: v for k, v in cfg.run_params().items()
              if k not in ("tracking.run_name", "tracking.parent_run_id")}  # the run's name and parent tag
    if integration != RECIPE:
        params = {k: v for k, v in params.items()
                  if k.split(".")[0] in OWN_LOOP_SECTIONS or k in ("train.epochs", "train.seed")}
    return params


def run_tags(cfg: Config, integration: str, source: dict | None = None) -> dict:
    tags = {**(source or source_tags()), "selector": cfg.selection.selector, "integration": integration}
    if cfg.tracking.parent_run_id:
        tags["mlflow.parentRunId"] = cfg.tracking.parent_run_id
    if integration == RECIPE:
        tags.update(task=cfg.task.name, data=cfg.data.name)
    return tags


def open_run(cfg: Config, integration: str, source: dict | None = None,
             resume_run_id: str | None = None) -> Tracker:
    """A new MLflow run with the config as an artifact, or the run `resume_run_id` set RUNNING again."""
    if resume_run_id is not None:
        tracker = Tracker(cfg.tracking_uri, resume_run_id)
        tracker.client.update_run(resume_run_id, status="RUNNING")
        return tracker
    name = cfg.tracking.run_name or cfg.run_name() + (" resumed" if cfg.train.resume_from else "")
    tracker = Tracker.start(cfg.tracking_uri, cfg.tracking.experiment, name, run_params(cfg, integration),
                            tags=run_tags(cfg, integration, source))
    tracker.log_dict(config_dict(cfg), CONFIG_ARTIFACT)
    if cfg.train.resume_from:
        tracker.set_tag("resumed_from", cfg.train.resume_from)
    return tracker


def config_dict(cfg: Config) -> dict:
    raw = cfg.to_dict()
    raw["tracking"]["uri"] = redact(raw["tracking"]["uri"])  # never a password in an artifact
    return raw


def open_session(cfg: Config, labels: np.ndarray, sources=None, *, num_classes: int, use_ray: bool,
                 integration: str, progress: bool, tracker: Tracker | None = None, truth: dict | None = None,
                 class_names: list[str] | None = None, publish_on_commit: bool = False) -> SelectionSession:
    """The session that owns the run: its MLflow run (`tracker`, else a new one), the Data Agent's learner
    if the selector is data_agent, and the score store, in this process or (use_ray) as an actor."""
    import ray

    from raydata_agent.score_store import ScoreStore

    tracker = tracker or open_run(cfg, integration)
    snapshot_dir = f"{cfg.ray.storage_path.rstrip('/')}/{tracker.run_id}/pool"
    if (use_ray or cfg.selection.selector == "data_agent") and not ray.is_initialized():
        if use_ray:
            cluster.init_ray(cfg)
        else:  # only the agent's learner needs it: a quiet local Ray
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    agent = None
    if cfg.selection.selector == "data_agent":
        from raydata_agent.agent import start_agent

        agent = start_agent(cfg, len(labels), name=f"data_agent:{tracker.run_id}" if use_ray else None)
    # ScoreStore takes the config as a dict (score_store.py rebuilds it with from_dict).
    args = (cfg.to_dict(), labels, sources, num_classes, tracker, snapshot_dir, agent, truth)
    if use_ray:
        store = cluster.start_store(*args, publish_on_commit=publish_on_commit)
    else:
        try:
            store = ScoreStore(*args)
        except Exception:  # bad input (the pool's labels, sources): the MLflow run ends FAILED
            tracker.end("FAILED")
            raise
    from raydata_agent.plots import plot_title  # matplotlib: loaded off the start-up path (runner.run)

    return SelectionSession(store, cfg, tracker=tracker, agent=agent, owner=True, progress=progress,
                            plot_title=plot_title(cfg, tracker.run_id, integration), class_names=class_names)


def build_config(epochs: int, selector: str, ratio: float, seed: int, tracking_uri: str | None,
                 experiment: str, run_name: str | None, storage_path: str, config: dict | None) -> Config:
    """A validated Config from keyword arguments plus dotted `config` keys (e.g. {"selection.delta": 0.75})."""
    raw: dict = {"selection": {"selector": selector, "ratio": ratio},
                 "train": {"epochs": epochs, "seed": seed},
                 "tracking": {"uri": tracking_uri, "experiment": experiment, "run_name": run_name},
                 "ray": {"storage_path": storage_path}}
    return load_dict(apply_dotted(raw, config or {}))


def start_session(num_samples: int | None = None, *, epochs: int, labels=None, sources=None,
                  selector: str = "infobatch", ratio: float = 0.5, seed: int = 0,
                  tracking_uri: str | None = None, experiment: str = "raydata_agent",
                  run_name: str | None = None, storage_path: str = "runs", config: dict | None = None,
                  use_ray: bool = False, integration: str = "own_loop", progress: bool = True) -> SelectionSession:
    """Start selection for a training loop you own: a pool of `num_samples` rows, one MLflow run.

    use_ray=False (default): the score store lives in this process; no Ray is started (the
    data_agent selector still needs its learner actor, so it starts a local Ray quietly).
    use_ray=True: the store is a Ray actor (a local Ray starts if none is running), so the
    session can be passed to Ray Train workers and each gets its shard of every epoch's subset.
    `labels` (int class per sample, optional) give per-class selection plots; `sources` name rows.
    """
    if labels is None:
        if num_samples is None:
            raise ValueError("start_session needs num_samples or labels")
        labels = np.full(int(num_samples), -1, np.int64)
    labels = np.asarray(labels, np.int64)
    if num_samples is not None and len(labels) != num_samples:
        raise ValueError(f"start_session got num_samples={num_samples} but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("start_session needs at least one sample")
    cfg = build_config(epochs, selector, ratio, seed, tracking_uri, experiment, run_name, storage_path, config)
    session = open_session(cfg, labels, sources, num_classes=max(int(labels.max()) + 1, 1), use_ray=use_ray,
                           integration=integration, progress=progress)
    if progress:
        say(f"selection: {cfg.selection.selector} keeps {cfg.selection.ratio:.0%} of {len(labels)} samples "
            f"per epoch; MLflow run {session.run_id} in {redact(session.tracking_uri)}")
    return session
