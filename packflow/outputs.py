"""Output conversion and validation: turn model outputs into JSON-ready records.

numpy values are always understood; pandas, torch and PIL values are converted when
those libraries are installed. They are never imported up front: a value is recognised
by the module its type comes from, and only then is the library touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from packflow.exceptions import InferenceBackendValidationError

__all__ = ["ensure_native_types", "ensure_valid_output", "find_invalid_value"]

_NATIVE_SCALARS = (str, int, float, bool, type(None))


def _root_module(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


def _convert_foreign(value: Any) -> Any:
    """Convert a pandas/torch/PIL value, or return ``value`` itself when it is none."""
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

    Dicts, lists and tuples are converted recursively (tuples become lists); numpy
    scalars become Python scalars and arrays nested lists. Values of other types are
    returned unchanged; :func:`find_invalid_value` tells whether the result is JSON-ready.

    Examples
    --------
    >>> import numpy as np
    >>> ensure_native_types({"score": np.float32(0.5), "ids": np.arange(2)})
    {'score': 0.5, 'ids': [0, 1]}
    """
    if type(obj) in _NATIVE_SCALARS:
        return obj
    if isinstance(obj, np.generic):
        # Checked before dict/str/float: np.float64 and np.str_ subclass builtins.
        return _numpy_scalar(obj)
    if isinstance(obj, dict):
        return {key: ensure_native_types(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [ensure_native_types(value) for value in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "mM":
            return [ensure_native_types(item) for item in obj]
        return obj.tolist()
    if isinstance(obj, _NATIVE_SCALARS):
        # Subclasses of builtins (an IntEnum, a str subclass) serialize as their base.
        return obj
    converted = _convert_foreign(obj)
    if converted is obj:
        return obj
    return ensure_native_types(converted)


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


def ensure_valid_output(outputs: Any) -> list[dict[str, Any]]:
    """Convert ``outputs`` to a list of JSON-ready dicts, or say what stops that.

    A single dict is treated as a batch of one; a pandas DataFrame becomes its rows.

    Raises
    ------
    InferenceBackendValidationError
        When a row is not a dict or a value cannot be represented in JSON; the error
        names the record index and the key path.
    """
    converted = ensure_native_types(outputs)
    if isinstance(converted, dict):
        converted = [converted]
    if not isinstance(converted, list):
        raise InferenceBackendValidationError(
            f"outputs must be a list of records (dicts), got {type(outputs).__name__}"
        )
    problem = find_invalid_value(converted)
    if problem is not None:
        index, path, reason = problem
        raise InferenceBackendValidationError(
            f"output record {index}{_path_text(path)}: {reason}", index=index, path=path
        )
    return converted


def _path_text(path: str | None) -> str:
    return f" at {path}" if path else ""


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__module__}.{type(value).__qualname__} {text}".removeprefix("builtins.")


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
    hint = ""
    if isinstance(value, (np.generic, np.ndarray)) or _root_module(value) in (
        "pandas",
        "torch",
        "PIL",
    ):
        hint = "; convert it with packflow.ensure_native_types"
    return path, f"{_describe(value)} is not JSON-serializable{hint}"


def find_invalid_value(records: list[Any]) -> tuple[int, str | None, str] | None:
    """Find the first output record that is not a JSON-ready dict.

    Returns ``(record_index, key_path, reason)`` or ``None`` when all are valid. The key
    path is dotted, with ``[i]`` for list positions, e.g. ``"scores[2]"``.
    """
    for index, record in enumerate(records):
        if type(record) is not dict:
            return index, None, f"expected a dict, got {_describe(record)}"
        found = _first_bad(record, "")
        if found is not None:
            return index, found[0], found[1]
    return None
