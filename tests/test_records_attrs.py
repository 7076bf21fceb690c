"""attrs records: structuring records into attrs instances and back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import TypeAliasType

from packflow.exceptions import PackflowError, PreprocessorRuntimeError
from packflow.records import (
    Records,
    attrs_record_type,
    structure_records,
    unstructure_records,
)


@attrs.frozen
class Address:
    city: str
    zip_code: int


@attrs.frozen
class Person:
    name: str
    age: int
    address: Address | None = None
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class Score:
    value: float
    label: str = "ok"


class Plain:
    pass


T = TypeVar("T")


@attrs.frozen
class Tagged(Generic[T]):
    value: T
    tag: str


People = TypeAliasType("People", list[Person])


@pytest.mark.parametrize(
    "annotation",
    [list[Person], Sequence[Person], Iterable[Person], Annotated[list[Person], "rows"]],
)
def test_attrs_record_type_finds_the_class_of_a_batch(annotation: Any) -> None:
    assert attrs_record_type(annotation) is Person


def test_attrs_record_type_sees_through_a_type_alias() -> None:
    assert attrs_record_type(People) is Person
    assert attrs_record_type(list[Annotated[Person, "row"]]) is Person


def test_attrs_record_type_keeps_the_arguments_of_a_generic_attrs_class() -> None:
    assert attrs_record_type(list[Tagged[int]]) == Tagged[int]


def test_generic_attrs_records_are_structured_with_their_arguments() -> None:
    assert structure_records([{"value": 3, "tag": "a"}], Tagged[int]) == [Tagged(3, "a")]
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"value": "x", "tag": "a"}], Tagged[int])
    assert caught.value.field == "value"
    assert str(caught.value).startswith("record 0, field 'value': does not fit Tagged[int]")


@pytest.mark.parametrize(
    "annotation",
    [Person, list[dict[str, Any]], Records, list[Plain], dict[str, Person], list, Any],
)
def test_attrs_record_type_is_none_for_anything_else(annotation: Any) -> None:
    assert attrs_record_type(annotation) is None


def test_records_are_structured_into_instances() -> None:
    people = structure_records(
        [
            {"name": "ada", "age": 36},
            {"name": "bo", "age": 7, "address": {"city": "x", "zip_code": 1}},
        ],
        Person,
    )
    assert people == [Person("ada", 36), Person("bo", 7, Address("x", 1))]


def test_wrong_value_names_the_record_index_and_field() -> None:
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"name": "ada", "age": 36}, {"name": "bo", "age": "old"}], Person)
    assert caught.value.index == 1
    assert caught.value.field == "age"
    assert str(caught.value) == (
        "record 1, field 'age': does not fit Person: expected int, got str 'old'"
    )


def test_a_numeric_string_is_not_coerced_into_an_int_field() -> None:
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"name": "ada", "age": "36"}], Person)
    assert caught.value.index == 0
    assert caught.value.field == "age"


def test_missing_field_names_the_record_index_and_field() -> None:
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"name": "ada"}], Person)
    assert (caught.value.index, caught.value.field) == (0, "age")
    assert "required field is missing" in str(caught.value)


def test_nested_field_is_named_by_its_dotted_path() -> None:
    record = {"name": "ada", "age": 1, "address": {"city": "x", "zip_code": "y"}}
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([record], Person)
    assert caught.value.field == "address.zip_code"


def test_extra_key_is_an_error_naming_the_key() -> None:
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"name": "ada", "age": 1, "email": "a@b"}], Person)
    assert (caught.value.index, caught.value.field) == (0, "email")
    assert "unexpected key 'email'" in str(caught.value)
    assert "feature_names" in str(caught.value)


def test_a_record_that_is_not_a_dict_is_reported_by_index() -> None:
    with pytest.raises(PreprocessorRuntimeError) as caught:
        structure_records([{"name": "ada", "age": 1}, ["ada", 1]], Person)
    assert caught.value.index == 1
    assert "expected a dict to structure into Person, got list" in str(caught.value)


def test_structuring_error_is_a_packflow_error_with_the_cause_chained() -> None:
    with pytest.raises(PackflowError) as caught:
        structure_records([{"name": "ada", "age": "x"}], Person)
    assert caught.value.__cause__ is not None


def test_instances_are_unstructured_to_dicts() -> None:
    assert unstructure_records([Score(0.5), Score(1.0, "high")]) == [
        {"value": 0.5, "label": "ok"},
        {"value": 1.0, "label": "high"},
    ]


def test_dicts_pass_through_unstructure_unchanged() -> None:
    record = {"value": 1}
    assert unstructure_records([record])[0] is record


people = st.builds(
    Person,
    name=st.text(max_size=10),
    age=st.integers(min_value=0, max_value=150),
    address=st.none() | st.builds(Address, city=st.text(max_size=5), zip_code=st.integers()),
    tags=st.lists(st.text(max_size=3), max_size=3),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(people, max_size=10))
def test_unstructure_then_structure_round_trips(batch: list[Person]) -> None:
    assert structure_records(unstructure_records(batch), Person) == batch
