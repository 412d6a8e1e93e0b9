"""Ray cluster helpers below the runner and the session: join or start Ray, and start the score
store actor on the driver's node. Both wiring paths (runner.run, start_session(use_ray=True)) use them."""
from __future__ import annotations

import os

import ray

from raydata_agent.config import Config
from raydata_agent.errors import RunFailed
from raydata_agent.local_cluster import LOCAL_TRAIN_ENV, running
from raydata_agent.progress import say
from raydata_agent.ray_logs import hide_known_ray_lines
from raydata_agent.score_store import ScoreStore

ACTOR_RESTARTS = 3  # a dead score store or agent comes back empty; the workers' restart restores it

def init_ray(cfg: Config) -> None:
    """Join the configured cluster (ray.address, else RAY_ADDRESS, else the head `raydata-agent up`
    started on this machine, if it is up), or start a local one.

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
    if not address and (head := running()) is not None:
        address = head["address"]
        # `ray start` turned token auth on (its token is in ~/.ray); this process must use it too. RAY_AUTH_MODE
        # alone is read once, at `import ray`: Ray's own helper sets it and refreshes that cached config.
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        say(f"joined the local Ray cluster that `raydata-agent up` started ({address}; `raydata-agent down` ends it)")
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
                           runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}",
                                                     **LOCAL_TRAIN_ENV}})
        if context.dashboard_url:
            say(f"Ray dashboard: http://{context.dashboard_url}")
    hide_known_ray_lines()  # Ray's known error-level lines of a healthy run (ray_logs.py)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_store(config: dict, labels, sources, num_classes: int, tracker, snapshot_dir: str, agent=None,
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
