"""The package's one cattrs converter.

Configs and attrs records are structured and unstructured through this converter, so
that a hook registered once (e.g. for ``InputFormat``) applies everywhere. Its scalar and
container hooks never coerce: ``"false"`` does not become ``True``, ``"3"`` does not
become ``3`` and ``"abc"`` is not split into a list. Data that does not fit is an error,
never a silent conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import cattrs

__all__ = ["converter", "on_first_use"]


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
    from cattrs.cols import list_structure_factory

    inner = list_structure_factory(tp, conv)

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {_describe(value)}")
        return inner(value, cl)

    return structure


def _checked_mapping(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    from cattrs.cols import mapping_structure_factory

    inner = mapping_structure_factory(tp, conv)

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping (JSON object), got {_describe(value)}")
        return inner(value, cl)

    return structure


def _checked_attrs(cl: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # cattrs' own hook indexes the value blindly, so an int where an attrs class is
    # expected fails with "argument of type 'int' is not iterable"; say what was wanted.
    from cattrs.gen import make_dict_structure_fn

    inner = make_dict_structure_fn(cl, conv)

    def structure(value: Any, cl_: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(
                f"expected a mapping (JSON object) for {cl.__name__}, got {_describe(value)}"
            )
        return inner(value, cl_)

    return structure


#: Set-up steps of other modules (``config`` registers the ``InputFormat`` hook), run
#: when the converter is made.
_SETUP: list[Callable[[cattrs.Converter], None]] = []


def _make() -> cattrs.Converter:
    import cattrs
    from cattrs.cols import is_mapping, is_sequence

    made = cattrs.Converter(forbid_extra_keys=True)
    made.register_structure_hook(bool, _strict_bool)
    made.register_structure_hook(int, _strict_int)
    made.register_structure_hook(float, _strict_float)
    made.register_structure_hook(str, _strict_str)
    made.register_structure_hook_factory(is_sequence, _checked_sequence)
    made.register_structure_hook_factory(is_mapping, _checked_mapping)
    made.register_structure_hook_factory(attrs.has, _checked_attrs)
    for step in _SETUP:
        step(made)
    return made


_made: list[cattrs.Converter] = []


class _FirstUse:
    """The converter, made (and cattrs imported, a tenth of ``import packflow``) when it
    is first used. Each attribute read is kept on this object, so that later reads of
    ``converter.structure`` cost a plain attribute lookup."""

    def __getattr__(self, name: str) -> Any:
        if not _made:
            _made.append(_make())
        value = getattr(_made[0], name)
        setattr(self, name, value)
        return value


def on_first_use(step: Callable[[cattrs.Converter], None]) -> None:
    """Run ``step`` on the converter when it is made (now, if it already is)."""
    _SETUP.append(step)
    if _made:
        step(_made[0])


if TYPE_CHECKING:
    converter: cattrs.Converter
else:
    converter = _FirstUse()
