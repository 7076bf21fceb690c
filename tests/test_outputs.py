"""Output helpers: ``ensure_native_types`` and ``ensure_valid_output``."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from packflow import (
    InferenceBackendValidationError,
    Pipeline,
    Records,
    ensure_native_types,
    ensure_valid_output,
)
from packflow.runtime.jsonl import serialize

NATIVE_SCALARS = (bool, int, float, str, type(None))

finite_floats = st.floats(allow_nan=False, allow_infinity=False)

numpy_scalars = st.one_of(
    st.booleans().map(np.bool_),
    st.integers(-(2**7), 2**7 - 1).map(np.int8),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.floats(width=16, allow_nan=False, allow_infinity=False).map(np.float16),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32),
    finite_floats.map(np.float64),
    st.text(max_size=5).map(np.str_),
)

numpy_arrays = hnp.arrays(
    dtype=st.sampled_from([np.dtype("int32"), np.dtype("float64"), np.dtype("bool")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
    elements={"allow_nan": False, "allow_infinity": False},
)

leaves = st.one_of(
    numpy_scalars,
    numpy_arrays,
    st.none(),
    st.booleans(),
    st.integers(),
    finite_floats,
    st.text(max_size=5),
)

nested = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
    ),
    max_leaves=12,
)


def assert_same_value(converted: Any, original: Any) -> None:
    """``converted`` holds the same values as ``original``, in JSON's shapes."""
    if isinstance(original, dict):
        assert type(converted) is dict
        assert list(converted) == list(original)
        for key, value in original.items():
            assert_same_value(converted[key], value)
    elif isinstance(original, (list, tuple)) or (
        isinstance(original, np.ndarray) and original.ndim > 0
    ):
        assert type(converted) is list
        assert len(converted) == len(original)
        for item, value in zip(converted, original, strict=True):
            assert_same_value(item, value)
    else:
        scalar = original.item() if isinstance(original, np.ndarray) else original
        assert isinstance(converted, NATIVE_SCALARS)
        assert isinstance(converted, bool) == isinstance(scalar, (bool, np.bool_))
        assert converted == scalar


@settings(max_examples=75)
@given(nested)
def test_ensure_native_types_gives_json_ready_data_of_equal_value(value: Any) -> None:
    converted = ensure_native_types(value)
    text = json.dumps(converted, allow_nan=False)
    assert json.loads(text) == converted
    assert_same_value(converted, value)


@settings(max_examples=50)
@given(nested)
def test_ensure_native_types_is_idempotent(value: Any) -> None:
    once = ensure_native_types(value)
    assert ensure_native_types(once) == once


@pytest.mark.parametrize(
    ("value", "expected_type"),
    [
        (np.float64(1.5), float),
        (np.float32(1.5), float),
        (np.float16(0.5), float),
        (np.int64(2), int),
        (np.int8(-3), int),
        (np.uint64(2**64 - 1), int),
        (np.bool_(True), bool),
        (np.str_("a"), str),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, type) else v.__name__,
)
def test_numpy_scalars_become_builtin_scalars(value: Any, expected_type: type) -> None:
    converted = ensure_native_types(value)
    assert type(converted) is expected_type
    assert converted == value


def test_a_numpy_string_keeps_its_trailing_nul_characters() -> None:
    assert ensure_native_types(np.str_("a\x00")) == "a\x00"


def test_numpy_datetime64_becomes_a_json_ready_iso_string() -> None:
    converted = ensure_native_types({"at": np.datetime64("2024-05-06T07:08:09")})
    assert json.loads(json.dumps(converted)) == {"at": "2024-05-06T07:08:09"}


def test_numpy_arrays_become_nested_lists() -> None:
    assert ensure_native_types(np.arange(3)) == [0, 1, 2]
    assert ensure_native_types(np.array([[1.5, 2.0], [3.0, 4.5]], dtype=np.float32)) == [
        [1.5, 2.0],
        [3.0, 4.5],
    ]
    assert ensure_native_types(np.array([True, False])) == [True, False]


def test_a_zero_dimensional_array_becomes_a_scalar() -> None:
    converted = ensure_native_types(np.array(2.5))
    assert type(converted) is float
    assert converted == 2.5


def test_nested_containers_are_converted_and_tuples_become_lists() -> None:
    value = {
        "scores": (np.float32(0.25), np.float32(0.75)),
        "top": {"ids": np.array([3, 1]), "label": "cat", "n": np.int32(2)},
        "flags": [np.bool_(False), None],
    }
    assert ensure_native_types(value) == {
        "scores": [0.25, 0.75],
        "top": {"ids": [3, 1], "label": "cat", "n": 2},
        "flags": [False, None],
    }


def test_ensure_native_types_does_not_mutate_its_input() -> None:
    value = {"scores": [np.int64(1)], "arr": np.arange(2)}
    ensure_native_types(value)
    assert type(value["scores"][0]) is np.int64
    assert isinstance(value["arr"], np.ndarray)


def test_native_values_are_returned_as_they_are() -> None:
    for value in (1, 2.5, "a", True, None):
        assert ensure_native_types(value) is value


class Opaque:
    """A value no conversion knows."""


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        (Opaque(), "test_outputs.Opaque", None),
        ({"x": [1, {"y": 2j}]}, "complex", "x[1].y"),
        ([{"blob": b"raw"}], "bytes", "[0].blob"),
        ({"tags": {Opaque()}}, "test_outputs.Opaque", "tags[0]"),
        ({"cells": np.array([1, Opaque()], dtype=object)}, "test_outputs.Opaque", "cells[1]"),
    ],
    ids=["object", "complex-deep", "bytes", "in-a-set", "in-an-object-array"],
)
def test_a_value_that_cannot_be_made_native_is_a_type_error_naming_type_and_path(
    value: Any, type_name: str, path: str | None
) -> None:
    with pytest.raises(TypeError) as err:
        ensure_native_types(value)
    message = str(err.value)
    assert message.startswith(f"cannot make {type_name} ")
    assert (f" at {path} " in message) is (path is not None)


def test_a_set_becomes_a_sorted_json_ready_list() -> None:
    converted = ensure_native_types({"tags": {"b", "c", "a"}, "ids": frozenset({np.int8(2), 1})})
    assert converted == {"tags": ["a", "b", "c"], "ids": [1, 2]}
    json.dumps(converted)


def test_a_set_of_values_that_cannot_be_ordered_keeps_every_value() -> None:
    converted = ensure_native_types({1, "a", None})
    assert sorted(map(repr, converted)) == sorted(map(repr, [1, "a", None]))


@settings(max_examples=50)
@given(st.sets(st.one_of(st.integers(), st.text(max_size=3), finite_floats)))
def test_any_set_of_scalars_becomes_a_list_of_the_same_values(value: set[Any]) -> None:
    converted = ensure_native_types(value)
    assert type(converted) is list
    assert len(converted) == len(value)
    assert set(converted) == value


# -- ensure_valid_output -------------------------------------------------------------------


def test_ensure_valid_output_converts_a_batch_of_records() -> None:
    outputs = [{"score": np.float32(0.5), "ids": np.arange(2)}, {"score": 1.0, "ids": []}]
    assert ensure_valid_output(outputs) == [
        {"score": 0.5, "ids": [0, 1]},
        {"score": 1.0, "ids": []},
    ]


def test_ensure_valid_output_treats_a_dict_as_a_batch_of_one() -> None:
    assert ensure_valid_output({"label": np.str_("cat")}) == [{"label": "cat"}]


def test_ensure_valid_output_of_an_empty_batch_is_empty() -> None:
    assert ensure_valid_output([]) == []


@settings(max_examples=50)
@given(st.lists(st.dictionaries(st.text(max_size=5), nested, max_size=3), max_size=3))
def test_ensure_valid_output_accepts_any_batch_of_numpy_valued_records(
    outputs: list[dict[str, Any]],
) -> None:
    valid = ensure_valid_output(outputs)
    assert len(valid) == len(outputs)
    json.dumps(valid, allow_nan=False)


@pytest.mark.parametrize(
    ("outputs", "type_name"),
    [("label", "str"), (3, "int"), (None, "NoneType")],
    ids=["str", "int", "None"],
)
def test_ensure_valid_output_rejects_outputs_that_are_not_records(
    outputs: Any, type_name: str
) -> None:
    with pytest.raises(InferenceBackendValidationError, match=f"got {type_name}"):
        ensure_valid_output(outputs)


def test_ensure_valid_output_names_a_row_that_is_not_a_dict() -> None:
    with pytest.raises(InferenceBackendValidationError) as err:
        ensure_valid_output([{"a": 1}, {"a": 2}, 0.5])
    assert err.value.index == 2
    assert err.value.path is None
    assert "output record 2" in str(err.value)


def test_ensure_valid_output_rejects_a_bare_array_of_rows() -> None:
    with pytest.raises(InferenceBackendValidationError) as err:
        ensure_valid_output(np.zeros((2, 3)))
    assert err.value.index == 0
    assert "expected a dict" in str(err.value)


@pytest.mark.parametrize(
    ("outputs", "index", "path"),
    [
        ([{"a": 1}, {"score": math.nan}], 1, "score"),
        ([{"scores": np.array([1.0, np.inf])}], 0, "scores[1]"),
        ([{"deep": {"er": [{"x": 1j}]}}], 0, "deep.er[0].x"),
        ([{"meta": {("a", "b"): 1}}], 0, "meta[('a', 'b')]"),
        ([{"blob": b"bytes"}], 0, "blob"),
    ],
    ids=["nan", "inf-in-array", "complex-deep", "tuple-key", "bytes"],
)
def test_ensure_valid_output_names_the_record_and_key_path_of_a_bad_value(
    outputs: Any, index: int, path: str
) -> None:
    with pytest.raises(InferenceBackendValidationError) as err:
        ensure_valid_output(outputs)
    assert err.value.index == index
    assert err.value.path == path
    assert f"output record {index} at {path}" in str(err.value)


def test_parent_key_wraps_each_row_that_is_not_a_dict() -> None:
    outputs = [1, np.float32(0.5), "spam", {"already": "a dict"}, [0.1, 0.9]]
    assert ensure_valid_output(outputs, parent_key="class") == [
        {"class": 1},
        {"class": 0.5},
        {"class": "spam"},
        {"already": "a dict"},
        {"class": [0.1, 0.9]},
    ]


def test_parent_key_unwraps_a_one_item_row_as_the_original_did() -> None:
    predictions = np.array([[0], [1], [1]])
    assert ensure_valid_output(predictions, parent_key="prediction") == [
        {"prediction": 0},
        {"prediction": 1},
        {"prediction": 1},
    ]


def test_without_parent_key_a_row_that_is_not_a_dict_says_how_to_wrap_it() -> None:
    with pytest.raises(InferenceBackendValidationError, match="pass parent_key=") as err:
        ensure_valid_output([{"a": 1}, 5])
    assert err.value.index == 1


def test_parent_key_still_validates_the_wrapped_values() -> None:
    with pytest.raises(InferenceBackendValidationError) as err:
        ensure_valid_output([1, math.inf], parent_key="score")
    assert (err.value.index, err.value.path) == (1, "score")


def test_parent_key_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="parent_key must be a str, got int"):
        ensure_valid_output([1], parent_key=3)  # type: ignore[arg-type]


@settings(max_examples=50)
@given(st.lists(st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none())))
def test_parent_key_gives_one_wrapped_row_per_scalar_output(outputs: list[Any]) -> None:
    assert ensure_valid_output(outputs, parent_key="value") == [{"value": v} for v in outputs]


# --- one rule for outputs: run, validate(), packflow validate/export -------------------------


class Colour(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


#: value -> what every place writes for it
CONVERTED: list[tuple[Any, Any]] = [
    (np.float32(0.5), 0.5),
    (np.bool_(True), True),
    (np.int64(7), 7),
    ((1, "a"), [1, "a"]),
    (frozenset({3, 1, 2}), [1, 2, 3]),
    (np.datetime64("2024-01-02T03:04:05"), "2024-01-02T03:04:05"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
    (
        datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
        "2024-01-02T00:00:00+00:00",
    ),
    (datetime.date(2024, 1, 2), "2024-01-02"),
    (datetime.time(3, 4), "03:04:00"),
    (datetime.timedelta(minutes=1, milliseconds=500), 60.5),
    (decimal.Decimal("1.10"), "1.10"),
    (Colour.RED, "red"),
    (Colour.PAIR, [1, 2]),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
]
ids = [type(value).__name__ for value, _ in CONVERTED]


@pytest.mark.parametrize(("value", "expected"), CONVERTED, ids=ids)
def test_ensure_native_types_converts_each_output_type(value: Any, expected: Any) -> None:
    assert ensure_native_types({"v": value}) == {"v": expected}


@pytest.mark.parametrize(("value", "expected"), CONVERTED, ids=ids)
def test_run_writes_each_output_type_as_validate_accepts_it(value: Any, expected: Any) -> None:
    pipe = Pipeline("typed")

    @pipe.execute
    def emit(records: Records) -> Records:
        return [{"v": value} for _ in records]

    built = pipe.build()
    assert built.validate([{"x": 1}]) == [{"v": value}]  # validate returns the outputs
    assert json.loads(serialize(built([{"x": 1}])[0])) == {"v": expected}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (decimal.Decimal("NaN"), "nan is not valid JSON"),
        (np.float32("inf"), "inf is not valid JSON"),
        (object(), "is not JSON-serializable"),
        (b"raw", "bytes b'raw' is not JSON-serializable"),
    ],
    ids=["Decimal-NaN", "float32-inf", "object", "bytes"],
)
def test_run_and_validate_refuse_the_same_values_naming_the_key_path(
    value: Any, reason: str
) -> None:
    pipe = Pipeline("refused")

    @pipe.execute
    def emit(records: Records) -> Records:
        return [{"ok": 1, "v": [value]} for _ in records]

    built = pipe.build()
    with pytest.raises(InferenceBackendValidationError, match=rf"at v\[0\]: .*{reason}"):
        built.validate([{"x": 1}])
    with pytest.raises((TypeError, ValueError), match=rf"at v\[0\]: .*{reason}"):
        serialize(built([{"x": 1}])[0])


TYPED_PROJECT = """
    import datetime, decimal, enum, uuid
    import numpy as np
    from packflow import Pipeline, Records

    class Colour(enum.Enum):
        RED = "red"

    pipe = Pipeline("typed")

    @pipe.execute
    def emit(records: Records) -> Records:
        return [
            {
                "f32": np.float32(0.5), "flag": np.bool_(True), "i64": np.int64(7),
                "pair": (1, 2), "set": frozenset({2, 1}),
                "when": np.datetime64("2024-01-02"), "at": datetime.datetime(2024, 1, 2),
                "day": datetime.date(2024, 1, 2), "cost": decimal.Decimal("1.10"),
                "colour": Colour.RED, "id": uuid.UUID(int=1),
            }
            for _ in records
        ]
"""


def test_packflow_validate_and_run_accept_and_write_the_same_outputs(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import textwrap

    from packflow.cli import main
    from packflow.project import create_project, validate_project

    monkeypatch.chdir(tmp_path)
    folder = create_project("typed", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "inference.py").write_text(textwrap.dedent(TYPED_PROJECT))
    report = validate_project(folder)
    assert report.ok, [str(finding) for finding in report.errors]
    assert main(["run", "typed", "--input", "sample.jsonl"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first == {
        "f32": 0.5, "flag": True, "i64": 7, "pair": [1, 2], "set": [1, 2],
        "when": "2024-01-02", "at": "2024-01-02T00:00:00", "day": "2024-01-02",
        "cost": "1.10", "colour": "red", "id": "00000000-0000-0000-0000-000000000001",
    }  # fmt: skip
    assert main(["validate", "typed"]) == 0
