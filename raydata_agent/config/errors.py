"""One-line config errors: pydantic's ValidationError said the way a person fixes it.

Every message names the dotted key and what is allowed, so a typo costs a second, not a cluster
start-up. pydantic reports every problem at once; the first one (unknown keys first) is enough.
"""
from __future__ import annotations

import difflib
import typing
from typing import Any, Iterable

import annotated_types
from pydantic import BaseModel, ValidationError

# Keys that moved into their selector's own model (issue 27): an old config names its new key.
RENAMED = {"selection.ucb_c": "selection.ucb.c", "selection.epsilon": "selection.eps_greedy.epsilon",
           "selection.infobatch_max_prune": "selection.infobatch.max_prune",
           "selection.lead_clusters": "selection.lead.clusters", "selection.lead_gamma": "selection.lead.gamma"}


class ConfigError(ValueError):
    """A bad key or value in a run configuration."""


def did_you_mean(word: Any, candidates: Iterable[Any], prefix: str = "") -> str:
    """" (did you mean `x`?)" for the closest candidate a letter or two away, as argparse and git say."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean `{prefix}{close[0]}`?)" if close else ""


def one_line(err: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigError:
    """The first of pydantic's errors as a ConfigError; `model` is what was validated, `prefix` its
    dotted place in the run config ("" for the whole config, "selection" for SelectionConfig)."""
    errors = sorted(err.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # a cross-key rule raised it whole
        return cause
    loc = [str(part) for part in error["loc"]]
    key = ".".join([p for p in (prefix, *loc) if p])
    value = error["input"]
    owner, field = _field_at(model, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return ConfigError(_unknown(model, owner, prefix, loc))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return ConfigError(f"config section {key!r} must be a mapping of its keys, "
                           f"got {type(value).__name__} {value!r}")
    if kind == "literal_error":
        allowed = choices(field.annotation)
        return ConfigError(f"{key}={value!r} is not allowed{did_you_mean(value, allowed)}; "
                           f"choose one of: {', '.join(map(str, allowed))}")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return ConfigError(f"{key}={_as_field_type(value, field)!r} {bounds_text(field)}")
    if value is None and field is not None:
        return ConfigError(f"{key} may not be null")
    if kind.endswith(("_type", "_parsing", "_from_float")) and field is not None:
        return ConfigError(f"{key}={value!r} has the wrong type; expected {type_name(field.annotation)}")
    return ConfigError(f"{key}={value!r}: {error['msg']}")


def bounds(field) -> tuple[Any, bool, Any, bool]:
    """(low, low open?, high, high open?) of a field's Field(gt=, ge=, lt=, le=); None where unbounded."""
    lo = hi = None
    lo_open = hi_open = False
    for m in field.metadata:
        if isinstance(m, annotated_types.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Lt):
            hi, hi_open = m.lt, True
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return lo, lo_open, hi, hi_open


def bounds_text(field) -> str:
    """"is out of range; allowed: (0.0, 1.0]", "must be at least 1", "must be >= 0" or "must be > 0"."""
    lo, lo_open, hi, hi_open = bounds(field)
    if lo is not None and hi is not None:
        return f"is out of range; allowed: {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"must be > {lo:g}" if lo_open else (f"must be at least {lo:g}" if lo == 1 else f"must be >= {lo:g}")
    return f"must be < {hi:g}" if hi_open else f"must be <= {hi:g}"


def type_name(annotation: Any) -> str:
    """`int`, `float | None`, `a | b` (a Literal's choices): what the reference and the errors show."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(map(str, args))
    if args:  # X | None
        return " | ".join(type_name(a) for a in args)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def choices(annotation: Any) -> tuple:
    """A Literal's values (also inside `X | None`); () for any other type."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return next((choices(a) for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal), ())


def _as_field_type(value: Any, field) -> Any:
    """0 in a float field reads 0.0, as the value the run would have used."""
    return float(value) if type_name(field.annotation) in ("float", "float | None") and isinstance(
        value, (int, float)) else value


def _field_at(model: type[BaseModel], loc: list[str]):
    """(the model that holds loc's last key, that key's FieldInfo or None)."""
    owner = model
    for part in loc[:-1]:
        field = owner.model_fields.get(part)
        if field is None or not _is_model(field.annotation):
            return owner, None
        owner = field.annotation
    return owner, owner.model_fields.get(loc[-1]) if loc else None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unknown(model: type[BaseModel], owner: type[BaseModel], prefix: str, loc: list[str]) -> str:
    name = loc[-1]
    parent = ".".join([p for p in (prefix, *loc[:-1]) if p])
    dotted = f"{parent}.{name}" if parent else name
    allowed = list(owner.model_fields)
    if dotted in RENAMED:
        return f"config key {dotted} is now {RENAMED[dotted]} (each selector's knobs have their own section)"
    if not parent:  # the top level of the whole config: a section name
        return (f"unknown config section {name!r}{other_section(model, name) or did_you_mean(name, allowed)}; "
                f"allowed: {', '.join(allowed)}")
    hint = did_you_mean(name, allowed, prefix=f"{parent}.")
    if not hint and owner is not model and len(loc) == 2:
        hint = other_section(model, name, loc[0])
    return f"unknown config key {dotted}{hint}; allowed keys of {parent}: {', '.join(allowed)}"


def other_section(model: type[BaseModel], key: str, section: str | None = None) -> str:
    """A key written at the top level or under the wrong section: point at the section that has it."""
    owners = [f"{name}.{key}" for name, field in model.model_fields.items() if name != section
              and _is_model(field.annotation) and key in field.annotation.model_fields]
    return f" (did you mean `{owners[0]}`?)" if owners else ""
