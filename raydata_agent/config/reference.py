"""The config reference, rendered from the schema, so the docs cannot fall behind the code.

    python -m raydata_agent.config.reference > docs/reference/config.md

tests/config/test_config.py fails when the committed page differs from render().
"""
from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from raydata_agent.config.agent import AGENT_PRESETS
from raydata_agent.config.errors import bounds, choices, type_name
from raydata_agent.config.schema import Config
from raydata_agent.config.sweep import SweepConfig

COMMAND = "python -m raydata_agent.config.reference > docs/reference/config.md"


def render() -> str:
    """The whole page: how a config is written, then one table per section and per selector's knobs."""
    lines = [
        f"<!-- Generated from the schema (raydata_agent/config/) by `{COMMAND}`; do not edit by hand. -->",
        "# Config reference",
        "",
        "A run's config is a YAML file of sections, plus `section.key=value` overrides on the command line",
        "(`selection.<selector>.key=value` for a selector's own knobs). Every key is checked before Ray starts;",
        "an unknown key or a bad value is a one-line error that names the key and what is allowed.",
        "",
        "```yaml",
        "selection:",
        "  selector: lead",
        "  ratio: 0.3",
        "  lead:",
        "    gamma: 0.1",
        "```",
        "",
    ]
    for name, field in Config.model_fields.items():
        lines += _section(name, field.annotation, field.description)
    lines += _section("sweep", SweepConfig, "A `raydata-agent tune` file's own section: the grid of trials and how "
                      "the sweep runs ([Sweeps](../guides/sweeps.md)). A run config has none.")
    lines += ["## Agent presets", "",
              "`agent.preset` fills each of these keys that a config leaves unset.", "",
              "| key | " + " | ".join(AGENT_PRESETS) + " |", "|---|" + "---|" * len(AGENT_PRESETS)]
    for key in next(iter(AGENT_PRESETS.values())):
        lines.append(f"| `agent.{key}` | " + " | ".join(_default(p[key]) for p in AGENT_PRESETS.values()) + " |")
    return "\n".join(lines) + "\n"


def _section(dotted: str, model: type[BaseModel], description: str | None) -> list[str]:
    lines = [f"## `{dotted}`", "", _cell(description or ""), "",
             "| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    nested = []
    for key, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested.append((f"{dotted}.{key}", field.annotation, field.description))
            continue
        lines.append(f"| `{dotted}.{key}` | {_type(field.annotation)} | {_default(field.get_default(call_default_factory=True))} | "
                     f"{_allowed(field)} | {_cell(field.description or '')} |")
    lines.append("")
    for args in nested:
        lines += _section(*args)
    return lines


def _type(annotation) -> str:
    if typing.get_origin(annotation) is dict:
        return "mapping"
    values = choices(annotation)
    if values:
        base = type(values[0]).__name__
        return f"{base} \\| None" if type(None) in typing.get_args(annotation) else base
    return type_name(annotation).replace("|", "\\|")


def _default(value) -> str:
    """As YAML writes it: `true`, `0.5`, `infobatch`; None is a key left unset."""
    if value is None:
        return "unset"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _allowed(field) -> str:
    values = choices(field.annotation)
    if values:
        return ", ".join(f"`{v}`" for v in values)
    lo, lo_open, hi, hi_open = bounds(field)
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ""


def _cell(text: str) -> str:
    """Markdown-safe table text: outside `code`, | * < are escaped; inside, only |."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p.replace("|", "\\|") if p.startswith("`") else
                   p.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("<", "&lt;")
                   for p in parts)


if __name__ == "__main__":
    print(render(), end="")
