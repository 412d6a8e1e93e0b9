"""The errors a run raises to its caller: public names (`raydata_agent.RunFailed`, ...), below everything
that raises them, so the runner, the cluster helpers and the session share them without importing each other."""
from __future__ import annotations


class RunFailed(RuntimeError):
    """Training stopped with an error; what was computed before it is kept (see the message)."""


class RunInterrupted(RunFailed):
    """The driver was stopped (Ctrl-C, SIGTERM): the MLflow run is marked KILLED and `resume` continues it."""


class NonFiniteLossError(RuntimeError):
    """A sample's loss was NaN or inf; the message names the samples, epoch and step."""
