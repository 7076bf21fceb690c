"""Run-time value checks against annotations (``runtime_checks=True``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NewType, Optional, Protocol, TypeGuard, TypeVar

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from typing_extensions import NotRequired, TypeAliasType, TypedDict, TypeIs, Unpack

from packflow.records import Records
from packflow.valuecheck import compile_checker, mismatch

UserId = NewType("UserId", int)
Num = TypeVar("Num", bound=float)


class Movie(TypedDict):
    name: str
    year: int
    rating: NotRequired[float]


@attrs.frozen
class Row:
    a: int


class Closeable(Protocol):
    def close(self) -> None: ...


class Reading(TypedDict):
    values: Optional[list[Optional[float]]]  # noqa: UP045


class Sensor(TypedDict):
    id: int
    last: NotRequired[Optional[Reading]]  # noqa: UP045


Ints = TypeAliasType("Ints", list[int])
JSON = TypeAliasType("JSON", "dict[str, JSON] | list[JSON] | str | int | float | bool | None")


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (1, int),
        (True, int),
        (1, float),
        (1.5, complex),
        (None, None),
        (None, Optional[int]),  # noqa: UP045
        ("a", int | str),
        ("a", Literal["a", "b"]),
        (3, UserId),
        ([{"a": 1}], Records),
        ([1, 2], Sequence[float]),
        ("abc", Sequence[str]),
        ({"a": [1]}, Mapping[str, list[int]]),
        ((1, "a"), tuple[int, str]),
        ((1, 2, 3), tuple[int, ...]),
        ({"name": "x", "year": 1}, Movie),
        (Row(1), Row),
        ([Row(1)], list[Row]),
        (len, Callable[[Any], int]),
        (np.zeros(3), NDArray[np.float64]),
        (np.zeros(3, dtype=np.float32), NDArray[np.floating]),
        (np.zeros(3, dtype=np.int8), np.ndarray),
        (np.zeros((2, 2)), np.ndarray[tuple[int, int], np.dtype[np.float64]]),
        (2.0, Num),
        (object(), Any),
        (open, Closeable | Callable[..., Any]),
        ([1, 2], Ints),
        ({"id": 1, "last": None}, Sensor),
        ({"id": 1, "last": {"values": [1.5, None, 2]}}, Sensor),
        ({"a": [1, "x", None, {"b": 2.5}]}, JSON),
        (np.zeros(2, dtype=np.float32), NDArray[np.float32 | np.float64]),
        (bool, type[int]),
    ],
)
def test_fitting_value_gives_none(value: Any, annotation: Any) -> None:
    assert mismatch(value, annotation) is None


@pytest.mark.parametrize(
    ("value", "annotation", "message"),
    [
        ([1, 2, 3, "x"], list[int], "element 3 of list: expected int, got str ('x')"),
        (1.5, int, "expected int, got float (1.5)"),
        (None, int, "expected int, got None"),
        ("x", Optional[int], "expected int | None, got str ('x')"),  # noqa: UP045
        ("c", Literal["a", "b"], "expected Literal['a', 'b'], got str ('c')"),
        (
            [{"a": 1}, {1: 2}],
            Records,
            "element 1 of list: key 1: expected str, got int (1)",
        ),
        (
            [{"a": 1}, {"a": "x"}],
            list[dict[str, int]],
            "element 1 of list: value of key 'a': expected int, got str ('x')",
        ),
        ({"a": 1}, Records, "expected list[dict[str, Any]], got dict ({'a': 1})"),
        ((1, "a"), tuple[int, int], "item 1 of tuple: expected int, got str ('a')"),
        ((1,), tuple[int, int], "expected tuple[int, int] (2 items), got a tuple of 1 items"),
        ({"name": "x"}, Movie, "expected Movie: key 'year' is missing"),
        (
            {"name": "x", "year": 1, "rating": "high"},
            Movie,
            "value of key 'rating': expected float, got str ('high')",
        ),
        ([Row(1), {"a": 1}], list[Row], "element 1 of list: expected Row, got dict ({'a': 1})"),
        (
            np.zeros(3, dtype=np.float32),
            NDArray[np.float64],
            "expected NDArray[float64], got an ndarray of dtype float32",
        ),
        (
            np.zeros(3),
            np.ndarray[tuple[int, int], np.dtype[np.float64]],
            "expected a 2-D array, got 1-D with shape (3,)",
        ),
        ([1.0], NDArray[np.float64], "expected NDArray[float64], got list ([1.0])"),
        (3, Closeable, "expected Closeable, got int (3), which lacks close"),
        (3, Callable[[int], int], "expected Callable[[int], int], got int (3)"),
        ("s", Num, "expected float, got str ('s')"),
        ([1, "a"], Ints, "element 1 of list: expected int, got str ('a')"),
        (
            {"id": 1, "last": {"values": [1.5, "x"]}},
            Sensor,
            "value of key 'last': value of key 'values': element 1 of list: "
            "expected float | None, got str ('x')",
        ),
        (
            {"a": [b"x"]},
            JSON,
            "value of key 'a': element 0 of list: expected dict[str, JSON] | list[JSON] | "
            "str | int | float | bool | None, got bytes (b'x')",
        ),
        (
            np.zeros(2, dtype=np.int8),
            NDArray[np.float32 | np.float64],
            "expected NDArray[float32 | float64], got an ndarray of dtype int8",
        ),
        (int, type[str], "expected type[str], got type (<class 'int'>)"),
    ],
)
def test_mismatch_describes_what_arrived(value: Any, annotation: Any, message: str) -> None:
    assert mismatch(value, annotation) == message


def test_long_values_are_shortened_in_the_message() -> None:
    message = mismatch("x" * 500, int)
    assert message is not None
    assert len(message) < 80
    assert message.endswith("...)")


def test_iterators_are_not_consumed() -> None:
    values = iter([1, 2, 3])
    assert mismatch(values, Iterator[str]) is None
    assert list(values) == [1, 2, 3]


def test_compiled_checker_is_reused_for_the_same_annotation() -> None:
    assert compile_checker(list[dict[str, int]]) is compile_checker(list[dict[str, int]])


def test_array_elements_are_never_visited() -> None:
    # An object array holding strings still passes a dtype-free annotation: only the
    # dtype and ndim are read, never the elements.
    assert mismatch(np.array(["a", "b"], dtype=object), np.ndarray) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4), max_size=20))
def test_every_batch_of_records_fits_records(records: list[dict[str, int]]) -> None:
    assert mismatch(records, Records) is None
    assert mismatch(records, list[dict[str, int]]) is None


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(), min_size=1, max_size=20),
    st.data(),
)
def test_one_bad_element_is_found_by_its_index(values: list[Any], data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    values[index] = "bad"
    assert mismatch(values, list[int]) == (
        f"element {index} of list: expected int, got str ('bad')"
    )


def test_an_unpacked_unbounded_tuple_checks_the_items_around_it() -> None:
    annotation = tuple[int, Unpack[tuple[str, ...]], float]
    assert mismatch((1, 2.0), annotation) is None
    assert mismatch((1, "a", "b", 2.0), annotation) is None
    assert mismatch((1, "a", b"b", 2.0), annotation) == (
        "item 2 of tuple: expected str, got bytes (b'b')"
    )
    assert mismatch((1,), annotation) == (
        "expected tuple[int, *tuple[str, ...], float] (at least 2 items), got a tuple of 1 items"
    )


def test_a_type_guard_returns_a_bool_at_run_time() -> None:
    assert mismatch(True, TypeGuard[int]) is None
    assert mismatch(1, TypeIs[int]) == "expected bool, got int (1)"
