"""The package's one cattrs converter.

Configs and attrs records are structured and unstructured through this converter, so
that a hook registered once (e.g. for ``InputFormat``) applies everywhere. Its scalar and
container hooks never coerce: ``"false"`` does not become ``True``, ``"3"`` does not
become ``3`` and ``"abc"`` is not split into a list. Data that does not fit is an error,
never a silent conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.cols import (
    is_mapping,
    is_sequence,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.gen import make_dict_structure_fn

__all__ = ["converter"]


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _strict_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected bool, got {_describe(value)}")


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected int, got {_describe(value)}")


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected float, got {_describe(value)}")


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected str, got {_describe(value)}")


def _checked_sequence(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = list_structure_factory(tp, conv)

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {_describe(value)}")
        return inner(value, cl)

    return structure


def _checked_mapping(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = mapping_structure_factory(tp, conv)

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping (JSON object), got {_describe(value)}")
        return inner(value, cl)

    return structure


def _checked_attrs(cl: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # cattrs' own hook indexes the value blindly, so an int where an attrs class is
    # expected fails with "argument of type 'int' is not iterable"; say what was wanted.
    inner = make_dict_structure_fn(cl, conv)

    def structure(value: Any, cl_: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(
                f"expected a mapping (JSON object) for {cl.__name__}, got {_describe(value)}"
            )
        return inner(value, cl_)

    return structure


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook_factory(is_sequence, _checked_sequence)
converter.register_structure_hook_factory(is_mapping, _checked_mapping)
converter.register_structure_hook_factory(attrs.has, _checked_attrs)
