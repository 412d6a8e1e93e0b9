"""What a run prints on the console, through the "raydata_agent" logger, in one place.

The per-epoch lines keep their look (`[raydata-agent] epoch 2/3  selected ...`): people and tests read
them. `console()` gives the logger a plain handler on stdout (the CLI, `run` and `start_session` call
it), so the lines print without any logging set up by the caller.
"""
from __future__ import annotations

import logging
import sys
import threading

LOGGER = "raydata_agent"
PREFIX = "[raydata-agent] "


class _Stdout(logging.StreamHandler):
    """`[raydata-agent] message` on sys.stdout as it is at each line (a caller, or pytest, may swap it
    between runs): no level or time, so the lines look as they always did."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter(PREFIX + "%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets one; ours is always sys.stdout
        pass


def console() -> logging.Logger:
    """The "raydata_agent" logger with our handler (added once; a caller's own handlers are kept)."""
    log = logging.getLogger(LOGGER)
    if not any(isinstance(h, _Stdout) for h in log.handlers):
        log.addHandler(_Stdout())
        log.setLevel(logging.INFO)
        log.propagate = False  # a root handler set up by the caller would print each line twice
    return log


def say(message: str) -> None:
    """One console line (a Ray Train worker's rank 0 sets the handler up on its first line)."""
    console().info(message)


def recipe_epoch_line(h: dict, total_epochs: int) -> str:
    """The runner's line per committed epoch."""
    return (f"epoch {h['epoch'] + 1}/{total_epochs}  selected {h['selected']}"
            f"  train_loss {h['train_loss']:.4f}  val {h['val_metric']:.4f}  w {h['adaptive_w']:.2f}"
            f"  cost {h['cost_fraction']:.2f}  {h['epoch_time_s']:.1f}s")


def own_loop_epoch_line(metrics: dict, epoch: int, total_epochs: int) -> str:
    """A session's line per closed epoch, for a loop the user owns (rank 0)."""
    kept, fraction = metrics["selected"], metrics["selected_fraction"]
    return (f"epoch {epoch + 1}/{total_epochs}  kept {kept}/{int(round(kept / max(fraction, 1e-12)))} "
            f"({fraction:.0%})  train_loss {metrics['train_loss']:.4f}  cost {metrics['cost_fraction']:.2f}")


def closing_lines(history: list[dict], uri: str, experiment_id: str, run_id: str) -> None:
    """What an own loop's session prints when it closes: the kept counts and where the MLflow run is."""
    from raydata_agent.plots import has_metric
    from raydata_agent.tracking import redact, ui_url

    say("kept per epoch: " + ", ".join(f"{h['selected']} ({h['selected_fraction']:.0%})" for h in history))
    if not any(has_metric(h) for h in history):
        say("no metric_vs_cost.png: pass session.end_epoch(val_metric=...)")
    uri = redact(uri)  # never a password on the console
    url = ui_url(uri, experiment_id, run_id)
    say(f"MLflow run {run_id} in {uri} ({url or f'mlflow ui --backend-store-uri {uri}'})")


def watch(store, total_epochs: int, done: threading.Event, out=None) -> None:
    """Print one line per finished epoch, and (on a terminal) a live count of samples trained in the current one.
    `out` defaults to sys.stdout as it is when the run starts (a caller may have redirected it). The live
    count is rewritten in place with "\\r", so it is written to the terminal directly, not logged."""
    import ray

    out = out or sys.stdout
    log = console()
    shown = 0
    live = out.isatty()
    while True:
        stopping = done.wait(2.0)  # after the run ends, one last poll prints the final epochs
        try:
            p = ray.get(store.progress.remote(shown), timeout=10)
        except Exception:  # the store is busy: progress is best effort
            if stopping:
                return
            continue
        if live and (p["new"] or p.get("resumed_from", 0) > shown):
            out.write("\r")  # the next line starts over the live count
        if p.get("resumed_from", 0) > shown:  # a resumed run: the run before printed the restored epochs
            log.info(f"resumed from epoch {p['resumed_from']}")
            p["new"], shown = p["new"][p["resumed_from"] - shown:], p["resumed_from"]
        for h in p["new"]:
            shown += 1
            log.info(recipe_epoch_line(h, total_epochs))
        if stopping:
            return
        if not p["new"] and p["planned"] and live:
            print(f"\r{PREFIX}epoch {shown + 1}/{total_epochs}  trained {p['passes']}/{p['planned']}",
                  end="", file=out, flush=True)
