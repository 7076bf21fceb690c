"""Backend configuration: the ``BackendConfig`` model and its resolution."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs

from packflow.converter import converter
from packflow.exceptions import ConfigError

__all__ = ["BackendConfig", "InputFormat", "resolve_config"]


class InputFormat(str, enum.Enum):
    """How records are preprocessed before the first stage."""

    PASSTHROUGH = "passthrough"
    RECORDS = "records"
    NUMPY = "numpy"

    def __str__(self) -> str:
        return self.value


def _to_input_format(value: Any) -> InputFormat:
    if isinstance(value, InputFormat):
        return value
    try:
        return InputFormat(value)
    except ValueError:
        choices = ", ".join(repr(f.value) for f in InputFormat)
        raise ValueError(f"{value!r} is not an input format; choose one of {choices}") from None


@attrs.frozen(kw_only=True)
class BackendConfig:
    """The settings every pipeline has; subclass it (with attrs) to add your own."""

    verbose: bool = False
    input_format: InputFormat = attrs.field(
        default=InputFormat.RECORDS, converter=_to_input_format
    )
    rename_fields: dict[str, str] = attrs.field(factory=dict)
    feature_names: list[str] = attrs.field(factory=list)
    flatten_nested_inputs: bool = False
    flatten_lists: bool = False
    nested_field_delimiter: str = "."
    ignore_delimiter_collisions: bool = False
    numpy_dtype: str | None = None


converter.register_structure_hook(InputFormat, lambda value, _: _to_input_format(value))

C = TypeVar("C", bound=BackendConfig)


def resolve_config(model: type[C], overrides: Mapping[str, Any]) -> C:
    """Structure ``overrides`` over the defaults of ``model``.

    Raises
    ------
    ConfigError
        When a key is unknown or a value has the wrong type.
    """
    try:
        return converter.structure(dict(overrides), model)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise ConfigError(f"invalid config for {model.__name__}: {exc}") from exc
