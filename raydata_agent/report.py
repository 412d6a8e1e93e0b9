"""Compare runs: a table of final metric against cost, and the plot with the Pareto front.

`raydata-agent report EXPERIMENT` prints it for every finished run of an MLflow experiment; a sweep
logs the same table and plot on its parent run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

SWEEP_TAG = "raydata_agent.sweep"  # set on a sweep's parent run, which is not itself a training run


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
    epochs: int = 0  # epochs the run trained; fewer than configured: ASHA stopped it


def collect(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[RunRow]:
    rows = []
    for run in client.search_runs(experiment_ids, filter_string=filter_string, max_results=5000):
        if run.data.tags.get(SWEEP_TAG) or "val_metric" not in run.data.metrics:
            continue
        p, m = run.data.params, run.data.metrics
        rows.append(RunRow(run.info.run_id, run.info.run_name or run.info.run_id[:8], p.get("selection.selector", "?"),
                           p.get("reward.variant", "-"), float(p.get("selection.ratio", "nan")),
                           int(p.get("train.seed", 0)), m["val_metric"], m.get("cost_fraction", float("nan")),
                           run.info.status, int(m.get("epoch", 0))))
    return sorted(rows, key=lambda r: (-r.metric, r.cost))


def pareto(rows: list[RunRow]) -> set[str]:
    """Run ids no other run beats on both metric (higher) and cost (lower)."""
    front, best = set(), float("-inf")
    for row in sorted(rows, key=lambda r: (r.cost, -r.metric)):
        if row.metric > best:
            front.add(row.run_id)
            best = row.metric
    return front


def table(rows: list[RunRow]) -> str:
    front = pareto(rows)
    lines = [f"{'rank':>4}  {'selector':15s} {'reward':12s} {'ratio':>6s} {'seed':>4s} {'epochs':>6s} {'metric':>8s} "
             f"{'cost':>6s}  {'pareto':6s} run"]
    for i, r in enumerate(rows, 1):
        lines.append(f"{i:>4}  {r.selector:15s} {r.reward:12s} {r.ratio:6.2f} {r.seed:4d} {r.epochs:6d} {r.metric:8.4f} "
                     f"{r.cost:6.3f}  {'*' if r.run_id in front else '':6s} {r.run_id}  {r.name}")
    return "\n".join(lines)


def csv(rows: list[RunRow]) -> str:
    front = pareto(rows)
    out = ["run_id,name,selector,reward,ratio,seed,epochs,metric,cost_fraction,pareto,status"]
    out += [f"{r.run_id},{r.name},{r.selector},{r.reward},{r.ratio},{r.seed},{r.epochs},{r.metric},{r.cost},"
            f"{int(r.run_id in front)},{r.status}" for r in rows]
    return "\n".join(out) + "\n"


def plot(rows: list[RunRow], title: str = ""):
    """Final metric against cost fraction; the Pareto front joined; full data as a reference line."""
    from raydata_agent import plots  # noqa: F401  (selects the headless backend)
    import matplotlib.pyplot as plt

    front = pareto(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for selector in sorted({r.selector for r in rows}):
        pts = [r for r in rows if r.selector == selector]
        ax.scatter([r.cost for r in pts], [r.metric for r in pts], label=selector, s=36)
    fr = sorted((r for r in rows if r.run_id in front), key=lambda r: r.cost)
    ax.plot([r.cost for r in fr], [r.metric for r in fr], "k--", lw=1, label="Pareto front")
    full = [r.metric for r in rows if r.selector == "full"]
    if full:
        ax.axhline(sum(full) / len(full), color="grey", ls=":", label="full data")
    ax.set_xlabel("cost fraction (sample passes / full-data passes)")
    ax.set_ylabel("final validation metric")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the data
    return fig


def report(experiment: str, tracking_uri: str, out: str | None = None) -> tuple[str, Path]:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise KeyError(f"no MLflow experiment {experiment!r} at {tracking_uri}; experiments: {', '.join(names)}")
    rows = collect(client, [exp.experiment_id])
    if not rows:
        raise ValueError(f"experiment {experiment!r} has no finished training runs with a val_metric")
    path = Path(out or f"report_{experiment}.png").resolve()
    fig = plot(rows, title=experiment)
    fig.savefig(path, dpi=110)
    return table(rows), path
