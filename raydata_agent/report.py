"""Compare runs: a table of final metric against cost, and the plot with the Pareto front.

`raydata-agent report EXPERIMENT` prints it for every finished run of an MLflow experiment; a sweep
logs the same table and plot on its parent run. A run that trained fewer epochs than its `train.epochs`
(stopped by ASHA, or died) is listed apart: its metric and cost cover a shorter run, so it is never
ranked, never "best" and never on the Pareto front.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.tracking import MlflowClient

SWEEP_TAG = "raydata_agent.sweep"  # set on a sweep's parent run, which is not itself a training run
STOPPED_TAG = "raydata_agent.stopped"  # on a trial that ended before its last epoch: why (ASHA, trial ended)


@dataclass
class RunRow:
    run_id: str
    name: str
    selector: str
    reward: str
    ratio: float
    seed: int
    metric: float
    cost: float
    status: str
    epochs: int = 0  # epochs the run trained
    planned_epochs: int = 0  # its train.epochs (0: unknown)

    @property
    def stopped(self) -> bool:
        """Fewer epochs than planned: ASHA stopped it, or it died. Not comparable with finished runs."""
        return self.epochs < self.planned_epochs


def collect(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[RunRow]:
    rows = []
    for run in client.search_runs(experiment_ids, filter_string=filter_string, max_results=5000):
        if run.data.tags.get(SWEEP_TAG) or "val_metric" not in run.data.metrics:
            continue
        p, m = run.data.params, run.data.metrics
        rows.append(RunRow(run.info.run_id, run.info.run_name or run.info.run_id[:8], p.get("selection.selector", "?"),
                           p.get("reward.variant", "-"), float(p.get("selection.ratio", "nan")),
                           int(p.get("train.seed", 0)), m["val_metric"], m.get("cost_fraction", float("nan")),
                           run.info.status, int(m.get("epoch", 0)), int(p.get("train.epochs", 0))))
    return sorted(rows, key=lambda r: (r.stopped, -r.metric, r.cost))  # finished runs first, best first


def finished(rows: list[RunRow]) -> list[RunRow]:
    return [r for r in rows if not r.stopped]


def pareto(rows: list[RunRow]) -> set[str]:
    """Run ids of finished runs that no other finished run beats on both metric (higher) and cost (lower)."""
    front, best = set(), float("-inf")
    for row in sorted(finished(rows), key=lambda r: (r.cost, -r.metric)):
        if row.metric > best:
            front.add(row.run_id)
            best = row.metric
    return front


def table(rows: list[RunRow]) -> str:
    front = pareto(rows)
    header = (f"{'rank':>4}  {'selector':15s} {'reward':12s} {'ratio':>6s} {'seed':>4s} {'epochs':>6s} {'metric':>8s} "
              f"{'cost':>6s}  {'pareto':6s} run")
    line = lambda rank, r: (f"{rank:>4}  {r.selector:15s} {r.reward:12s} {r.ratio:6.2f} {r.seed:4d} "  # noqa: E731
                            f"{r.epochs:>3d}/{r.planned_epochs:<2d} {r.metric:8.4f} {r.cost:6.3f}  "
                            f"{'*' if r.run_id in front else '':6s} {r.run_id}  {r.name}")
    lines = [header] + [line(i, r) for i, r in enumerate(finished(rows), 1)]
    stopped = [r for r in rows if r.stopped]
    if stopped:
        lines += ["", f"stopped early, not ranked ({len(stopped)}): metric and cost at the epoch they stopped"]
        lines += [line("-", r) for r in stopped]
    return "\n".join(lines)


def csv(rows: list[RunRow]) -> str:
    front = pareto(rows)
    out = ["run_id,name,selector,reward,ratio,seed,epochs,planned_epochs,stopped_early,metric,cost_fraction,"
           "pareto,status"]
    out += [f"{r.run_id},{r.name},{r.selector},{r.reward},{r.ratio},{r.seed},{r.epochs},{r.planned_epochs},"
            f"{int(r.stopped)},{r.metric},{r.cost},{int(r.run_id in front)},{r.status}" for r in rows]
    return "\n".join(out) + "\n"


def plot(rows: list[RunRow], title: str = ""):
    """Final metric against cost fraction; the Pareto front joined; full data as a reference line.
    Stopped runs are grey crosses, apart from their selector's colour: they did not finish."""
    from raydata_agent import plots  # noqa: F401  (selects the headless backend)
    import matplotlib.pyplot as plt

    front = pareto(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    done = finished(rows)
    for selector in sorted({r.selector for r in done}):
        pts = [r for r in done if r.selector == selector]
        ax.scatter([r.cost for r in pts], [r.metric for r in pts], label=selector, s=36)
    stopped = [r for r in rows if r.stopped]
    if stopped:
        ax.scatter([r.cost for r in stopped], [r.metric for r in stopped], marker="x", color="grey", s=36,
                   label=f"stopped early ({len(stopped)})")
    fr = sorted((r for r in rows if r.run_id in front), key=lambda r: r.cost)
    ax.plot([r.cost for r in fr], [r.metric for r in fr], "k--", lw=1, label="Pareto front")
    full = [r.metric for r in done if r.selector == "full"]
    if full:
        ax.axhline(sum(full) / len(full), color="grey", ls=":", label="full data")
    ax.set_xlabel("cost fraction (sample passes / full-data passes)")
    ax.set_ylabel("final validation metric")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the data
    return fig


def default_plot_path(artifact_location: str, experiment: str) -> Path | None:
    """Beside the data the report reads: in the experiment's artifact folder when it is on this machine
    (a SQLite or file store: `mlruns/`, which git ignores, so `ray job submit --working-dir .` does not
    upload it). None when the artifacts live on a tracking server or object store."""
    parts = urlparse(artifact_location)
    if parts.scheme not in ("", "file"):
        return None
    return Path(unquote(parts.path)).resolve() / f"report_{experiment}.png"


def report(experiment: str, tracking_uri: str, out: str | None = None) -> tuple[str, Path | None]:
    """(table, where the plot went); the plot goes to `out`, else beside the experiment's artifacts,
    else nowhere (None): a server's artifacts are not a local folder."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise KeyError(f"no MLflow experiment {experiment!r} at {tracking_uri}; experiments: {', '.join(names)}")
    rows = collect(client, [exp.experiment_id])
    if not rows:
        raise ValueError(f"experiment {experiment!r} has no finished training runs with a val_metric")
    path = Path(out).resolve() if out else default_plot_path(exp.artifact_location, experiment)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        plot(rows, title=experiment).savefig(path, dpi=110)
    return table(rows), path
