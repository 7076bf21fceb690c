"""The original Packflow's ``packflow.utils``, kept so that code written for it runs unchanged.

``packflow.utils.normalize`` holds the output helpers (``ensure_native_types``,
``ensure_valid_output``, also exported by ``packflow`` itself) and
``packflow.utils.data`` the record helpers (``get_nested_field``,
``set_nested_field_direct``, ``flatten_dict``, ``records_to_ndarray``...), all of them
thin layers over packflow's own conversion and preprocessor readings. Not imported by
``import packflow``.
"""

from __future__ import annotations

from packflow.utils import normalize
from packflow.utils.data import (
    flatten_dict,
    flatten_records,
    get_nested_field,
    get_nested_field_direct,
    records_to_ndarray,
    set_nested_field_direct,
)
from packflow.utils.normalize import ensure_native_types, ensure_valid_output

__all__ = [
    "ensure_native_types",
    "ensure_valid_output",
    "flatten_dict",
    "flatten_records",
    "get_nested_field",
    "get_nested_field_direct",
    "normalize",
    "records_to_ndarray",
    "set_nested_field_direct",
]
