"""The figures users look at, built from the per-epoch history a run keeps.

Epochs are numbered from 1 everywhere a person reads them (console, MLflow steps, these axes);
every figure's title names the run, its selector and kept ratio, so a PNG saved out of MLflow
still says what it shows.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _epochs(history: list[dict]) -> list[int]:
    return [h["epoch"] + 1 for h in history]


def _epoch_axis(ax, history: list[dict]) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, len(history) + 0.5)


def _titled(fig, title: str, what: str):
    fig.suptitle(f"{what}\n{title}" if title else what, fontsize=10)
    return fig


def metric_vs_cost(history: list[dict], title: str = "", metric: str = "val_metric"):
    """Validation metric against cumulative cost in full-data epochs: the trade-off users buy. Each
    point is labelled with its epoch; full-data training would sit at x = epoch. Epochs without the
    metric (not validated) are left out; `has_metric` says whether there is anything to plot."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    rows = [h for h in history if has_metric(h, metric)]
    cost = [h["cumulative_cost_epochs"] for h in rows]
    values = [h[metric] for h in rows]
    ax.plot(cost, values, "o-")
    for x, y, epoch in zip(cost, values, _epochs(rows)):
        ax.annotate(str(epoch), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("cumulative cost (full-data epochs of forward-backward passes)")
    ax.set_ylabel(metric)
    ax.set_xlim(0, max(max(cost, default=1), 1) * 1.05)
    ax.grid(alpha=0.3)
    return _titled(fig, title, f"{metric} against cost (labels: epoch)")


def has_metric(row: dict, metric: str = "val_metric") -> bool:
    """Whether an epoch's row carries a finite value of `metric` (e.g. end_epoch(val_metric=...))."""
    return np.isfinite(row.get(metric, np.nan))


def weight_histograms(history: list[dict], title: str = ""):
    """Selection weights per epoch as quantile bands, and the last epoch's histogram on the range the
    weights span: an agent's weights often sit in a narrow band that [0, 1] would flatten."""
    q = np.array([h["weight_quantiles"] for h in history], dtype=float)  # 0, 1, 5, 25, 50, 75, 95, 99, 100 %
    epochs = _epochs(history)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    ax0.fill_between(epochs, q[:, 2], q[:, 6], alpha=0.25, color="C0", label="5-95%")
    ax0.fill_between(epochs, q[:, 3], q[:, 5], alpha=0.45, color="C0", label="25-75%")
    ax0.plot(epochs, q[:, 4], "o-", color="C0", label="median")
    ax0.plot(epochs, q[:, 0], ":", color="grey", lw=1, label="min / max")
    ax0.plot(epochs, q[:, 8], ":", color="grey", lw=1)
    full = np.array([bool(h.get("full_epoch")) for h in history])
    for epoch in np.array(epochs)[full]:  # all data trained (warm-up, annealing): weights do not choose
        ax0.axvspan(epoch - 0.5, epoch + 0.5, color="grey", alpha=0.15, lw=0)
    fit = q[~full] if (~full).any() else q  # the axis fits the epochs in which weights chose the samples
    lo, hi = fit[:, 0].min(), fit[:, 8].max()
    pad = max((hi - lo) * 0.08, 1e-3)
    ax0.set_ylim(lo - pad, hi + pad)
    if full.any():
        ax0.plot([], [], "s", color="grey", alpha=0.3, label="all data (off axis)")
    _epoch_axis(ax0, history)
    ax0.set_ylabel("selection weight")
    ax0.set_title("weights per epoch", fontsize=9)
    ax0.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    last = history[-1]
    counts = np.asarray(last["weight_fit_hist"], dtype=float)
    flo, fhi = last["weight_fit_range"]
    edges = np.linspace(flo, fhi, len(counts) + 1)
    ax1.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
    ax1.set_xlim(edges[0], edges[-1])
    ax1.xaxis.set_major_locator(MaxNLocator(5))
    ax1.set_xlabel("selection weight (1st to 99th percentile)")
    ax1.set_ylabel("samples")
    ax1.set_title(f"epoch {last['epoch'] + 1}", fontsize=9)
    return _titled(fig, title, "selection weights")


def adaptive_weight(history: list[dict], title: str = ""):
    """w per epoch: near 1 while difficulty separates samples, drifting to uncertainty later."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(_epochs(history), [h["adaptive_w"] for h in history], "o-")
    ax.set_ylim(0, 1)
    _epoch_axis(ax, history)
    ax.set_ylabel("adaptive weight w (difficulty share)")
    ax.grid(alpha=0.3)
    return _titled(fig, title, "adaptive weight w")


def class_selection(history: list[dict], title: str = "", class_names: list[str] | None = None):
    """Selected fraction of each class per epoch: shows whether selection starves a class."""
    frac = np.array([h["class_selected_fraction"] for h in history], dtype=float)
    classes = frac.shape[1]
    fig, ax = plt.subplots(figsize=(6.5, max(3.5, 0.22 * classes + 1.5)), layout="constrained")
    epochs = _epochs(history)
    im = ax.imshow(frac.T, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma",
                   extent=(epochs[0] - 0.5, epochs[-1] + 0.5, -0.5, classes - 0.5))
    fig.colorbar(im, ax=ax, label="fraction selected")
    _epoch_axis(ax, history)
    if classes <= 40:  # a name per row while they stay readable
        ax.set_yticks(range(classes))
        ax.set_yticklabels(class_names if class_names and len(class_names) == classes else range(classes),
                           fontsize=7 if classes > 15 else 8)
    ax.set_ylabel("class")
    return _titled(fig, title, "share of each class selected")


def agent_losses(history: list[dict], title: str = ""):
    """PPO policy loss per update, and the value loss where a critic is the baseline (agent.baseline=critic)."""
    rows = [h for h in history if "agent_policy_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    if rows:
        epochs = _epochs(rows)
        lines = ax.plot(epochs, [h["agent_policy_loss"] for h in rows], "o-", label="policy loss")
        if all("agent_value_loss" in h for h in rows):
            ax2 = ax.twinx()
            lines += ax2.plot(epochs, [h["agent_value_loss"] for h in rows], "s--", color="C1", label="value loss")
            ax2.set_ylabel("value loss")
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.18), ncol=2)
    _epoch_axis(ax, history)
    ax.set_ylabel("policy loss")
    return _titled(fig, title, "Data Agent PPO losses")


def plot_title(cfg, run_id: str, integration: str = "recipe") -> str:
    """`run 1a2b3c4d: greedy, ratio 0.3, shapes, small_cnn`: what each figure is about. A loop the user
    owns names its integration (`own_loop`, `ultralytics`) instead of our recipe's data set and model."""
    about = f"{cfg.data.name}, {cfg.task.model}" if integration == "recipe" else integration
    return f"run {run_id[:8]}: {cfg.selection.selector}, ratio {cfg.selection.ratio:g}, {about}"


def log_plots(tracker, history: list[dict], title: str = "", class_names: list[str] | None = None) -> None:
    """The run's figures, logged to its MLflow run under plots/ (`tracker`: tracking.Tracker)."""
    if not history:
        return
    if any(has_metric(h) for h in history):  # no val_metric logged: no empty frame either
        tracker.log_figure(metric_vs_cost(history, title), "metric_vs_cost.png")
    tracker.log_figure(weight_histograms(history, title), "weights.png")
    tracker.log_figure(adaptive_weight(history, title), "adaptive_weight.png")
    tracker.log_figure(class_selection(history, title, class_names), "class_selection.png")
    if any("agent_policy_loss" in h for h in history):
        tracker.log_figure(agent_losses(history, title), "agent_losses.png")
