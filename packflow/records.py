"""The records contract: what flows into and out of a pipeline.

Besides the ``Records`` alias, this module turns records into attrs instances and back,
for stages annotated with a list of attrs classes (``def execute(rows: list[Row])``).
Conversion goes through the package's one cattrs converter (:mod:`packflow.converter`).

Extra keys are an error: a record with a key its attrs class does not declare is
rejected with the key named, because silently dropping a field is data loss. Select the
fields the class needs with ``feature_names`` (or add the field to the class). Values are
converted the way cattrs does it (``"3"`` structures into an ``int`` field as ``3``).
"""

from __future__ import annotations

import collections.abc as cabc
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
from typing_extensions import TypeAliasType

from packflow._lazy import LazyModule
from packflow.converter import converter
from packflow.exceptions import PreprocessorRuntimeError

if TYPE_CHECKING:
    import cattrs
    import cattrs.errors as cattrs_errors
else:  # cattrs is imported by the first structuring or error, not by `import packflow`
    cattrs = LazyModule("cattrs", globals(), "cattrs")
    cattrs_errors = LazyModule("cattrs.errors", globals(), "cattrs_errors")

__all__ = ["Records", "attrs_record_type", "structure_records", "unstructure_records"]

#: A batch of events: what the ``records`` and ``passthrough`` preprocessors hand to the
#: first stage, and what the last stage must return.
Records: TypeAlias = list[dict[str, Any]]

# Annotations that mean "a batch of C": a stage annotated with one of these receives a list.
_BATCH_ORIGINS = (
    list,
    cabc.Sequence,
    cabc.MutableSequence,
    cabc.Collection,
    cabc.Iterable,
)


def attrs_record_type(annotation: Any) -> Any:
    """The attrs class ``C`` when ``annotation`` is a batch of it, else ``None``.

    A batch is ``list[C]``, ``Sequence[C]``, ``MutableSequence[C]``, ``Collection[C]``
    or ``Iterable[C]`` (any spelling, ``Annotated`` and type aliases seen through). ``C``
    may be a generic attrs class with its arguments (``list[Box[int]]`` gives
    ``Box[int]``, which cattrs structures with ``int`` items).

    Examples
    --------
    >>> @attrs.frozen
    ... class Row:
    ...     x: int
    >>> attrs_record_type(list[Row]) is Row
    True
    >>> attrs_record_type(list[dict[str, int]]) is None
    True
    """
    annotation = _plain(annotation)
    if typing.get_origin(annotation) not in _BATCH_ORIGINS:
        return None
    args = typing.get_args(annotation)
    if len(args) != 1:
        return None
    element = _plain(args[0])
    cls = typing.get_origin(element) or element
    if isinstance(cls, type) and attrs.has(cls):
        return element
    return None


def _plain(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and (non-generic) alias names."""
    for _ in range(50):  # an alias chain cannot be longer; a cycle must not hang
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif isinstance(annotation, TypeAliasType) and not annotation.__type_params__:
            annotation = annotation.__value__
        else:
            break
    return annotation


def structure_records(records: Sequence[Any], cls: Any) -> list[Any]:
    """Structure each record into an instance of the attrs class ``cls``.

    Parameters
    ----------
    records
        The batch, one ``dict`` per event.
    cls
        The attrs class each record becomes (a generic one with its arguments, too).

    Returns
    -------
    list
        One ``cls`` instance per record, in order.

    Raises
    ------
    PreprocessorRuntimeError
        When a record does not fit ``cls``; ``index`` is the record's position and
        ``field`` the (dotted) field that failed: a missing field, a value of the wrong
        type, or a key ``cls`` does not declare.
    """
    out: list[Any] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise PreprocessorRuntimeError(
                f"record {index}: expected a dict to structure into {_show_type(cls)}, "
                f"got {type(record).__name__}",
                index=index,
            )
        try:
            out.append(converter.structure(record, cls))
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
            field, reason = _first_failure(exc, record)
            where = f", field {field!r}" if field else ""
            raise PreprocessorRuntimeError(
                f"record {index}{where}: does not fit {_show_type(cls)}: {reason}",
                index=index,
                field=field,
            ) from exc
    return out


def unstructure_records(items: Iterable[Any]) -> Records:
    """Turn attrs instances (as returned by a last stage) into plain dicts.

    Items that are already dicts pass through as they are.

    Examples
    --------
    >>> @attrs.frozen
    ... class Score:
    ...     value: float
    >>> unstructure_records([Score(0.5)])
    [{'value': 0.5}]
    """
    return [item if isinstance(item, dict) else converter.unstructure(item) for item in items]


def _first_failure(exc: BaseException, record: Any) -> tuple[str | None, str]:
    """The dotted path of the first field that failed in ``exc`` and why."""
    path: list[str] = []
    expected: Any = _MISSING
    while True:
        if (
            isinstance(
                exc, cattrs_errors.ClassValidationError | cattrs_errors.IterableValidationError
            )
            and exc.exceptions
        ):
            sub = exc.exceptions[0]
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, cattrs_errors.AttributeValidationNote):
                    path.append(note.name)
                    expected = note.type
                    break
                if isinstance(note, cattrs_errors.IterableValidationNote):
                    path.append(f"[{note.index}]")
                    expected = note.type
                    break
            exc = sub
            continue
        break
    if isinstance(exc, cattrs_errors.ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        names = ", ".join(repr(name) for name in extra)
        path.append(extra[0])
        declared = ", ".join(f.name for f in attrs.fields(exc.cl))
        reason = (
            f"unexpected key{'s' if len(extra) != 1 else ''} {names} "
            f"({exc.cl.__name__} declares {declared}; select fields with feature_names)"
        )
        return _join(path), reason
    if isinstance(exc, KeyError):
        return _join(path), "required field is missing"
    value = _lookup(record, path)
    parts = []
    if expected is not _MISSING:
        parts.append(f"expected {_show_type(expected)}")
    if value is not _MISSING:
        parts.append(f"got {type(value).__name__} {value!r}")
    summary = ", ".join(parts) or "invalid value"
    detail = str(exc)
    return _join(path), summary if detail == summary else f"{summary} ({detail})"


_MISSING = object()


def _lookup(record: Any, path: list[str]) -> Any:
    value = record
    for part in path:
        try:
            if part.startswith("[") and part.endswith("]"):
                value = value[int(part[1:-1])]
            else:
                value = value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return value


def _join(path: list[str]) -> str | None:
    if not path:
        return None
    return ".".join(path).replace(".[", "[")


def _show_type(tp: Any) -> str:
    # Only error messages need the type model; importing it here keeps it out of
    # `import packflow`.
    from packflow.typecheck import format_type

    return format_type(tp)
