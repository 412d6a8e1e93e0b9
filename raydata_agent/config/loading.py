"""Building a Config: YAML file, then `key=value` overrides, then one builder (from_dict).

Every value is checked before Ray starts, so a typo costs a second, not a cluster start-up.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from raydata_agent.config.errors import ConfigError
from raydata_agent.config.names import DATA_ON_DISK, DATASETS, MODELS
from raydata_agent.config.paths import is_uri, resolve_paths
from raydata_agent.config.schema import Config
from raydata_agent.config.sections import TaskConfig

_SECTIONS = "(task, data, selection, ...)"


def _task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill task.model and data.name with the task's first registered names when a config leaves them
    unset, so `task.name=segmentation` alone means UperNet on the synthetic set."""
    task = raw.get("task") or {}
    name = task.get("name", TaskConfig.model_fields["name"].default) if isinstance(task, dict) else None
    if not isinstance(name, str) or name not in MODELS:
        return raw  # the schema names the bad task (or section)
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key, table in (("task", "model", MODELS), ("data", "name", DATASETS)):
        values = raw.get(section)
        if values is None:
            values = raw[section] = {}
        if isinstance(values, dict) and key not in values:
            values[key] = table[name][0]
    return raw


def from_dict(raw: dict[str, Any] | None) -> Config:
    """The one builder: a nested dict (a YAML file's, or Config.to_dict()'s) to a checked Config, with
    the task's default model and data set and the agent preset's values filled in. Unknown sections
    and keys are named; the file system is not looked at (see validate)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections {_SECTIONS}")
    return Config.build(_task_defaults(raw))


def validate(cfg: Config) -> Config:
    """Every rule again (the config may have been changed since it was built), and the paths: a data
    set or checkpoint on this machine must be there."""
    cfg = Config.build(cfg.model_dump())
    if cfg.data.name in DATA_ON_DISK:
        if not cfg.data.path:
            raise ConfigError(f"data.path is required for data.name={cfg.data.name}")
        if not Path(cfg.data.path).expanduser().is_dir():
            raise ConfigError(f"data.path={cfg.data.path!r} is not a directory")
    if cfg.data.name == "yolo":
        if not cfg.data.path:
            raise ConfigError("data.path is required for data.name=yolo: the ultralytics data set YAML")
        if not Path(cfg.data.path).expanduser().is_file():
            raise ConfigError(f"data.path={cfg.data.path!r} is not a file (expected a data set YAML)")
    if cfg.train.resume_from and not is_uri(cfg.train.resume_from) and not Path(cfg.train.resume_from).is_dir():
        raise ConfigError(f"train.resume_from={cfg.train.resume_from!r} is not a directory")
    return cfg


def apply_overrides(raw: dict[str, Any] | None, overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `section.key=value` (or `selection.<selector>.key=value`) overrides to a copy of `raw`;
    values are parsed as YAML scalars."""
    values = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(text) if text != "" else None
    return apply_dotted(raw, values)


def apply_dotted(raw: dict[str, Any] | None, values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with each dotted key (`selection.ratio`, `selection.lead.gamma`) set to its value:
    what overrides, sweep grids and keyword arguments (session.build_config) write into a config."""
    raw = {k: _copy(v) for k, v in (raw or {}).items()}
    for key, value in values.items():
        parts = key.split(".")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"override key {key!r} must be section.key, e.g. selection.ratio "
                              f"(or selection.<selector>.key, e.g. selection.lead.gamma)")
        node = raw
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                where = ".".join(parts[:depth + 1])
                raise ConfigError(f"config section {where!r} must be a mapping of its keys, "
                                  f"got {type(node[part]).__name__} {node[part]!r}")
            node = node[part]
        node[parts[-1]] = value
    return raw


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value


def load_dict(raw: dict[str, Any] | None, overrides: Iterable[str] = ()) -> Config:
    """A run's config from a dict plus overrides: built, checked, its paths made absolute (here, in
    the driver). What load_config does after reading the file, and what a sweep's trials use."""
    return resolve_paths(validate(from_dict(apply_overrides(raw, overrides))))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """A run's config from a YAML file (None: the defaults) and `section.key=value` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                              f"{' '.join(str(err).split())}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from err
        if raw is None:  # an empty file: the defaults
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections {_SECTIONS}, "
                              f"got {type(raw).__name__} {str(raw)[:60]!r}")
    return load_dict(raw, overrides or [])
