"""Output conversion and validation: turn model outputs into JSON-ready records.

One rule for what an output may hold, the same in ``packflow run`` (and every writer of
JSON lines: :func:`packflow.runtime.jsonl.serialize`), ``validate()``, ``packflow
validate`` and ``packflow export``: a row is a dict whose values are JSON-native after
:func:`ensure_native_types` has converted them, with string keys and finite numbers.

numpy values are always understood; pandas, torch and PIL values are converted when
those libraries are installed. They are never imported up front: a value is recognised
by the module its type comes from, and only then is the library touched. The standard
library's ``datetime``, ``date``, ``time`` (ISO strings), ``timedelta`` (seconds),
``Decimal`` (its exact digits as a string), ``Enum`` (its value) and ``UUID`` (its
string) are converted too.
"""

from __future__ import annotations

import contextlib
import enum
import math
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from packflow._lazy import LazyModule
from packflow._text import short_repr
from packflow.exceptions import InferenceBackendValidationError

if TYPE_CHECKING:
    import numpy as np
else:  # numpy is imported by the first value that needs it, not by `import packflow`
    np = LazyModule("numpy", globals(), "np")

__all__ = ["ensure_native_types", "ensure_valid_output", "find_invalid_value"]

_NATIVE_SCALARS = (str, int, float, bool, type(None))


def _root_module(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


def _convert_standard(value: Any) -> Any:
    """Convert a datetime/Decimal/Enum/UUID value, or return ``value`` itself.

    A value of such a type exists only once its module is imported, so the module is
    looked up rather than imported here.
    """
    if isinstance(value, enum.Enum):
        return value.value
    root = _root_module(value)
    if root == "datetime":
        import datetime

        if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, datetime.timedelta):
            return value.total_seconds()
    elif root in ("decimal", "_decimal", "_pydecimal"):
        decimal = sys.modules["decimal"]
        if isinstance(value, decimal.Decimal):
            # Its digits, exactly (a float would round them); NaN and infinities become
            # floats so that they are refused as JSON like every other NaN.
            return str(value) if value.is_finite() else float(value)
    elif root == "uuid":
        import uuid

        if isinstance(value, uuid.UUID):
            return str(value)
    return value


def _convert_foreign(value: Any) -> Any:
    """Convert a pandas/torch/PIL value, or return ``value`` itself when it is none."""
    standard = _convert_standard(value)
    if standard is not value:
        return standard
    root = _root_module(value)
    if root == "pandas":
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return value.to_dict(orient="records")
        if isinstance(value, (pd.Series, pd.Index)):
            return value.tolist()
        if value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if isinstance(value, pd.Timedelta):
            return value.total_seconds()
    elif root == "torch":
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().tolist()
    elif root == "PIL":
        from PIL import Image

        if isinstance(value, Image.Image):
            return np.asarray(value).tolist()
    return value


def ensure_native_types(obj: Any) -> Any:
    """Return ``obj`` with numpy (and pandas, torch, PIL) values made JSON-native.

    Dicts, lists and tuples are converted recursively (tuples become lists); a set or
    frozenset becomes a list, sorted when its items can be ordered so that the output is
    the same on every run. numpy scalars become Python scalars and arrays nested lists;
    ``numpy.datetime64``, ``datetime``, ``date`` and ``time`` become ISO strings,
    ``numpy.timedelta64`` and ``timedelta`` seconds, ``Decimal`` its digits as a string,
    an ``Enum`` its value and a ``UUID`` its string.
    Dict keys are kept as they are, and floats as they are (``nan`` included): use
    :func:`ensure_valid_output` or ``validate()`` to check that the result is JSON-ready.

    Raises
    ------
    TypeError
        When a value has a type that cannot be made JSON-native (an arbitrary object, a
        ``complex``, ``bytes``); the message names the type and the key path.

    Examples
    --------
    >>> import numpy as np
    >>> ensure_native_types({"score": np.float32(0.5), "ids": np.arange(2)})
    {'score': 0.5, 'ids': [0, 1]}
    >>> ensure_native_types({"tags": {"b", "a"}})
    {'tags': ['a', 'b']}
    """
    try:
        return _native(obj, True)
    except _NotNative as problem:
        path = (_path_to(obj, problem.value) or "").removeprefix(".")
        where = f" at {path}" if path else ""
        raise TypeError(
            f"cannot make {_type_name(problem.value)}{where} JSON-native; convert it to "
            f"a str, number, bool, None, list or dict first"
        ) from None


class _NotNative(Exception):
    """Raised inside the conversion for a value it cannot convert."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _native(obj: Any, strict: bool) -> Any:
    """The conversion; a value it cannot convert raises (``strict``) or stays as it is."""
    if type(obj) in _NATIVE_SCALARS:
        return obj
    if isinstance(obj, np.generic):
        # Checked before dict/str/float: np.float64 and np.str_ subclass builtins.
        return _numpy_scalar(obj)
    if isinstance(obj, dict):
        return {key: _native(value, strict) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_native(value, strict) for value in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "mMO":
            return obj.tolist()
        if obj.ndim == 0:
            return _native(obj[()], strict)
        return [_native(item, strict) for item in obj]
    if isinstance(obj, _NATIVE_SCALARS):
        # Subclasses of builtins (an IntEnum, a str subclass) serialize as their base.
        return obj
    if isinstance(obj, (set, frozenset)):
        items = [_native(value, strict) for value in obj]
        # Sorted when it can be, so that a set's JSON does not change from run to run.
        with contextlib.suppress(TypeError):
            items.sort()
        return items
    converted = _convert_foreign(obj)
    if converted is not obj:
        return _native(converted, strict)
    if strict:
        raise _NotNative(obj)
    return obj


def _path_to(container: Any, target: Any) -> str | None:
    """The key path of ``target`` inside ``container`` (by identity): ``".a[2]"``.

    Only run once a conversion has failed, so that the conversion itself does not track
    paths.
    """
    if container is target:
        return ""
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(container, dict):
        items = ((f".{key}", value) for key, value in container.items())
    elif isinstance(container, (list, tuple, set, frozenset)) or (
        isinstance(container, np.ndarray) and container.dtype.kind == "O"
    ):
        items = ((f"[{position}]", value) for position, value in enumerate(container))
    for step, value in items:
        found = _path_to(value, target)
        if found is not None:
            return step + found
    return None


def _numpy_scalar(value: np.generic) -> Any:
    if isinstance(value, np.str_):
        # np.str_ is a str; its item() and str() drop trailing NUL characters.
        return str.__str__(value)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(np.datetime_as_string(value))
    if isinstance(value, np.timedelta64):
        # Seconds, as a float: JSON has no duration type.
        return None if np.isnat(value) else float(value / np.timedelta64(1, "s"))
    return value.item()


def ensure_valid_output(output: Any, parent_key: str | None = None) -> list[dict[str, Any]]:
    """Convert ``output`` to a list of JSON-ready dicts, or say what stops that.

    A single dict is treated as a batch of one; a pandas DataFrame becomes its rows.

    Parameters
    ----------
    output
        The batch of output rows.
    parent_key
        When given, a row that is not a dict is wrapped as ``{parent_key: row}``, as in
        the original Packflow (a one-item list row gives its item: the ``(n, 1)`` array
        of a model's predictions gives one value per row). Without it, such a row is an
        error.

    Raises
    ------
    InferenceBackendValidationError
        When a row is not a dict (and no ``parent_key`` is given) or a value cannot be
        represented in JSON; the error names the record index and the key path.

    Examples
    --------
    >>> import numpy as np
    >>> ensure_valid_output(np.array([[0], [1]]), parent_key="class")
    [{'class': 0}, {'class': 1}]
    """
    if parent_key is not None and not isinstance(parent_key, str):
        raise TypeError(f"parent_key must be a str, got {_type_name(parent_key)}")
    converted = _native(output, False)
    if isinstance(converted, dict):
        converted = [converted]
    if not isinstance(converted, list):
        raise InferenceBackendValidationError(
            f"outputs must be a list of records (dicts), got {type(output).__name__}"
        )
    if parent_key is not None:
        converted = [_wrapped(row, parent_key) for row in converted]
    problem = find_invalid_value(converted)
    if problem is not None:
        index, path, reason = problem
        hint = ""
        if path is None and parent_key is None:
            hint = "; pass parent_key='<name>' to wrap each row that is not a dict"
        raise InferenceBackendValidationError(
            f"output record {index}{_path_text(path)}: {reason}{hint}", index=index, path=path
        )
    return converted


def _wrapped(row: Any, parent_key: str) -> Any:
    if type(row) is dict:
        return row
    if type(row) is list and len(row) == 1:
        row = row[0]
    return {parent_key: row}


def _path_text(path: str | None) -> str:
    return f" at {path}" if path else ""


def _type_name(value: Any) -> str:
    """The type of ``value`` with its module (``numpy.ndarray``; builtins bare)."""
    return f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")


def _describe(value: Any) -> str:
    return f"{_type_name(value)} {short_repr(value, 60)}"


def _first_bad(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return path, f"{value!r} is not valid JSON (NaN and infinities are not allowed)"
    if isinstance(value, Mapping) and type(value) is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", f"key {key!r} is not a string"
            found = _first_bad(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if type(value) is list:
        for position, item in enumerate(value):
            found = _first_bad(item, f"{path}[{position}]")
            if found is not None:
                return found
        return None
    return path, (
        f"{_describe(value)} is not JSON-serializable; convert it to a str, number, bool, "
        f"None, list or dict"
    )


def find_invalid_value(records: list[Any]) -> tuple[int, str | None, str] | None:
    """Find the first output record that is not a dict JSON can hold after conversion.

    The rule of every output check and writer: a record is valid when it is a dict and
    :func:`ensure_native_types` makes it JSON-ready (string keys, finite numbers).
    Returns ``(record_index, key_path, reason)`` or ``None`` when all are valid. The key
    path is dotted, with ``[i]`` for list positions, e.g. ``"scores[2]"`` (positions of
    the converted value: a set's sorted list).
    """
    for index, record in enumerate(records):
        if type(record) is not dict:
            return index, None, f"expected a dict, got {_describe(record)}"
        found = _first_bad(_native(record, False), "")
        if found is not None:
            return index, found[0], found[1]
    return None
