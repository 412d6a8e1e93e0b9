"""Calls to the learner that work alike on a Ray actor handle and on an in-process `DataAgent`.

Tests and benchmarks drive the learner in process; the run drives it as an actor. Acting and the
selector make the same calls either way, and an in-process call is answered at once (`Done`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Done:
    """The result of a call made in process: ready at once."""

    value: object


def call(target, method: str, *args):
    fn = getattr(target, method)
    return fn.remote(*args) if hasattr(fn, "remote") else Done(fn(*args))


def ready_split(refs: list) -> tuple[list, list]:
    """(answered, still waiting) among calls made with `call`, without blocking."""
    local = [r for r in refs if isinstance(r, Done)]
    remote = [r for r in refs if not isinstance(r, Done)]
    if not remote:
        return local, []
    import ray

    ready, waiting = ray.wait(remote, num_returns=len(remote), timeout=0)
    return local + ready, waiting


def fetch(ref):
    if isinstance(ref, Done):
        return ref.value
    import ray

    return ray.get(ref)
