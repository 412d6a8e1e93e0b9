"""Ray's own console lines that say nothing is wrong with a run, kept off the driver's console.

A successful run should print no error-level line and no traceback: users read both as faults. Where
the cause is ours, it is fixed where it arises; this module holds only known lines whose cause is in
Ray, each with why. Nothing else Ray prints is touched.
"""
from __future__ import annotations

import re

KNOWN_RAY_LINES = [
    # Ray 2.60.0: the Ray Train controller starts a PreemptionWatcher actor for every worker group
    # (ray/train/v2/_internal/callbacks/preemption_callback.py) with max_restarts=-1 and the workers'
    # actor handles as constructor arguments; Ray core (core_worker.cc) then logs at error level that
    # a restart could not recover those arguments. The line points to ray-project/ray#53727 (actor
    # restarts lose constructor arguments held in the object store); the watcher came with
    # ray-project/ray#63807, whose review asked whether it should start where nodes never drain.
    # It means nothing for our run: the watcher only observes node drains. A local cluster we start
    # runs without it (local_cluster.LOCAL_TRAIN_ENV); this line is for joined clusters.
    re.compile(r"Actor with class name: 'PreemptionWatcher' .*has constructor arguments in the object store"),
]

# Tracebacks logged as warnings, from their first line to their last (all in one batch of lines).
KNOWN_RAY_TRACEBACKS = [
    # Ray 2.60.0: at start, the Ray Train controller registers its workers' resources with Ray Data's
    # AutoscalingCoordinator, a detached actor it creates on first use, and waits 5 s for the answer
    # (AUTOSCALING_REQUESTS_GET_TIMEOUT_S in ray/train/v2/_internal/execution/scaling_policy/
    # autoscaling_coordinator_client.py). When that actor's process starts slower (a busy host, a job's
    # first run on a fresh cluster), the wait times out and the warning carries the whole GetTimeoutError
    # traceback; the request is sent again every 20 s and the run is unaffected. Ray Data's own client
    # of that actor was made non-blocking for this reason in ray-project/ray#62725; Train's still blocks.
    (re.compile(r"Failed to send resource request for train-"),
     re.compile(r"ray\.exceptions\.GetTimeoutError: ")),
]
_TRACEBACK_LINES = 60  # a known traceback ends within this many lines of its first

_HANDLER = "ray_print_logs"  # the name ray.init gives the handler that prints workers' lines on the driver


def without_known_lines(lines: list[str]) -> list[str]:
    """`lines` minus KNOWN_RAY_LINES and each complete KNOWN_RAY_TRACEBACKS block."""
    kept, i = [], 0
    while i < len(lines):
        if any(pattern.search(lines[i]) for pattern in KNOWN_RAY_LINES):
            i += 1
            continue
        end = next((j for first, last in KNOWN_RAY_TRACEBACKS if first.search(lines[i])
                    for j in range(i + 1, min(i + _TRACEBACK_LINES, len(lines)))
                    if last.search(lines[j])), None)
        if end is not None:
            i = end + 1
            continue
        kept.append(lines[i])
        i += 1
    return kept


class _WithoutKnownLines:
    """Ray's driver-side printer of worker log batches, minus the known lines and tracebacks."""

    def __init__(self, print_batch):
        self.print_batch = print_batch

    def __call__(self, batch: dict) -> None:
        lines = without_known_lines(batch.get("lines", []))
        if lines:
            self.print_batch({**batch, "lines": lines})


def hide_known_ray_lines() -> None:
    """Wrap the printer that ray.init registers in this driver (each init registers a new one, so call
    this after each ray.init; calling it twice is harmless). Without ray.init's log printing: no-op."""
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    with dispatcher._lock:  # swapped in one step: no batch goes unprinted meanwhile
        dispatcher.handlers = [(name, _WithoutKnownLines(handler) if name == _HANDLER
                                and not isinstance(handler, _WithoutKnownLines) else handler)
                               for name, handler in dispatcher.handlers]
