"""``packflow.utils``: the original Packflow's helpers, under its import paths."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import packflow
from packflow import BackendConfig, PreprocessorRuntimeError
from packflow.preprocess import build_preprocessor
from packflow.utils import (
    flatten_dict,
    flatten_records,
    get_nested_field,
    get_nested_field_direct,
    records_to_ndarray,
    set_nested_field_direct,
)
from packflow.utils.normalize import ensure_native_types, ensure_valid_output

# --- import paths ------------------------------------------------------------------------


def test_the_original_import_paths_give_packflows_own_functions() -> None:
    from packflow.utils import data, normalize
    from packflow.utils.normalize import normalize as module

    assert (
        module.ensure_native_types is normalize.ensure_native_types is packflow.ensure_native_types
    )
    assert (
        module.ensure_valid_output is normalize.ensure_valid_output is packflow.ensure_valid_output
    )
    assert data.get_nested_field is get_nested_field
    assert data.records_to_ndarray is records_to_ndarray


def test_import_packflow_does_not_import_the_compatibility_helpers() -> None:
    code = "import sys, packflow; print('packflow.utils' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- normalize ---------------------------------------------------------------------------


def test_the_originals_ensure_valid_output_example_with_parent_key() -> None:
    outputs = ensure_valid_output(output=np.array([0, 1, 1]), parent_key="class")
    assert outputs == [{"class": 0}, {"class": 1}, {"class": 1}]
    json.dumps(outputs)


def test_ensure_native_types_makes_a_set_json_ready_and_refuses_a_module() -> None:
    assert ensure_native_types({3, 1, 2}) == [1, 2, 3]
    with pytest.raises(TypeError, match="cannot make module JSON-native"):
        ensure_native_types(json)


# --- get_nested_field --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field", "expected"),
    [
        ({"foo": {"bar": 5}}, "foo.bar", 5),
        ({"top_level": 42}, "top_level", 42),
        ({"a.b": 1, "a": {"b": 2}}, "a.b", 1),
        ({}, "missing.field", None),
        ({"empty": {}}, "empty.nested", None),
        ({"empty": {}}, "empty", {}),
        ({"a": {"b": {"c": 1}}}, "a.b", None),
    ],
    ids=["nested", "top", "literal-key-first", "missing", "through-empty", "empty", "not-a-leaf"],
)
def test_get_nested_field_reads_a_flat_key(obj: dict[str, Any], field: str, expected: Any) -> None:
    assert get_nested_field(obj, field) == expected


def test_get_nested_field_finds_keys_that_contain_the_delimiter() -> None:
    obj = {"special:chars": {"key:123": 999}}
    assert get_nested_field(obj, "special:chars.key:123") == 999
    assert get_nested_field(obj, "special:chars:key:123") is None
    assert get_nested_field(obj, "special:chars:key:123", delimiter=":") == 999
    assert get_nested_field(obj, "special:chars.key:123", delimiter=":") is None


def test_get_nested_field_direct_walks_nested_dicts_and_may_stop_at_one() -> None:
    obj = {"a": {"b": {"c": 1}}, "x:y": 2}
    assert get_nested_field_direct(obj, "a.b") == {"c": 1}
    assert get_nested_field_direct(obj, "a:b:c", delimiter=":") == 1
    assert get_nested_field_direct(obj, "x:y", delimiter=":") == 2
    assert get_nested_field_direct(obj, "a.z") is None


@pytest.mark.parametrize("helper", [get_nested_field, get_nested_field_direct])
def test_reading_a_field_of_something_that_is_not_a_dict_is_a_type_error(helper: Any) -> None:
    with pytest.raises(TypeError, match="takes a dict, got list"):
        helper([1], "a")


# --- set_nested_field_direct -------------------------------------------------------------


def test_set_nested_field_direct_creates_the_dicts_on_the_way_in_place() -> None:
    record: dict[str, Any] = {"a": {"x": 1}}
    assert set_nested_field_direct(record, "a:b:c", 2, delimiter=":") is None
    assert record == {"a": {"x": 1, "b": {"c": 2}}}


def test_set_nested_field_direct_through_a_plain_value_is_an_error_not_a_silent_skip() -> None:
    record = {"a": 5}
    with pytest.raises(
        PreprocessorRuntimeError, match=r"cannot write 'a.b': 'a' holds a int"
    ) as err:
        set_nested_field_direct(record, "a.b", 1)
    assert err.value.field == "a.b"
    assert record == {"a": 5}


# --- flattening --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"a.b": 1, "a.c": 2, "d": [0, 1], "e": {}}),
        ({"delimiter": ":"}, {"a:b": 1, "a:c": 2, "d": [0, 1], "e": {}}),
        ({"flatten_lists": True}, {"a.b": 1, "a.c": 2, "d.0": 0, "d.1": 1, "e": {}}),
    ],
    ids=["default", "delimiter", "lists"],
)
def test_flatten_dict_joins_nested_keys(options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert flatten_dict({"a": {"b": 1, "c": 2}, "d": [0, 1], "e": {}}, **options) == expected


@pytest.mark.parametrize("obj", [[0, 1], "string", None])
def test_flatten_dict_of_something_that_is_not_a_dict_is_a_type_error(obj: Any) -> None:
    with pytest.raises(TypeError, match="flatten_dict takes a dict"):
        flatten_dict(obj)


def test_flatten_dict_reports_two_key_paths_that_give_one_key() -> None:
    clash = {"a.b": 1, "a": {"b": 2}}
    with pytest.raises(PreprocessorRuntimeError) as err:
        flatten_dict(clash)
    assert err.value.field == "a.b"
    assert flatten_dict(clash, ignore_delimiter_collisions=True) == {"a.b": 2}


def test_flatten_records_flattens_each_record_and_names_a_bad_one() -> None:
    assert flatten_records([{"a": {"b": 1}}, {"c": [0]}], flatten_lists=True) == [
        {"a.b": 1},
        {"c.0": 0},
    ]
    with pytest.raises(TypeError, match="record 1 is a"):
        flatten_records([{}, 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="takes a list of dicts"):
        flatten_records({})  # type: ignore[arg-type]


nested_records = st.recursive(
    st.one_of(st.integers(-3, 3), st.text(max_size=2), st.none(), st.just([]), st.just({})),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    ),
    max_leaves=8,
).filter(lambda value: isinstance(value, dict))


@settings(max_examples=100, deadline=None)
@given(record=nested_records, lists=st.booleans())
def test_flatten_dict_is_the_preprocessors_flattening(record: dict[str, Any], lists: bool) -> None:
    config = BackendConfig(flatten_nested_inputs=True, flatten_lists=lists)
    assert flatten_dict(record, flatten_lists=lists) == build_preprocessor(config)([record])[0]


@settings(max_examples=100, deadline=None)
@given(record=nested_records)
def test_every_flattened_key_reads_back_its_value(record: dict[str, Any]) -> None:
    for key, value in flatten_dict(record).items():
        assert get_nested_field(record, key) is value


# --- records_to_ndarray ------------------------------------------------------------------


def test_records_to_ndarray_gives_one_row_per_record_in_feature_order() -> None:
    records = [{"num": 1, "meta": {"w": 3}}, {"num": 2, "meta": {"w": 4}}]
    array = records_to_ndarray(records, ["meta.w", "num"])
    assert array.tolist() == [[3, 1], [4, 2]]


def test_records_to_ndarray_makes_a_missing_feature_none() -> None:
    array = records_to_ndarray([{"num": 1}, {"num": 2}], ["num", "num3"])
    assert array.tolist() == [[1, None], [2, None]]


@pytest.mark.parametrize("dtype", ["float32", "int64", "float64"])
def test_records_to_ndarray_casts_to_the_dtype(dtype: str) -> None:
    array = records_to_ndarray([{"a": 1, "b": 2}], ["a", "b"], dtype=dtype)
    assert array.dtype == np.dtype(dtype)


def test_records_to_ndarray_of_no_records_has_zero_rows_and_every_column() -> None:
    assert records_to_ndarray([], ["a", "b"]).shape == (0, 2)


@pytest.mark.parametrize("records", [{"num": 1}, [1, 2], "string"], ids=["dict", "ints", "str"])
def test_records_to_ndarray_refuses_what_is_not_a_list_of_dicts(records: Any) -> None:
    with pytest.raises(ValueError, match="records_to_ndarray"):
        records_to_ndarray(records, ["num"])


def test_records_to_ndarray_names_the_record_and_feature_it_cannot_cast() -> None:
    with pytest.raises(ValueError, match=r"record 1, feature 'a': cannot convert str 'x'"):
        records_to_ndarray([{"a": 1}, {"a": "x"}], ["a"], dtype="float64")
