"""The ``passthrough`` format: the records are handed on untouched, at no cost."""

from __future__ import annotations

from typing import Any

from packflow.config import BackendConfig, InputFormat
from packflow.preprocess.plan import Format, Plan, only_numpy_takes_a_dtype
from packflow.records import Records

__all__ = ["PASSTHROUGH", "passthrough"]


def passthrough(records: Records) -> Records:
    """The preprocessor of every plan that changes nothing: the very same list."""
    return records


def _takes_no_options(config: BackendConfig) -> list[str]:
    given = [
        name
        for name, value in (
            ("rename_fields", config.rename_fields),
            ("feature_names", config.feature_names),
            ("flatten_nested_inputs", config.flatten_nested_inputs),
            ("flatten_lists", config.flatten_lists),
            ("numpy_dtype", config.numpy_dtype),
        )
        if value
    ]
    if not given:
        return []
    return [
        f"input_format='passthrough' hands records over untouched, so "
        f"{', '.join(given)} would be ignored; use input_format='records' or remove them"
    ]


def _build(plan: Plan, config: BackendConfig) -> Any:
    return passthrough


PASSTHROUGH = Format(
    input_format=InputFormat.PASSTHROUGH,
    build=_build,
    output_type=lambda config: Records,
    rules=(_takes_no_options, only_numpy_takes_a_dtype),
)
