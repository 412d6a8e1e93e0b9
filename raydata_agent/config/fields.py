"""The base of every config section, and the value types a YAML file can spell.

Types are strict where YAML is unambiguous (an int is never read from 2.0 or "2", a bool never from
1), so a wrong type is named rather than silently converted. A float still reads "1e-3": YAML 1.1
parses an exponent without a dot as a string.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic_core import PydanticCustomError

from raydata_agent.config.errors import one_line


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_no_bool)]


class Section(BaseModel):
    """A config section: unknown keys refused, assignments checked, errors one line."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)
    dotted: ClassVar[str] = ""  # where the section sits in a run config, for error messages

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise one_line(err, type(self), self.dotted) from None

    # Only for a section built by hand: nested in a Config, pydantic validates it without this
    # __init__, so Config's own error (with its hint at the right section) is the one raised.
    __init__.__pydantic_base_init__ = True

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise one_line(err, type(self), self.dotted) from None

    @classmethod
    def build(cls, raw: Any):
        """model_validate with a one-line ConfigError instead of pydantic's report."""
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise one_line(err, cls, cls.dotted) from None
