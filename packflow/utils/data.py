"""Record helpers of the original Packflow (``packflow.utils.data``), on packflow's own readers.

Each helper reads and writes records exactly as the preprocessors do (the same flat-key
and nested-path readings, the same flattening), so that a helper and a config option
never disagree about what a name means. Where the original was silent about a problem,
these raise instead: writing through a value that is not a dict, or two key paths that
flatten to one key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from packflow._text import describe
from packflow.preprocess.plan import MISSING
from packflow.preprocess.reference import (
    flatten_record,
    read_flat_key,
    read_nested_path,
    write_nested_path,
)

__all__ = [
    "flatten_dict",
    "flatten_records",
    "get_nested_field",
    "get_nested_field_direct",
    "records_to_ndarray",
    "set_nested_field_direct",
]


def _require_dict(obj: Any, what: str) -> None:
    if not isinstance(obj, dict):
        raise TypeError(f"{what} takes a dict, got {describe(obj)}")


def get_nested_field(obj: dict[str, Any], field: str, delimiter: str | None = None) -> Any:
    """The value of ``field`` in ``obj``, read as a flat key; ``None`` when it is not there.

    A key equal to ``field`` is returned first; otherwise ``field`` is read the way
    ``feature_names`` reads it with ``flatten_nested_inputs=True``: keys joined with
    ``delimiter`` (default ``"."``), so keys that contain the delimiter are found too. A
    name that stops at a non-empty dict is not a flat key and gives ``None``.

    Raises
    ------
    TypeError
        When ``obj`` is not a dict.

    Examples
    --------
    >>> get_nested_field({"foo": {"bar": 5}}, "foo.bar")
    5
    >>> get_nested_field({"a:b": {"c": 1}}, "a:b:c", delimiter=":")
    1
    """
    _require_dict(obj, "get_nested_field")
    if field in obj:
        return obj[field]
    value = read_flat_key(obj, field, delimiter or ".")
    return None if value is MISSING else value


def get_nested_field_direct(obj: dict[str, Any], field: str, delimiter: str = ".") -> Any:
    """The value at the nested path ``field`` in ``obj`` (nested dicts only), or ``None``.

    A key equal to ``field`` is returned first; otherwise ``field`` is split on
    ``delimiter`` and walked through nested dicts, as ``feature_names`` does without
    flattening. Unlike :func:`get_nested_field`, a path may stop at a dict.

    Raises
    ------
    TypeError
        When ``obj`` is not a dict.
    """
    _require_dict(obj, "get_nested_field_direct")
    if field in obj:
        return obj[field]
    value = read_nested_path(obj, field, delimiter)
    return None if value is MISSING else value


def set_nested_field_direct(
    obj: dict[str, Any], field: str, value: Any, delimiter: str = "."
) -> None:
    """Set the nested path ``field`` of ``obj`` to ``value``, in place.

    Missing dicts on the way are created, as when ``rename_fields`` writes a nested
    target. A path through a value that is not a dict is an error: the original left
    ``obj`` unchanged without a word, which loses ``value``.

    Raises
    ------
    TypeError
        When ``obj`` is not a dict.
    PreprocessorRuntimeError
        When the path goes through a value that is not a dict (``.field`` is ``field``).

    Examples
    --------
    >>> record = {"a": {"x": 1}}
    >>> set_nested_field_direct(record, "a.b.c", 2)
    >>> record
    {'a': {'x': 1, 'b': {'c': 2}}}
    """
    _require_dict(obj, "set_nested_field_direct")
    write_nested_path(obj, field, value, delimiter)


def flatten_dict(
    obj: dict[str, Any],
    delimiter: str = ".",
    flatten_lists: bool = False,
    *,
    ignore_delimiter_collisions: bool = False,
) -> dict[str, Any]:
    """``obj`` with nested dicts (and lists, with ``flatten_lists``) flattened into keys.

    The same flattening as ``flatten_nested_inputs=True``: empty dicts and lists stay
    values, keys that are not strings are written with ``str()``.

    Raises
    ------
    TypeError
        When ``obj`` is not a dict.
    PreprocessorRuntimeError
        When two key paths give one key (``{"a.b": 1, "a": {"b": 2}}``), unless
        ``ignore_delimiter_collisions`` (then the nested value wins).

    Examples
    --------
    >>> flatten_dict({"a": {"b": 1}, "d": [0, 1]}, delimiter=":", flatten_lists=True)
    {'a:b': 1, 'd:0': 0, 'd:1': 1}
    """
    _require_dict(obj, "flatten_dict")
    return flatten_record(
        obj, delimiter, lists=flatten_lists, ignore_collisions=ignore_delimiter_collisions
    )


def flatten_records(
    records: list[dict[str, Any]],
    delimiter: str = ".",
    flatten_lists: bool = False,
    *,
    ignore_delimiter_collisions: bool = False,
) -> list[dict[str, Any]]:
    """Every record of ``records`` flattened as :func:`flatten_dict` does it.

    Raises
    ------
    TypeError
        When ``records`` is not a list, or one of them is not a dict (naming its index).
    PreprocessorRuntimeError
        As :func:`flatten_dict`, with the record's index.
    """
    if not isinstance(records, list):
        raise TypeError(f"flatten_records takes a list of dicts, got {describe(records)}")
    flat = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"flatten_records: record {index} is a {describe(record)}, not a dict")
        flat.append(
            flatten_record(
                record,
                delimiter,
                lists=flatten_lists,
                ignore_collisions=ignore_delimiter_collisions,
                index=index,
            )
        )
    return flat


def records_to_ndarray(
    records: list[dict[str, Any]],
    feature_names: Sequence[str],
    dtype: str | None = None,
    delimiter: str | None = None,
) -> npt.NDArray[Any]:
    """A 2-D array of ``records``: one row per record, one column per feature.

    Each feature is read with :func:`get_nested_field`; a feature a record does not have
    is ``None`` in the array, as in the original (with a numeric ``dtype`` that is an
    error naming the record and the feature, except that floats make it ``nan``). An
    empty batch gives zero rows and one column per feature. For the pipeline's own
    array, use ``input_format="numpy"``, which refuses missing features.

    Raises
    ------
    ValueError
        When ``records`` is not a list of dicts, or a value cannot be converted to
        ``dtype`` (naming the record and the feature).

    Examples
    --------
    >>> records_to_ndarray([{"a": 1, "b": {"c": 2}}], ["a", "b.c"]).tolist()
    [[1, 2]]
    """
    if not isinstance(records, list):
        raise ValueError(f"records_to_ndarray takes a list of dicts, got {describe(records)}")
    rows = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(
                f"records_to_ndarray: record {index} is a {describe(record)}, not a dict"
            )
        rows.append([get_nested_field(record, name, delimiter) for name in feature_names])
    if not rows:
        return np.empty((0, len(feature_names)), dtype=dtype or np.float64)
    try:
        return np.array(rows, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(_culprit(rows, feature_names, dtype) or str(error)) from error


def _culprit(rows: list[list[Any]], feature_names: Sequence[str], dtype: str | None) -> str:
    for index, row in enumerate(rows):
        for name, value in zip(feature_names, row, strict=True):
            try:
                ok = np.array(value, dtype=dtype).ndim == 0
            except (ValueError, TypeError, OverflowError):
                ok = False
            if not ok:
                return (
                    f"records_to_ndarray: record {index}, feature {name!r}: cannot convert "
                    f"{describe(value)} to {dtype or 'one array element'}"
                )
    return ""
