"""The run config: one model per section, and the rules that tie keys of different sections.

Rules that read the file system (does data.path exist?) are not here but in loading.validate: a
worker on another node rebuilds the config from its dict, where the driver's paths need not exist.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from raydata_agent.config.agent import AgentConfig
from raydata_agent.config.errors import ConfigError, did_you_mean
from raydata_agent.config.fields import Section
from raydata_agent.config.names import DATASETS, HISTORY_VARIANTS, IGNORE_INDEX, MODELS, RESNET_DEPTHS
from raydata_agent.config.params import run_params as params_of
from raydata_agent.config.paths import is_uri
from raydata_agent.config.sections import (DataConfig, RayConfig, RewardConfig, TaskConfig, TrackingConfig,
                                           TrainConfig)
from raydata_agent.config.selection import SelectionConfig


class Config(Section):
    task: TaskConfig = Field(default_factory=TaskConfig, description="what is trained")
    data: DataConfig = Field(default_factory=DataConfig, description="the training pool and validation set")
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="which samples each epoch")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="the per-sample score")
    agent: AgentConfig = Field(default_factory=AgentConfig, description="the Data Agent (selector=data_agent)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the model's training")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow")
    ray: RayConfig = Field(default_factory=RayConfig, description="the cluster and its storage")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """`train:` with nothing under it (None) is the section's defaults."""
        if isinstance(data, dict):
            return {k: ({} if v is None and k in cls.model_fields else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _cross_key_rules(self) -> Config:
        check_cross_keys(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def flat(self) -> dict[str, Any]:
        """`section.key -> value` (`selection.lead.gamma` for a selector's knob), the form MLflow params
        and overrides use."""
        def walk(prefix: str, values: dict) -> dict[str, Any]:
            out = {}
            for k, v in values.items():
                out.update(walk(f"{prefix}{k}.", v) if isinstance(v, dict) else {f"{prefix}{k}": v})
            return out
        return walk("", self.to_dict())

    def run_params(self) -> dict[str, Any]:
        """The flat keys this run's task, data set and selector read, and any key set away from its
        default: MLflow's params for the run (config/params.py)."""
        return params_of(self, Config().flat())

    def run_name(self) -> str:
        """`data_agent r0.5 s0`: what tells runs apart in MLflow's table (the default when
        tracking.run_name is unset)."""
        return f"{self.selection.selector} r{self.selection.ratio:g} s{self.train.seed}"

    @property
    def tracking_uri(self) -> str:
        """tracking.uri, else a SQLite store in the working dir; a Ray job's working dir is a temporary copy
        that Ray deletes, so a job's store goes beside its (local) ray.storage_path instead."""
        if self.tracking.uri:
            return self.tracking.uri
        in_ray_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ  # set by Ray's job supervisor
        folder = Path(self.ray.storage_path).expanduser().resolve() if in_ray_job and not is_uri(
            self.ray.storage_path) else Path.cwd()
        return f"sqlite:///{folder / 'mlflow.db'}"


def _check_choice(key: str, value: Any, allowed: tuple, hint: bool = True) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed{did_you_mean(value, allowed) if hint else ''}; "
                          f"choose one of: {', '.join(map(str, allowed))}")


def check_cross_keys(cfg: Config) -> None:
    """Rules that one key's type cannot say: a value allowed only with another key's value."""
    _check_choice("task.model", cfg.task.model, MODELS[cfg.task.name])
    _check_choice("data.name", cfg.data.name, DATASETS[cfg.task.name])
    if cfg.data.imbalance > 1 and cfg.data.name not in ("shapes", "textures"):
        raise ConfigError(f"data.imbalance={cfg.data.imbalance} draws a long-tailed generated set: "
                          f"data.name must be shapes or textures (got {cfg.data.name})")
    generated = ("synthetic_det", "synthetic_seg")
    if cfg.data.label_noise > 0 and cfg.task.name != "classification" and cfg.data.name not in generated:
        raise ConfigError(f"data.label_noise corrupts a generated set's annotations (synthetic_det, synthetic_seg); "
                          f"{cfg.data.name} is read as it is")
    if cfg.data.duplicates > 0 and cfg.data.name not in generated:
        raise ConfigError(f"data.duplicates adds near-copies to a generated set: data.name must be synthetic_det or "
                          f"synthetic_seg (got {cfg.data.name})")
    if cfg.data.pipeline == "ray_data" and cfg.task.name != "classification":
        raise ConfigError(f"data.pipeline=ray_data streams classification sets; task.name={cfg.task.name} "
                          f"keeps its own data path (data.pipeline=in_memory)")
    agent = cfg.agent
    if agent.baseline == "self_critical" and agent.gamma != 0.0:
        raise ConfigError(f"agent.baseline=self_critical needs agent.gamma=0 (got {agent.gamma}): "
                          "it prices one visit's action, not a return over visits")
    if agent.learner == "regression" and agent.payoff != "rank":
        raise ConfigError(f"agent.learner=regression fits the rank payoff's target percentile; it needs "
                          f"agent.payoff=rank (got {agent.payoff})")
    if cfg.selection.selector == "data_agent" and cfg.reward.variant in HISTORY_VARIANTS:
        raise ConfigError(f"reward.variant={cfg.reward.variant} needs the pool's history, but the Data Agent's "
                          f"workers score each batch themselves: choose a batch variant for selection.selector=data_agent")
    if agent.max_concentration and agent.max_concentration <= 2.0:
        raise ConfigError(f"agent.max_concentration={agent.max_concentration!r} must be 0 (unbounded) or > 2")
    if cfg.task.name == "segmentation":
        _check_segmentation(cfg)


def _check_segmentation(cfg: Config) -> None:
    _check_choice("task.depth", cfg.task.depth, RESNET_DEPTHS, hint=False)
    if cfg.task.head_channels < 1:
        raise ConfigError(f"task.head_channels={cfg.task.head_channels!r} must be at least 1")
    if cfg.task.aux_weight < 0:
        raise ConfigError(f"task.aux_weight={cfg.task.aux_weight!r} must be >= 0")
    if cfg.data.num_classes is not None:
        if cfg.data.name != "ade20k":
            raise ConfigError(f"data.num_classes applies to data.name=ade20k only; {cfg.data.name} "
                              f"has a fixed number of classes")
        if not 2 <= cfg.data.num_classes <= IGNORE_INDEX - 1:
            raise ConfigError(f"data.num_classes={cfg.data.num_classes!r} is out of range; "
                              f"allowed: [2, {IGNORE_INDEX - 1}]")
