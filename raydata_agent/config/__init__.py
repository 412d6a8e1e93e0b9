"""Run configuration: pydantic models loaded from YAML plus `key=value` overrides.

The face of the package: every name other modules use is here. The schema is one model per section
(schema.py, sections.py, selection.py, agent.py); loading.py builds it; docs/reference/config.md is
generated from it (reference.py).
"""
from raydata_agent.config.agent import AGENT_PRESETS, AgentConfig
from raydata_agent.config.errors import RENAMED, ConfigError, did_you_mean
from raydata_agent.config.fields import Section
from raydata_agent.config.loading import (_task_defaults, apply_dotted, apply_overrides, from_dict, load_config,
                                          load_dict, validate)
from raydata_agent.config.names import (DATASETS, HISTORY_VARIANTS, IGNORE_INDEX, MODELS, RESNET_DEPTHS,
                                        REWARD_VARIANTS, STANDARD_RECIPE, TASKS)
from raydata_agent.config.paths import generated_data_folder, is_uri, resolve_paths
from raydata_agent.config.schema import Config
from raydata_agent.config.sections import DataConfig, RayConfig, RewardConfig, TaskConfig, TrackingConfig, TrainConfig
from raydata_agent.config.selection import (SELECTOR_KNOBS, SELECTOR_NAMES, EpsGreedyConfig, InfoBatchConfig,
                                            LeadConfig, SelectionConfig, UCBConfig)

__all__ = [
    "AGENT_PRESETS", "DATASETS", "HISTORY_VARIANTS", "IGNORE_INDEX", "MODELS", "RENAMED", "RESNET_DEPTHS",
    "REWARD_VARIANTS", "SELECTOR_KNOBS", "SELECTOR_NAMES", "STANDARD_RECIPE", "TASKS",
    "AgentConfig", "Config", "ConfigError", "DataConfig", "EpsGreedyConfig", "InfoBatchConfig", "LeadConfig",
    "RayConfig", "RewardConfig", "Section", "SelectionConfig", "TaskConfig", "TrackingConfig", "TrainConfig",
    "UCBConfig", "_task_defaults", "apply_dotted", "apply_overrides", "did_you_mean", "from_dict",
    "generated_data_folder", "is_uri", "load_config", "load_dict", "resolve_paths", "validate",
]
