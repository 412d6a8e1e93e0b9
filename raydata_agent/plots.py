"""The figures users look at, built from the per-epoch history a run keeps."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def metric_vs_cost(history: list[dict], metric: str = "val_metric"):
    """Validation metric against cumulative cost in full-data epochs: the trade-off users buy."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    cost = [h["cumulative_cost_epochs"] for h in history]
    ax.plot(cost, [h.get(metric, np.nan) for h in history], "o-", label="this run")
    ax.plot([h["epoch"] + 1 for h in history], [h.get(metric, np.nan) for h in history], ":",
            color="grey", label="this run against epochs (= full-data cost)")
    ax.set_xlabel("cumulative cost (full-data epochs of forward-backward passes)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def weight_histograms(history: list[dict]):
    """Heat strip of the selection-weight histogram per epoch, and the last epoch's histogram.

    The weight axis is zoomed to the bins in use: an agent's weights often sit in a narrow band.
    """
    hist = np.array([h["weight_hist"] for h in history], dtype=float)
    edges = np.linspace(0, 1, hist.shape[1] + 1)
    used = np.flatnonzero(hist.sum(0))
    lo, hi = edges[used.min()], edges[used.max() + 1]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    shares = hist / np.maximum(hist.sum(1, keepdims=True), 1)
    im = ax0.imshow(shares.T, origin="lower", aspect="auto", extent=(-0.5, len(hist) - 0.5, 0, 1), cmap="viridis")
    fig.colorbar(im, ax=ax0, label="share of pool")
    ax0.set_ylim(lo, hi)
    ax0.set_xlabel("epoch")
    ax0.set_ylabel("selection weight")
    ax0.set_title("weights per epoch")
    ax1.bar(edges[:-1], hist[-1], width=np.diff(edges), align="edge")
    ax1.set_xlim(lo, hi)
    ax1.set_xlabel("selection weight")
    ax1.set_ylabel("samples")
    ax1.set_title(f"epoch {history[-1]['epoch']}")
    return fig


def adaptive_weight(history: list[dict]):
    """w per epoch: near 1 while difficulty separates samples, drifting to uncertainty later."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([h["epoch"] for h in history], [h["adaptive_w"] for h in history], "o-")
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("adaptive weight w (difficulty share)")
    ax.grid(alpha=0.3)
    return fig


def class_selection(history: list[dict]):
    """Selected fraction of each class per epoch: shows whether selection starves a class."""
    frac = np.array([h["class_selected_fraction"] for h in history], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    im = ax.imshow(frac.T, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma")
    fig.colorbar(im, ax=ax, label="fraction selected")
    ax.set_xlabel("epoch")
    ax.set_ylabel("class")
    return fig


def agent_losses(history: list[dict]):
    """PPO policy and value losses per update."""
    rows = [h for h in history if "agent_policy_loss" in h]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if rows:
        ax.plot([h["epoch"] for h in rows], [h["agent_policy_loss"] for h in rows], "o-", label="policy loss")
        ax2 = ax.twinx()
        ax2.plot([h["epoch"] for h in rows], [h["agent_value_loss"] for h in rows], "s--", color="C1",
                 label="value loss")
        ax2.set_ylabel("value loss")
        ax2.legend(loc="upper right")
    ax.set_xlabel("epoch")
    ax.set_ylabel("policy loss")
    ax.legend(loc="upper left")
    return fig
