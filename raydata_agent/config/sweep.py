"""The `sweep:` section of a `raydata-agent tune` file (raydata_agent/sweep.py runs it): a schema
beside the run config's, so the config reference documents it too."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from raydata_agent.config.fields import Bool, Float, Int, Section


class SweepConfig(Section):
    """The `sweep:` section, checked like the run config: unknown keys and wrong types named."""

    dotted = "sweep"
    grid: dict[str, Any] = Field(default_factory=dict, description="dotted config keys -> values; the trials "
                                                                   "are the product")
    full_baseline: Bool = Field(True, description="plus one selector=full run per seed, the reference line")
    metric: str = Field("val_metric", description="what ASHA and the summary rank by (higher is better)")
    asha: Bool = Field(False, description="early-stop weak trials on `metric`, at equal compute")
    grace_period: Float | None = Field(None, gt=0.0, description=(
        "ASHA: full-data epochs of compute before a trial can be stopped; None: train.epochs / 2"))
    max_concurrent_trials: Int | None = Field(None, description="None: as many as the cluster's CPUs/GPUs fit")
