"""ensure_native_types and ensure_valid_output with pandas and PIL values.

pandas and Pillow are in the ``test`` extra so that these conversions are exercised on
the real libraries; packflow itself never imports them unless such a value shows up.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from packflow import InferenceBackendValidationError, ensure_native_types, ensure_valid_output


def test_a_dataframe_becomes_its_rows_with_native_values() -> None:
    frame = pd.DataFrame({"id": np.array([1, 2], dtype=np.int64), "score": [0.5, 0.25]})
    rows = ensure_native_types(frame)
    assert rows == [{"id": 1, "score": 0.5}, {"id": 2, "score": 0.25}]
    assert type(rows[0]["id"]) is int
    json.dumps(rows)


def test_a_series_becomes_a_list() -> None:
    assert ensure_native_types({"labels": pd.Series(["a", "b"])}) == {"labels": ["a", "b"]}


def test_a_timestamp_becomes_an_iso_string_and_nat_becomes_none() -> None:
    converted = ensure_native_types({"at": pd.Timestamp("2026-01-02T03:04:05"), "no": pd.NaT})
    assert converted == {"at": "2026-01-02T03:04:05", "no": None}


def test_ensure_valid_output_accepts_a_dataframe_as_a_batch() -> None:
    frame = pd.DataFrame({"label": ["x", "y"]})
    assert ensure_valid_output(frame) == [{"label": "x"}, {"label": "y"}]


def test_a_dataframe_with_a_missing_value_names_the_record_and_column() -> None:
    frame = pd.DataFrame({"score": [0.5, float("nan")]})
    with pytest.raises(InferenceBackendValidationError) as info:
        ensure_valid_output(frame)
    assert (info.value.index, info.value.path) == (1, "score")


def test_a_pil_image_becomes_nested_pixel_lists() -> None:
    image = Image.new("L", (2, 1), color=7)
    assert ensure_native_types({"image": image}) == {"image": [[7, 7]]}


def test_importing_and_converting_numpy_values_does_not_import_pandas_or_pil() -> None:
    code = (
        "import sys, numpy as np, packflow\n"
        "packflow.ensure_native_types({'a': np.int8(1), 'b': [np.float32(2)]})\n"
        "print(sorted(m for m in ('pandas', 'PIL', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
