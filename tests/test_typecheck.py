"""The type-compatibility engine: every rule, both verdicts, and the laws it obeys."""

# The old spellings (Optional, Union, typing.List) are part of what is under test.
# ruff: noqa: UP006, UP007, UP045

from __future__ import annotations

import collections
import dataclasses
import enum
import numbers
import random
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, MutableSequence, Sequence
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    Optional,
    Protocol,
    TypeVar,
    Union,
)
from unittest import mock

import attrs
import numpy as np
import numpy.typing as npt
import pytest
import typing_extensions as te
from hypothesis import given, settings
from hypothesis import strategies as st
from mypy import api as mypy_api
from numpy.typing import NDArray
from typing_extensions import NotRequired, Required, TypeAliasType, TypedDict

from packflow import typecheck
from packflow._types import rules
from packflow.typecheck import Status, check, explain, format_type, is_compatible, substitute

UserId = NewType("UserId", int)
AdminId = NewType("AdminId", UserId)
T = TypeVar("T")
Num = TypeVar("Num", bound=float)
Text = TypeVar("Text", str, bytes)
K = TypeVar("K")
V = TypeVar("V")


class Movie(TypedDict):
    name: str
    year: int


class MovieDraft(TypedDict, total=False):
    name: Required[str]
    year: int


class Film(TypedDict):
    name: str
    year: int
    rating: NotRequired[float]


class Rated(TypedDict):
    name: str
    rating: float


class Page(TypedDict, Generic[T]):
    items: list[T]
    total: int


class Series:
    """Like pandas.Series: subscriptable through __class_getitem__, not Generic."""

    def __class_getitem__(cls, item: Any) -> Any:
        return types.GenericAlias(cls, item)


class Reading(TypedDict):
    values: Optional[list[Optional[float]]]


class Sensor(TypedDict):
    id: int
    last: NotRequired[Optional[Reading]]


class Scores(TypedDict):
    low: float
    high: float


@attrs.frozen
class Point:
    x: float
    y: float


@attrs.frozen
class Point3(Point):
    z: float


@attrs.frozen
class Label:
    text: str


class Box(Generic[T]):
    pass


T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class CoBox(Generic[T_co]):
    pass


class Sink(Generic[T_contra]):
    pass


class IntBox(Box[int]):
    pass


class Pair(Generic[K, V]):
    pass


class KeyedPair(Pair[str, T]):
    pass


class Coordinate(NamedTuple):
    x: int
    y: str


class Readable(Protocol):
    def read(self) -> bytes: ...


class File:
    def read(self) -> bytes:
        return b""


class Scorer(Protocol):
    def __call__(self, x: int, /) -> float: ...


class KeywordCallable(Protocol):
    """Its caller may write ``f(x=1)``, which a ``Callable`` cannot take."""

    def __call__(self, x: int) -> float: ...


class NamedScorer(Protocol):
    name: str

    def __call__(self, x: int) -> float: ...


class LinearScorer:
    def __call__(self, x: float) -> int:
        return 0


class Untyped(Any):  # type: ignore[misc]
    """Like a class whose base comes from an untyped library."""


class Animal:
    pass


class Dog(Animal):
    pass


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Ints = TypeAliasType("Ints", list[int])
Pair2 = TypeAliasType("Pair2", tuple[T, T], type_params=(T,))
# Recursive: the string value names the alias itself (``type JSON = ...`` from 3.12 on).
JSON = TypeAliasType("JSON", "dict[str, JSON] | list[JSON] | str | int | float | bool | None")
Tree = TypeAliasType("Tree", "T | list[Tree[T]]", type_params=(T,))


class MyReal(numbers.Real):  # type: ignore[misc]
    pass


class Named(Protocol):
    name: str


class HasName(Protocol):
    @property
    def name(self) -> str: ...


class NamedStr:
    name: str = "x"


class NamedInt:
    name: int = 1


class NamedLiteral:
    name: Literal["x"] = "x"


class NamedProperty:
    @property
    def name(self) -> str:
        return "x"


@dataclasses.dataclass(frozen=True)
class FrozenNamed:
    name: str


class TextFile:
    def read(self) -> str:
        return ""


class FileWithDefault:
    def read(self, size: int = -1) -> bytes:
        return b""


class Getter(Protocol[T_co]):
    def get(self) -> T_co: ...


class IntGetter:
    def get(self) -> int:
        return 0


class Box2(Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item

    def get(self) -> T:
        return self.item


class Slot(Protocol[T]):
    value: T


class IntSlot:
    value: int = 0


def _case(produced: Any, consumed: Any, expected: bool, rule: str) -> Any:
    return pytest.param(produced, consumed, expected, id=f"{rule}: {produced!r}->{consumed!r}")


RULES = [
    # Any and object
    _case(Any, int, True, "any"),
    _case(int, Any, True, "any"),
    _case(list[Any], list[int], True, "any"),
    _case(int, object, True, "object"),
    _case(list[int], object, True, "object"),
    _case(object, int, False, "object"),
    # nominal classes and the numeric tower
    _case(Dog, Animal, True, "nominal"),
    _case(Animal, Dog, False, "nominal"),
    _case(int, str, False, "nominal"),
    _case(bool, int, True, "tower"),
    _case(int, float, True, "tower"),
    _case(bool, float, True, "tower"),
    _case(int, complex, True, "tower"),
    _case(float, complex, True, "tower"),
    _case(float, int, False, "tower"),
    _case(complex, float, False, "tower"),
    _case(int, bool, False, "tower"),
    _case(Untyped, int, True, "Any base"),
    _case(int, Untyped, False, "Any base"),
    # None
    _case(None, None, True, "none"),
    _case(type(None), None, True, "none"),
    _case(None, int, False, "none"),
    _case(int, None, False, "none"),
    # unions and Optional
    _case(int, Optional[int], True, "union"),
    _case(int, int | None, True, "union"),
    _case(None, Optional[int], True, "union"),
    _case(Optional[int], int, False, "union"),
    _case(int | str, int, False, "union"),
    _case(int | str, float | str, True, "union"),
    _case(bool | int, float, True, "union"),
    _case(Union[int, str], str | int, True, "union"),
    _case(int | str, int | bytes, False, "union"),
    _case(list[int] | None, Sequence[float] | None, True, "union"),
    # generics: aliases, bare = Any, covariance
    _case(typing.List[int], list[int], True, "alias"),
    _case(list[int], typing.List[int], True, "alias"),
    _case(typing.Sequence[int], Sequence[int], True, "alias"),
    _case(typing.Dict[str, int], dict[str, int], True, "alias"),
    _case(list, list[int], True, "bare"),
    _case(list[int], list, True, "bare"),
    _case(typing.Sequence, Sequence[int], True, "bare"),
    _case(dict, Mapping[str, int], True, "bare"),
    _case(list[int], Sequence[float], True, "covariant"),
    _case(list[int], list[float], True, "covariant"),
    _case(dict[str, int], dict[str, float], True, "covariant"),
    _case(list[str], list[int], False, "covariant"),
    _case(Sequence[int], list[int], False, "covariant"),
    _case(list[int], set[int], False, "covariant"),
    _case(list[int], MutableSequence[int], True, "covariant"),
    _case(list[list[dict[str, int]]], list[list[dict[str, float]]], True, "nested"),
    _case(list[list[dict[str, int]]], list[list[dict[str, str]]], False, "nested"),
    _case(collections.deque[int], Sequence[int], True, "abc"),
    _case(collections.Counter[str], Mapping[str, int], True, "abc"),
    _case(frozenset[int], Iterable[float], True, "abc"),
    _case(set[int], Sequence[int], False, "abc"),
    _case(IntBox, Box[int], True, "user generic"),
    _case(IntBox, Box[float], False, "invariant user generic"),
    _case(IntBox, Box[str], False, "user generic"),
    _case(Series, Series[int], True, "class_getitem generic"),  # type: ignore[misc]
    _case(Series[int], Series, True, "class_getitem generic"),  # type: ignore[misc]
    _case(Series[int], Series[float], True, "class_getitem generic"),  # type: ignore[misc]
    _case(Series[str], Series[int], False, "class_getitem generic"),  # type: ignore[misc]
    _case(Box[int], Box[float], False, "invariant user generic"),
    _case(Box[int], Box[Any], True, "invariant user generic"),
    _case(CoBox[int], CoBox[float], True, "covariant user generic"),
    _case(CoBox[float], CoBox[int], False, "covariant user generic"),
    _case(Sink[float], Sink[int], True, "contravariant user generic"),
    _case(Sink[int], Sink[float], False, "contravariant user generic"),
    _case(Box[str], Box[int], False, "user generic"),
    _case(KeyedPair[int], Pair[str, int], True, "user generic"),
    _case(KeyedPair[int], Pair[str, float], False, "invariant user generic"),
    _case(KeyedPair[int], Pair[str, str], False, "user generic"),
    # mypy's reference semantics where the design is silent
    _case(str, Sequence[str], True, "str"),
    _case(str, Iterable[str], True, "str"),
    _case(str, Sequence[int], False, "str"),
    _case(bytes, Sequence[int], True, "bytes"),
    _case(dict[str, int], Iterable[str], True, "mapping keys"),
    _case(dict[str, int], Iterable[int], False, "mapping keys"),
    _case(dict[str, int], Mapping[str, float], True, "mapping"),
    _case(Mapping[str, int], dict[str, int], False, "mapping"),
    _case(dict[int, str], Mapping[str, str], False, "mapping"),
    _case(Mapping[int, str], Mapping[float, str], True, "mapping keys covariant (mypy: no)"),
    _case(Mapping[float, str], Mapping[int, str], False, "mapping keys covariant"),
    # tuples
    _case(tuple[int, str], tuple[int, str], True, "tuple"),
    _case(tuple[int, int], tuple[float, float], True, "tuple"),
    _case(tuple[int, str], tuple[int], False, "tuple"),
    _case(tuple[int, str], tuple[str, int], False, "tuple"),
    _case(tuple[int, int], tuple[int, ...], True, "tuple"),
    _case(tuple[int, str], tuple[int, ...], False, "tuple"),
    _case(tuple[int, ...], tuple[int, int], False, "tuple"),
    _case(tuple[int, ...], tuple[float, ...], True, "tuple"),
    _case(tuple[()], tuple[int, ...], True, "tuple"),
    _case(tuple[()], tuple[int], False, "tuple"),
    _case(tuple, tuple[int, int], True, "bare tuple is tuple[Any, ...]"),
    _case(tuple[Any, ...], tuple[int, int, int], True, "bare tuple is tuple[Any, ...]"),
    _case(tuple[int, ...], tuple[int, int, int], False, "tuple"),
    _case(tuple[int, str], tuple, True, "tuple"),
    _case(tuple[int, str], Sequence[int | str], True, "tuple"),
    _case(tuple[int, str], Sequence[int], False, "tuple"),
    _case(typing.Tuple[int, ...], Sequence[float], True, "tuple"),
    _case(Coordinate, tuple[int, str], True, "namedtuple"),
    _case(Coordinate, tuple[int, int], False, "namedtuple"),
    _case(list[int], tuple[int, ...], False, "tuple"),
    # Literal
    _case(Literal["a"], str, True, "literal"),
    _case(Literal["a", "b"], str, True, "literal"),
    _case(Literal[1], float, True, "literal"),
    _case(Literal["a"], Literal["a", "b"], True, "literal"),
    _case(Literal["a", "b"], Literal["a"], False, "literal"),
    _case(str, Literal["a"], False, "literal"),
    _case(Literal["a"], int, False, "literal"),
    _case(Literal[1], Literal[True], False, "literal"),
    _case(Literal[Color.RED], Color, True, "literal enum"),
    _case(Literal[Color.RED], Literal[Color.RED, Color.BLUE], True, "literal enum"),
    _case(Literal[Color.RED], Literal[Color.BLUE], False, "literal enum"),
    _case(Color, Literal[Color.RED], False, "literal enum"),
    # type aliases (TypeAliasType, PEP 695), recursive ones included
    _case(Ints, list[float], True, "alias type"),
    _case(Ints, list[str], False, "alias type"),
    _case(list[int], Ints, True, "alias type"),
    _case(list[str], Ints, False, "alias type"),
    _case(Pair2[int], tuple[float, float], True, "generic alias type"),
    _case(Pair2[str], tuple[int, int], False, "generic alias type"),
    _case(tuple[int, str], Pair2[int], False, "generic alias type"),
    _case(JSON, JSON, True, "recursive alias"),
    _case(dict[str, list[dict[str, int | None]]], JSON, True, "recursive alias"),
    _case(bytes, JSON, False, "recursive alias"),
    _case(dict[str, list[bytes]], JSON, False, "recursive alias"),
    _case(list[list[int]], Tree[int], True, "recursive alias"),
    _case(list[list[str]], Tree[int], False, "recursive alias"),
    _case(Tree[int], Tree[float], True, "recursive alias"),
    _case(Tree[float], Tree[int], False, "recursive alias"),
    # Annotated and NewType
    _case(Annotated[int, "meta"], int, True, "annotated"),
    _case(int, Annotated[int, "meta"], True, "annotated"),
    _case(Annotated[str, "meta"], int, False, "annotated"),
    _case(UserId, int, True, "newtype"),
    _case(UserId, float, True, "newtype"),
    _case(int, UserId, False, "newtype"),
    _case(AdminId, UserId, True, "newtype"),
    _case(UserId, AdminId, False, "newtype"),
    _case(list[UserId], list[int], True, "newtype"),
    # TypedDict
    _case(Movie, Movie, True, "typeddict"),
    _case(Film, Movie, True, "typeddict"),
    _case(Movie, Film, False, "typeddict"),  # mypy: a missing optional key could hold anything
    _case(Movie, MovieDraft, True, "typeddict"),
    _case(Rated, Film, False, "typeddict"),  # Film also requires 'year'
    _case(Film, Rated, False, "typeddict NotRequired"),
    _case(Film, Film, True, "typeddict NotRequired"),
    _case(MovieDraft, Movie, False, "typeddict"),
    _case(Movie, Scores, False, "typeddict"),
    _case(Movie, dict[str, Any], True, "typeddict"),
    _case(Movie, Mapping[str, object], True, "typeddict"),
    _case(Movie, dict, True, "typeddict"),
    _case(Scores, Mapping[str, float], False, "typeddict values are only object (mypy)"),
    _case(Movie, Mapping[str, Any], True, "typeddict"),
    _case(Movie, dict[str, object], False, "typeddict: only dict[str, Any]"),
    _case(Movie, typing.MutableMapping[str, object], False, "typeddict is read-only"),
    _case(Movie, Iterable[str], True, "typeddict iterates its keys"),
    _case(Movie, Mapping[str, int], False, "typeddict"),
    _case(Movie, dict[int, Any], False, "typeddict"),
    _case(dict[str, Any], Movie, True, "typeddict"),
    _case(dict, Movie, True, "typeddict"),
    _case(dict[str, int | str], Movie, False, "typeddict: only dict[str, Any]"),
    _case(Mapping[str, object], Movie, False, "typeddict: only dict[str, Any]"),
    _case(Optional[Mapping[str, object]], Movie, False, "typeddict: only dict[str, Any]"),
    _case(Mapping[str, Any], Movie, False, "typeddict: only dict[str, Any]"),
    _case(dict[str, object], Movie, False, "typeddict: only dict[str, Any]"),
    _case(collections.defaultdict[str, Any], Movie, True, "typeddict: a dict subclass"),
    _case(dict[str, int], Movie, False, "typeddict"),
    _case(dict[int, Any], Movie, False, "typeddict"),
    _case(list[dict[str, Any]], list[Movie], True, "typeddict"),
    _case(str, Movie, False, "typeddict"),
    _case(Page[int], Page[float], True, "generic typeddict"),
    _case(Page[str], Page[int], False, "generic typeddict"),
    _case(dict[str, Any], Page[int], True, "generic typeddict"),
    _case(dict[str, str], Page[int], False, "generic typeddict"),
    _case(Page[int], Mapping[str, object], True, "generic typeddict"),
    _case(Sensor, Sensor, True, "typeddict nested Optional"),
    _case(dict[str, Any], Sensor, True, "typeddict nested Optional"),
    _case(dict[str, int | dict[str, Any] | None], Sensor, False, "typeddict nested Optional"),
    _case(dict[str, str], Sensor, False, "typeddict nested Optional"),
    _case(Sensor, dict[str, int | Reading | None], False, "typeddict: only dict[str, Any]"),
    _case(Sensor, dict[str, int | Reading], False, "typeddict nested Optional"),
    # TypeVars
    _case(int, T, True, "typevar"),
    _case(list[int], list[T], True, "typevar"),
    _case(int, Num, True, "typevar bound"),
    _case(str, Num, False, "typevar bound"),
    _case(str, Text, True, "typevar constraints"),
    _case(int, Text, False, "typevar constraints"),
    _case(tuple[int, str], tuple[T, T], True, "typevar join"),
    _case(tuple[int, str], tuple[Num, Num], False, "typevar join"),
    # numpy
    _case(NDArray[np.float64], NDArray[np.float64], True, "numpy"),
    _case(NDArray[np.float64], NDArray[np.float32], False, "numpy"),
    _case(NDArray[np.float32], NDArray[np.floating], True, "numpy"),
    _case(NDArray[np.float32], NDArray[np.floating[Any]], True, "numpy"),
    _case(NDArray[np.int64], NDArray[np.floating], False, "numpy"),
    _case(NDArray[np.int64], NDArray[np.integer], True, "numpy"),
    _case(NDArray[np.float64], NDArray[np.generic], True, "numpy"),
    _case(NDArray[np.float64], np.ndarray, True, "numpy"),
    _case(NDArray[np.float64], NDArray[Any], True, "numpy"),
    _case(NDArray[np.float64], NDArray, True, "numpy"),
    _case(np.ndarray, NDArray[np.float64], True, "numpy"),
    _case(NDArray[Any], NDArray[np.float32], True, "numpy"),
    _case(NDArray[np.float64], np.ndarray[Any, np.dtype[np.float64]], True, "numpy"),
    _case(NDArray[np.float32], NDArray[np.float32 | np.float64], True, "numpy dtype union"),
    _case(NDArray[np.int64], NDArray[np.float32 | np.float64], False, "numpy dtype union"),
    _case(NDArray[np.float32 | np.float64], NDArray[np.floating], True, "numpy dtype union"),
    _case(NDArray[np.float32 | np.int8], NDArray[np.floating], False, "numpy dtype union"),
    _case(
        np.ndarray[Any, np.dtype[np.float32 | np.float64]],
        NDArray[np.float64],
        False,
        "numpy dtype union",
    ),
    _case(list[float], NDArray[np.float64], False, "numpy"),
    _case(list[dict[str, Any]], np.ndarray, False, "numpy"),
    _case(NDArray[np.float64], list[float], False, "numpy"),
    _case(NDArray[np.float64], Iterable[Any], True, "numpy"),
    # attrs classes
    _case(Point, Point, True, "attrs"),
    _case(Point3, Point, True, "attrs"),
    _case(Point, Point3, False, "attrs"),
    _case(Point, Label, False, "attrs"),
    _case(list[Point3], Sequence[Point], True, "attrs"),
    _case(dict[str, Any], Point, False, "attrs"),
    # Callable
    _case(Callable[[int], str], Callable[[int], str], True, "callable"),
    _case(Callable[[int], str], Callable[[int], object], True, "callable"),
    _case(Callable[[float], str], Callable[[int], str], True, "callable"),
    _case(Callable[[int], str], Callable[[float], str], False, "callable"),
    _case(Callable[[int], str], Callable[[int], int], False, "callable"),
    _case(Callable[[int], str], Callable[[int, int], str], False, "callable"),
    _case(Callable[..., str], Callable[[int], str], True, "callable"),
    _case(Callable[[int], str], Callable[..., str], True, "callable"),
    _case(Callable[[int], str], Callable, True, "callable"),
    _case(type[int], Callable[..., int], True, "callable"),
    _case(type[int], Callable[..., str], False, "callable"),
    _case(int, Callable[..., Any], False, "callable"),
    _case(Callable[[int], str], int, False, "callable"),
    # generators and coroutines
    _case(typing.Iterator[int], Iterable[float], True, "iterator"),
    _case(typing.Generator[int, None, None], typing.Iterator[int], True, "generator"),
    _case(typing.Generator[int, None, None], typing.Iterator[str], False, "generator"),
    _case(typing.Iterator[int], typing.Generator[int, None, None], False, "generator"),
    _case(list[int], typing.Iterator[int], False, "iterator"),
    _case(typing.AsyncIterator[int], typing.AsyncIterable[float], True, "async iterator"),
    _case(typing.AsyncIterator[int], Iterable[int], False, "async iterator"),
    _case(typing.Coroutine[Any, Any, int], typing.Awaitable[float], True, "coroutine"),
    _case(typing.Coroutine[Any, Any, str], typing.Awaitable[int], False, "coroutine"),
    # type[...]
    _case(type[bool], type[int], True, "type"),
    _case(type[int], type[str], False, "type"),
    # Protocols (structural)
    _case(File, Readable, True, "protocol"),
    _case(int, Readable, False, "protocol"),
    _case(int, typing.SupportsFloat, True, "protocol"),
    _case(Callable[[int], float], Scorer, True, "callback protocol"),
    _case(Callable[[int], str], Scorer, False, "callback protocol"),
    _case(Callable[[str], float], Scorer, False, "callback protocol"),
    _case(Scorer, Callable[[int], float], True, "callback protocol"),
    _case(Callable[[int], float], NamedScorer, False, "protocol with more than __call__"),
    _case(Callable[[int], float], KeywordCallable, False, "callback protocol by name"),
    _case(Callable[..., float], KeywordCallable, True, "callback protocol by name"),
    _case(LinearScorer, Callable[[int], float], True, "callable instance"),
    _case(LinearScorer, Callable[[int], str], False, "callable instance"),
    _case(LinearScorer, Scorer, True, "callable instance"),
    # numbers ABCs: mypy sees declared bases only, not run-time registration
    _case(int, numbers.Number, False, "numbers ABC"),
    _case(complex, numbers.Number, False, "numbers ABC"),
    _case(list[float], Sequence[numbers.Real], False, "numbers ABC"),
    _case(numbers.Integral, numbers.Number, True, "numbers ABC"),
    _case(MyReal, numbers.Real, True, "numbers ABC"),
    # Protocols compare member types; a settable attribute is invariant
    _case(NamedStr, Named, True, "protocol attribute"),
    _case(NamedInt, Named, False, "protocol attribute"),
    _case(NamedLiteral, Named, False, "protocol settable attribute is invariant"),
    _case(NamedProperty, Named, False, "protocol settable attribute, read-only property"),
    _case(FrozenNamed, Named, False, "protocol settable attribute, frozen dataclass"),
    _case(NamedProperty, HasName, True, "protocol read-only attribute"),
    _case(NamedLiteral, HasName, True, "protocol read-only attribute is covariant"),
    _case(NamedInt, HasName, False, "protocol read-only attribute"),
    _case(TextFile, Readable, False, "protocol method return type"),
    _case(FileWithDefault, Readable, True, "protocol method with a default parameter"),
    # generic protocols: TypeVars solved against the producer's members
    _case(IntGetter, Getter[int], True, "generic protocol"),
    _case(IntGetter, Getter[float], True, "generic protocol (covariant)"),
    _case(IntGetter, Getter[str], False, "generic protocol"),
    _case(Box2[int], Getter[int], True, "generic protocol, generic producer"),
    _case(Box2[str], Getter[int], False, "generic protocol, generic producer"),
    _case(IntSlot, Slot[int], True, "generic protocol, settable attribute"),
    _case(IntSlot, Slot[float], False, "generic protocol, settable attribute"),
    _case(bool, typing.SupportsAbs[int], True, "SupportsAbs"),
    _case(complex, typing.SupportsAbs[float], True, "SupportsAbs"),
    _case(str, typing.SupportsAbs[int], False, "SupportsAbs"),
    _case(int, typing.SupportsAbs[str], False, "SupportsAbs"),
    # Enum and bool are the unions of their literals
    _case(Color, Literal[Color.RED, Color.BLUE], True, "enum as literal union"),
    _case(Color, Literal[Color.RED, Color.BLUE] | None, True, "enum as literal union"),
    _case(Color, Literal[Color.RED], False, "enum as literal union"),
    _case(bool, Literal[True, False], True, "bool as literal union"),
    _case(bool, Literal[True], False, "bool as literal union"),
    # a class is a callable returning its instances, with its constructor's parameters
    _case(type[Dog], Callable[[], Animal], True, "type as callable"),
    _case(type[Animal], Callable[[], Dog], False, "type as callable"),
    _case(type[Point], Callable[[float, float], Point], True, "type as callable"),
    _case(type[Point], Callable[[str, float], Point], False, "type as callable"),
    _case(type[Point], Callable[[float], Point], False, "type as callable"),
    _case(type[Point], Callable[..., Point], True, "type as callable"),
]


@pytest.mark.parametrize(("produced", "consumed", "expected"), RULES)
def test_rule_table(produced: Any, consumed: Any, expected: bool) -> None:
    assert is_compatible(produced, consumed) is expected
    assert (explain(produced, consumed) is None) is expected


@pytest.mark.parametrize(
    ("produced", "consumed", "explanation"),
    [
        (list[str], list[int], "element type of list: str is not int"),
        (
            dict[str, list[str]],
            dict[str, list[int]],
            "value type of dict: element type of list: str is not int",
        ),
        (NDArray[np.float64], NDArray[np.float32], "dtype of ndarray: float64 is not float32"),
        (tuple[int, str], tuple[int, int], "item 1 of tuple: str is not int"),
        (tuple[int, str], tuple[int], "tuple[int, str] has 2 items, tuple[int] needs 1"),
        (Optional[int], int, "None is not int (a member of the union int | None)"),
        (MovieDraft, Movie, "key 'year' is required in Movie but not in MovieDraft"),
        (Callable[[int], str], Callable[[int], int], "return type of Callable: str is not int"),
        (str, Num, "str is outside the bound of Num: str is not float"),
        (int, Text, "int fits none of the constraints of Text (str, bytes)"),
    ],
)
def test_explain_names_the_failing_sub_type(
    produced: Any, consumed: Any, explanation: str
) -> None:
    assert explain(produced, consumed) == explanation


def test_not_required_key_is_read_even_under_future_annotations() -> None:
    assert explain(Film, Rated) == "key 'rating' is required in Rated but not in Film"


def test_explain_says_why_an_optional_consumer_rejects() -> None:
    assert explain(list[int], Optional[list[str]]) == (
        "list[int] is not list[str] | None: element type of list: int is not str"
    )


def test_explain_suggests_wrapping_a_newtype() -> None:
    assert explain(int, UserId) == "int is not UserId (a NewType: wrap the value with UserId(...))"


def test_explain_names_the_missing_protocol_member() -> None:
    assert explain(int, Readable) == "int lacks read required by protocol Readable"


@dataclasses.dataclass
class NamedRecord:
    name: str


class SetsNameInInit:
    def __init__(self) -> None:
        self.name = "x"


class SetsNameFromParameter:
    def __init__(self, name: str) -> None:
        self.name = name


class SetsNumberAsName:
    def __init__(self, number: int) -> None:
        self.name = number


def _make_name() -> str:
    return "x"


class SetsNameSomehow:
    def __init__(self) -> None:
        self.name = _make_name()


class SetsNothing:
    def __init__(self) -> None:
        self.size = 1


def test_protocol_data_member_is_found_in_a_dataclass_field() -> None:
    assert check(NamedRecord, Named).status is Status.COMPATIBLE


def test_protocol_data_member_set_in_init_is_read_from_the_source() -> None:
    assert check(SetsNameInInit, Named).status is Status.COMPATIBLE
    assert check(SetsNameFromParameter, Named).status is Status.COMPATIBLE
    assert explain(SetsNumberAsName, Named) == ("member 'name' of protocol Named: int is not str")
    assert explain(SetsNothing, Named) == "SetsNothing lacks name required by protocol Named"


def test_protocol_data_member_of_a_type_the_source_does_not_say_is_unknown() -> None:
    verdict = check(SetsNameSomehow, Named)
    assert verdict.status is Status.UNKNOWN
    assert verdict.reason == "cannot read the type of SetsNameSomehow.name (protocol Named)"


def test_protocol_data_member_missing_from_a_closed_class_fails() -> None:
    assert explain(int, Named) == "int lacks name required by protocol Named"


def test_explain_qualifies_a_class_named_like_a_builtin() -> None:
    assert explain(np.bool_, bool) == "numpy.bool is not bool"


def test_explain_qualifies_two_classes_of_the_same_name() -> None:
    first = type("Record", (), {"__module__": "shop"})
    second = type("Record", (), {"__module__": "crm"})
    assert explain(list[first], list[second]) == (  # type: ignore[valid-type]
        "element type of list: shop.Record is not crm.Record"
    )


def test_enum_literal_reads_as_written() -> None:
    assert explain(Color, Literal[Color.RED]) == (
        "Color is not Literal[Color.RED] (only the literal value itself fits)"
    )


def test_unresolved_forward_reference_reads_as_its_name() -> None:
    assert format_type(Optional[typing.ForwardRef("Missing")]) == "Missing | None"


def test_an_alias_reads_as_its_name() -> None:
    assert format_type(list[JSON]) == "list[JSON]"
    assert format_type(Tree[int]) == "Tree[int]"
    assert format_type(Pair2[NDArray[np.float32]]) == "Pair2[NDArray[float32]]"


def test_explain_expands_a_recursive_alias_to_the_failing_member() -> None:
    members = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
    assert explain(dict[str, bytes], JSON) == (
        f"dict[str, bytes] is not {members}: value type of dict: bytes is not {members} "
        "(it fits none of the union's members)"
    )


def test_explain_names_a_recursive_alias_producer_once() -> None:
    assert explain(dict[str, JSON], dict[str, dict[str, int] | float | None]) == (
        "value type of dict: dict[str, JSON] is not dict[str, int] | float | None: "
        "value type of dict: dict[str, JSON] is not int (a member of the union JSON)"
    )


def test_a_recursive_alias_producer_solves_a_typevar_as_a_whole() -> None:
    assert check(JSON, T).bindings[T] is JSON


def test_explain_follows_the_union_member_that_failed_deep_inside() -> None:
    assert explain(list[str], list[int] | tuple[int, ...]) == (
        "list[str] is not list[int] | tuple[int, ...]: element type of list: str is not int"
    )
    assert explain(bytes, int | str) == (
        "bytes is not int | str (it fits none of the union's members)"
    )


def test_alias_naming_an_undefined_name_is_unknown_with_a_note() -> None:
    broken = TypeAliasType("Broken", "list[Undefined]")  # noqa: F821 - undefined on purpose
    verdict = check(list[int], broken)
    assert verdict.status is Status.UNKNOWN
    assert verdict.reason is not None
    assert "cannot expand the alias Broken" in verdict.reason
    assert "Undefined" in verdict.reason


def test_a_typevar_bound_that_cannot_be_resolved_makes_the_verdict_unknown() -> None:
    unresolved = TypeVar("unresolved", bound="Nowhere")  # noqa: F821 - unresolvable on purpose
    verdict = check(int, unresolved)
    assert verdict.status is Status.UNKNOWN
    assert verdict.reason == (
        "bound of unresolved: the forward reference 'Nowhere' was not resolved"
    )


def test_bare_annotated_is_unknown() -> None:
    assert check(Annotated, int).status is Status.UNKNOWN


def test_dtype_union_reads_as_a_union() -> None:
    assert format_type(NDArray[np.float32 | np.float64]) == "NDArray[float32 | float64]"


def test_generic_typeddict_names_its_arguments() -> None:
    assert explain(Page[str], Page[int]) == (
        "key 'items' of Page[int]: element type of list: str is not int"
    )


def test_bare_class_getitem_generic_means_any_arguments() -> None:
    assert check(Series, Series[int]).status is Status.COMPATIBLE  # type: ignore[misc]


def test_typevar_solution_is_returned_in_bindings() -> None:
    verdict = check(NDArray[np.float32], T)
    assert verdict.status is Status.COMPATIBLE
    assert verdict.bindings[T] == NDArray[np.float32]


def test_typevar_is_solved_inside_a_container() -> None:
    assert check(dict[str, list[int]], Mapping[K, Sequence[V]]).bindings == {K: str, V: int}


def test_typevar_already_bound_must_still_fit() -> None:
    verdict = check(str, Num, {Num: int})
    assert verdict.status is Status.INCOMPATIBLE


def test_typevar_constraint_is_the_solution() -> None:
    class Name(str):
        pass

    assert check(Name, Text).bindings[Text] is str


def test_none_into_an_optional_typevar_leaves_the_typevar_unsolved() -> None:
    verdict = check(None, Optional[T])
    assert verdict.status is Status.COMPATIBLE
    assert T not in verdict.bindings


def test_typevar_widens_to_cover_two_solutions() -> None:
    assert check(tuple[int, float], tuple[T, T]).bindings[T] is float


def test_unsolved_typevar_on_the_producing_side_is_unknown_and_passes() -> None:
    assert is_compatible(T, int)


def test_substitute_replaces_bound_typevars() -> None:
    assert substitute(dict[str, list[T]], {T: int}) == dict[str, list[int]]
    assert substitute(T, {T: NDArray[np.float32]}) == NDArray[np.float32]


def test_substitute_keeps_unbound_typevars() -> None:
    assert substitute(list[T], {K: int}) == list[T]


def test_unresolved_forward_reference_is_unknown_not_incompatible() -> None:
    verdict = check("Missing", int)
    assert verdict.status is Status.UNKNOWN
    assert verdict.reason is not None
    assert "Missing" in verdict.reason


P = te.ParamSpec("P")


@te.runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


class Resource:
    def close(self) -> None:
        pass


@attrs.frozen
class Wrapped(Generic[T]):
    item: T


class DataFrame:
    """An unknown third-party class, like pandas.DataFrame."""


COMPATIBLE, INCOMPATIBLE, UNKNOWN = Status.COMPATIBLE, Status.INCOMPATIBLE, Status.UNKNOWN

CONSTRUCTS = [
    (Resource, Closeable, COMPATIBLE),
    (int, Closeable, INCOMPATIBLE),
    (te.Self, int, UNKNOWN),
    (int, te.Self, UNKNOWN),
    (P, int, UNKNOWN),
    (Callable[P, int], Callable[[int], float], UNKNOWN),
    (Callable[P, str], Callable[[int], int], INCOMPATIBLE),
    (Callable[te.Concatenate[int, P], int], Callable[..., float], COMPATIBLE),
    (Callable[[int], int], Callable[te.Concatenate[int, P], str], INCOMPATIBLE),
    (te.TypeAlias, int, UNKNOWN),
    (tuple[te.Unpack[tuple[int, ...]]], tuple[int, ...], COMPATIBLE),
    (te.Unpack[tuple[int, str]], int, UNKNOWN),
    (te.TypeGuard[int], bool, COMPATIBLE),
    (te.TypeGuard[int], str, INCOMPATIBLE),
    (type[bool], typing.Type[int], COMPATIBLE),
    (typing.Type[int], type[str], INCOMPATIBLE),
    (type[Dog], type, COMPATIBLE),
    (type[Dog], Animal, INCOMPATIBLE),
    (typing.Iterator[int], Iterable[float], COMPATIBLE),
    (typing.Generator[str, None, None], Iterable[int], INCOMPATIBLE),
    (typing.AsyncIterator[int], typing.AsyncIterator[float], COMPATIBLE),
    (te.Final[int], float, COMPATIBLE),
    (int, te.Final[str], INCOMPATIBLE),
    (typing.ClassVar[list[int]], list[float], COMPATIBLE),
    (typing.ClassVar[int], str, INCOMPATIBLE),
    (te.LiteralString, str, COMPATIBLE),
    (te.LiteralString, bytes, INCOMPATIBLE),
    (te.Never, NDArray[np.float32], COMPATIBLE),
    (typing.NoReturn, int, COMPATIBLE),
    (int, te.Never, INCOMPATIBLE),
    (Literal[Color.RED], Color, COMPATIBLE),
    (Literal[Color.RED], Literal[Color.BLUE], INCOMPATIBLE),
    (npt.NDArray[np.float64], npt.ArrayLike, UNKNOWN),
    (npt.ArrayLike, NDArray[np.float64], INCOMPATIBLE),
    (str, npt.ArrayLike, COMPATIBLE),
    (np.ndarray[Any, np.dtype[np.float32]], NDArray[np.float32], COMPATIBLE),
    (np.ndarray[Any, np.dtype[np.float32]], NDArray[np.float64], INCOMPATIBLE),
    (NDArray[np.float64] | None, NDArray[np.float64], INCOMPATIBLE),
    (NDArray[np.float64], NDArray[np.float64] | None, COMPATIBLE),
    (DataFrame, DataFrame, COMPATIBLE),
    (DataFrame, list[dict[str, Any]], INCOMPATIBLE),
    (list[dict[str, Any]], DataFrame, INCOMPATIBLE),
    ("DataFrame", DataFrame, UNKNOWN),
    (list[typing.ForwardRef("DataFrame")], list[DataFrame], UNKNOWN),
    (Wrapped[int], Wrapped[int], COMPATIBLE),
    (Wrapped[int], Wrapped[float], INCOMPATIBLE),
    (list[Wrapped[str]], Sequence[Wrapped[int]], INCOMPATIBLE),
]


@pytest.mark.parametrize(("produced", "consumed", "status"), CONSTRUCTS, ids=repr)
def test_construct_users_write_gets_a_verdict_or_a_note(
    produced: Any, consumed: Any, status: Status
) -> None:
    verdict = check(produced, consumed)
    assert verdict.status is status
    assert (verdict.reason is None) is (status is Status.COMPATIBLE)
    assert format_type(produced) and format_type(consumed)


def test_array_like_reads_as_its_name() -> None:
    explanation = explain(npt.ArrayLike, NDArray[np.float64])
    assert explanation is not None
    assert explanation.endswith("(a member of the union ArrayLike)")


@pytest.mark.parametrize("exotic", [3, "x[", typing.Generic, Ellipsis, object()])
def test_exotic_construct_gives_unknown_never_a_crash(exotic: Any) -> None:
    assert check(exotic, int).status is Status.UNKNOWN
    assert check(int, exotic).status is Status.UNKNOWN
    assert is_compatible(exotic, int)


def test_a_deeply_nested_type_still_fits_itself() -> None:
    deep: Any = int
    for _ in range(80):
        deep = list[deep]
    assert check(deep, deep).status is Status.COMPATIBLE
    assert check(deep, list).status is Status.COMPATIBLE


def test_unhashable_annotation_metadata_is_fine() -> None:
    assert is_compatible(Annotated[int, {"unit": "m"}], float)


@pytest.mark.parametrize(
    ("tp", "text"),
    [
        (dict[str, list[int]], "dict[str, list[int]]"),
        (Optional[int], "int | None"),
        (NDArray[np.float32], "NDArray[float32]"),
        (np.ndarray, "ndarray"),
        (Literal["a", "b"], "Literal['a', 'b']"),
        (tuple[int, ...], "tuple[int, ...]"),
        (Callable[[int], str], "Callable[[int], str]"),
        (Movie, "Movie"),
        (UserId, "UserId"),
        (Any, "Any"),
        (None, "None"),
    ],
)
def test_format_type_is_readable(tp: Any, text: str) -> None:
    assert format_type(tp) == text


# --------------------------------------------------------------------------------------
# Type guards, parameter lists, TypeVar defaults, unpacked tuples, builtins' members
# (issue 26)

Ts = te.TypeVarTuple("Ts")
R = TypeVar("R")
Low = te.TypeVar("Low")
High = te.TypeVar("High", default=Low)
Measure = te.TypeVar("Measure", default=float)
Measure_co = te.TypeVar("Measure_co", covariant=True, default=float)


class Step(Generic[P, R]):
    """A callable class generic over its parameters, as decorators write them."""

    def __init__(self, result: R) -> None:
        self.result = result

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.result


class Window(Generic[Measure]): ...


class Reading(Generic[Measure_co]): ...


class Span(Generic[Low, High]): ...


class Array(Generic[te.Unpack[Ts]]): ...


class Labels(Protocol):
    def __getitem__(self, index: int, /) -> str: ...


class Counts(Protocol):
    def __getitem__(self, index: int, /) -> int: ...

    def __len__(self) -> int: ...


class Slices(Protocol):
    def __getitem__(self, index: slice, /) -> list[str]: ...


class KeywordScorer:
    def __call__(self, row: int, *, weight: float) -> float:
        return row * weight


class VariadicScorer:
    def __call__(self, *rows: int) -> float:
        return float(sum(rows))


class DefaultScorer:
    def __call__(self, row: int, scale: float = 1.0) -> float:
        return row * scale


Guard = Callable[[object], te.TypeGuard[int]]


def test_a_type_guard_is_a_bool_where_a_bool_is_wanted() -> None:
    assert check(te.TypeGuard[int], bool).status is COMPATIBLE
    assert check(Guard, Callable[[object], bool]).status is COMPATIBLE
    assert check(Callable[[object], te.TypeIs[int]], Callable[[object], bool]).ok


def test_a_plain_bool_callable_is_no_type_guard() -> None:
    verdict = check(Callable[[Any], bool], Callable[[object], te.TypeIs[bool]])
    assert verdict.status is INCOMPATIBLE
    assert "only a type guard is a type guard" in str(verdict.reason)
    # As in mypy, even a callable returning Any does not narrow.
    assert check(Callable[[object], Any], Guard).status is INCOMPATIBLE


def test_typeguard_is_covariant_in_its_guarded_type() -> None:
    assert check(Callable[[object], te.TypeGuard[bool]], Guard).status is COMPATIBLE
    verdict = check(Callable[[object], te.TypeGuard[float]], Guard)
    assert verdict.reason == (
        "return type of Callable: guarded type of TypeGuard[int]: float is not int"
    )


def test_typeis_is_invariant_in_its_guarded_type() -> None:
    assert check(te.TypeIs[int], te.TypeIs[int]).status is COMPATIBLE
    verdict = check(te.TypeIs[bool], te.TypeIs[int])
    assert verdict.status is INCOMPATIBLE
    assert "TypeIs is invariant" in str(verdict.reason)


def test_typeguard_and_typeis_do_not_stand_for_each_other() -> None:
    assert check(te.TypeIs[int], te.TypeGuard[int]).status is INCOMPATIBLE
    assert check(te.TypeGuard[int], te.TypeIs[int]).status is INCOMPATIBLE


def test_concatenate_prefix_is_compared_with_the_arguments_passed() -> None:
    loose = Callable[te.Concatenate[int, ...], float]
    assert check(loose, Callable[[int, str], float]).status is COMPATIBLE
    verdict = check(Callable[te.Concatenate[bool, ...], float], Callable[[str], float])
    assert verdict.reason == "parameter 1 of Callable: str is not bool"
    verdict = check(loose, Callable[[], float])
    assert verdict.status is INCOMPATIBLE
    assert "takes at least 1 argument" in str(verdict.reason)
    assert check(Callable[[], float], loose).status is INCOMPATIBLE


def test_a_paramspec_generic_class_is_called_with_its_parameters() -> None:
    assert check(Step[[float], float], Callable[[int], float]).status is COMPATIBLE
    verdict = check(Step[[float], float], Callable[[int, str], float])
    assert verdict.reason == (
        "Callable[[float], float] takes 1 argument, Callable[[int, str], float] passes 2"
    )
    assert check(Step[..., float], Callable[[int, str], float]).status is COMPATIBLE
    assert check(Step[[float], float], Step[[int], float]).status is COMPATIBLE
    assert check(Step[[int], float], Step[[float], float]).status is INCOMPATIBLE


def test_an_unsolved_paramspec_of_a_producer_is_unknown_and_named() -> None:
    verdict = check(Callable[P, int], Callable[[int], float])
    assert verdict.status is UNKNOWN
    assert "the parameters of P are not known" in str(verdict.reason)
    # What is known is still checked.
    prefixed = Callable[te.Concatenate[str, P], int]
    assert check(prefixed, Callable[[int], int]).status is INCOMPATIBLE


def test_a_paramspec_of_the_consumer_is_solved_and_substituted() -> None:
    verdict = check(Callable[[int, str], float], Callable[P, R])
    assert verdict.status is COMPATIBLE
    assert substitute(Callable[P, list[R]], verdict.bindings) == Callable[[int, str], list[float]]
    verdict = check(Callable[[int, str], float], Callable[te.Concatenate[int, P], R])
    assert substitute(Callable[P, R], verdict.bindings) == Callable[[str], float]


def test_a_required_keyword_only_parameter_cannot_be_passed_positionally() -> None:
    verdict = check(KeywordScorer, Callable[[int], float])
    assert verdict.status is INCOMPATIBLE
    assert "requires keyword argument weight" in str(verdict.reason)
    assert check(KeywordScorer, Callable[..., float]).status is COMPATIBLE


def test_star_args_take_any_number_of_arguments_of_their_type() -> None:
    assert check(VariadicScorer, Callable[[], float]).status is COMPATIBLE
    assert check(VariadicScorer, Callable[[int, int, bool], float]).status is COMPATIBLE
    verdict = check(VariadicScorer, Callable[[int, str], float])
    assert verdict.reason == "parameter 2 of Callable: str is not int"


def test_parameters_with_defaults_may_be_left_out_but_not_exceeded() -> None:
    assert check(DefaultScorer, Callable[[int], float]).status is COMPATIBLE
    assert check(DefaultScorer, Callable[[int, float], float]).status is COMPATIBLE
    assert check(DefaultScorer, Callable[[], float]).status is INCOMPATIBLE
    assert check(DefaultScorer, Callable[[int, float, int], float]).status is INCOMPATIBLE


def test_a_bare_generic_takes_its_typevar_defaults() -> None:
    verdict = check(Window[int], Window)
    assert (
        verdict.reason
        == "type argument 1 of Window: int is not float (the type argument is invariant)"
    )
    assert check(Window, Window[float]).status is COMPATIBLE
    assert check(Reading[int], Reading).status is COMPATIBLE
    assert check(Reading[str], Reading).status is INCOMPATIBLE


def test_a_typevar_default_may_name_an_earlier_parameter() -> None:
    assert check(Span[int], Span[int, int]).status is COMPATIBLE
    assert check(Span[int], Span[int, str]).reason == "type argument 2 of Span: int is not str"


def test_an_unpacked_fixed_tuple_counts_each_of_its_items() -> None:
    spread = tuple[int, te.Unpack[tuple[str, int]]]
    assert check(spread, tuple[int, str, int]).status is COMPATIBLE
    assert check(tuple[int, str, int], spread).status is COMPATIBLE
    assert format_type(tuple[int, te.Unpack[tuple[str, ...]]]) == "tuple[int, *tuple[str, ...]]"


def test_an_unpacked_unbounded_tuple_has_a_least_length() -> None:
    open_tail = tuple[int, te.Unpack[tuple[str, ...]]]
    assert check(tuple[int], open_tail).status is COMPATIBLE
    assert check(tuple[int, str, str], open_tail).status is COMPATIBLE
    assert check(open_tail, tuple[int, ...]).status is INCOMPATIBLE  # str items
    assert check(open_tail, tuple[object, ...]).status is COMPATIBLE
    verdict = check(open_tail, tuple[int, str])
    assert verdict.reason == (
        "tuple[int, *tuple[str, ...]] has no fixed length; tuple[int, str] needs exactly 2 items"
    )
    assert check(tuple[int, ...], open_tail).status is INCOMPATIBLE  # may be empty
    middle = tuple[int, te.Unpack[tuple[str, ...]], float]
    assert check(tuple[int, str, str, float], middle).status is COMPATIBLE
    verdict = check(tuple[int, str, bytes, float], middle)
    assert verdict.reason == "item 2 of tuple: bytes is not str"


def test_a_typevartuple_is_solved_from_the_items_it_stands_for() -> None:
    verdict = check(tuple[int, str, bytes], tuple[int, te.Unpack[Ts]])
    assert verdict.status is COMPATIBLE
    assert substitute(tuple[te.Unpack[Ts]], verdict.bindings) == tuple[str, bytes]
    verdict = check(Array[int, str], Array[te.Unpack[Ts]])
    assert substitute(Array[te.Unpack[Ts]], verdict.bindings) == Array[int, str]


def test_a_typevartuple_generic_compares_its_arguments_one_by_one() -> None:
    assert check(Array[int, str], Array[int, str]).status is COMPATIBLE
    assert check(Array[int], Array[int, str]).reason == (
        "Array[int] has 1 type argument, Array[int, str] has 2"
    )
    assert check(Array[str, str], Array[int, str]).status is INCOMPATIBLE
    assert check(Array, Array[int, str]).status is COMPATIBLE  # bare: gradual


def test_an_unsolved_typevartuple_of_a_producer_is_unknown() -> None:
    verdict = check(tuple[int, te.Unpack[Ts]], tuple[int, str])
    assert verdict.status is UNKNOWN
    assert "TypeVarTuple" in str(verdict.reason)


def test_builtins_fit_a_protocol_by_their_real_members() -> None:
    assert check(list[str], Labels).status is COMPATIBLE
    assert check(str, Labels).status is COMPATIBLE
    assert check(bytes, Counts).status is COMPATIBLE
    assert check(Sequence[int], Counts).status is COMPATIBLE
    assert check(dict[int, str], Labels).status is COMPATIBLE
    assert check(list[str], Slices).status is COMPATIBLE
    verdict = check(range, Labels)
    assert verdict.status is INCOMPATIBLE
    assert "member '__getitem__' of protocol Labels" in str(verdict.reason)
    assert check(tuple[str, ...], Slices).status is INCOMPATIBLE  # a slice is a tuple
    assert check(dict[str, str], Labels).status is INCOMPATIBLE
    assert (
        check(set[str], Labels).reason == "set[str] lacks __getitem__ required by protocol Labels"
    )


def test_a_callable_does_not_fit_a_call_signature_that_takes_names() -> None:
    verdict = check(Callable[[int], float], KeywordCallable)
    assert verdict.reason == (
        "parameter 1 may be passed by name (x=...); Callable[[int], float] takes it by "
        "position only"
    )
    assert check(Scorer, KeywordCallable).status is INCOMPATIBLE  # positional-only ``x``
    assert check(KeywordCallable, Scorer).status is COMPATIBLE


def test_a_class_fits_a_callback_protocol_through_its_constructor() -> None:
    assert check(type[float], Scorer).status is COMPATIBLE  # float(1) -> float
    assert check(type[str], Scorer).status is INCOMPATIBLE


class Lines(Protocol):
    def __iter__(self) -> typing.Iterator[str]: ...


def test_an_iterable_only_by_its_iter_method_yields_what_that_returns() -> None:
    assert check(Lines, Iterable[str]).status is COMPATIBLE
    assert check(Lines, Iterable[int]).reason == "element type of Iterable: str is not int"


class ScaledCallable(Protocol):
    def __call__(self, row: int, /, *, scale: float = 1.0) -> float: ...


def test_a_keyword_the_consumer_may_pass_must_be_taken() -> None:
    verdict = check(Callable[[int], float], ScaledCallable)
    assert verdict.reason == (
        "Callable[[int, *, scale=...], float] may be called with scale=...; "
        "Callable[[int], float] takes no such argument"
    )
    # Taking it is not enough for a definite verdict: its type is not compared.
    assert check(KeywordScorer, ScaledCallable).status is INCOMPATIBLE  # ``weight``
    assert check(DefaultScorer, ScaledCallable).status is UNKNOWN
    # ``Concatenate[int, ...]`` may pass any keyword, so a required one is fine.
    assert check(KeywordScorer, Callable[te.Concatenate[int, ...], float]).ok


def test_memoryview_and_ordered_dicts_have_their_typeshed_members() -> None:
    assert check(memoryview, Counts).status is COMPATIBLE
    assert check(collections.OrderedDict[int, str], Labels).status is COMPATIBLE
    assert check(collections.Counter[int], Counts).status is COMPATIBLE  # counts are ints
    assert check(collections.Counter[str], Counts).status is INCOMPATIBLE  # keyed by str


class Lookup(Protocol):
    def get(self, key: str, /) -> int | None: ...


def test_a_mapping_get_is_read_from_the_member_table() -> None:
    assert check(dict[str, int], Lookup).status is COMPATIBLE
    assert check(collections.OrderedDict[str, bool], Lookup).status is COMPATIBLE
    assert check(Mapping[str, str], Lookup).status is INCOMPATIBLE


def test_a_typeddict_is_no_dict_subclass() -> None:
    verdict = check(Movie, collections.Counter[str])
    assert verdict.reason == (
        "Movie is not Counter[str] (a TypedDict fits dict[str, Any] or Mapping[str, object])"
    )
    assert check(Movie, collections.OrderedDict[str, Any]).status is INCOMPATIBLE


def test_an_enum_class_lookup_is_not_a_member_of_its_values() -> None:
    # ``Color["RED"]`` works on the class (its metaclass), not on a value.
    assert check(Color, Labels).status is INCOMPATIBLE


def test_partial_is_called_with_any_arguments_and_invariant() -> None:
    import functools

    assert check(functools.partial[float], Callable[[int, str], float]).status is COMPATIBLE
    assert check(functools.partial[float], Callable[[], int]).status is INCOMPATIBLE
    assert check(functools.partial[bool], functools.partial[float]).status is INCOMPATIBLE


def test_a_builtin_class_is_called_through_its_constructor() -> None:
    assert check(type[float], Callable[[str], float]).status is COMPATIBLE
    assert check(type[float], Callable[[], float]).status is COMPATIBLE
    assert check(type[int], Callable[[str, int], int]).status is COMPATIBLE
    assert check(type[float], Callable[[list[int]], float]).status is INCOMPATIBLE
    assert check(type[float], Callable[[int, int], float]).status is INCOMPATIBLE
    assert check(type[list[int]], Callable[[Iterable[bool]], list[int]]).status is COMPATIBLE


# --------------------------------------------------------------------------------------
# Laws, on generated types

_leaves = st.sampled_from(
    [
        int,
        float,
        bool,
        str,
        bytes,
        complex,
        Point,
        Point3,
        Label,
        Dog,
        Animal,
        UserId,
        Movie,
        Film,
        Color,
        Ints,
        Literal["a"],
        Literal["a", "b"],
        Literal[1, True],
        Literal[Color.RED],
        NDArray[np.float32],
        NDArray[np.float64],
        NDArray[np.int64],
        NDArray[np.floating],
        NDArray[np.float32 | np.int64],
        np.ndarray[Any, np.dtype[np.float64]],
    ]
)


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    pairs = st.tuples(inner, inner)
    return st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: typing.List[t]),  # type: ignore[valid-type]
        inner.map(lambda t: Sequence[t]),  # type: ignore[valid-type]
        inner.map(lambda t: Iterable[t]),  # type: ignore[valid-type]
        inner.map(lambda t: frozenset[t]),  # type: ignore[valid-type]
        inner.map(lambda t: Mapping[str, t]),  # type: ignore[valid-type]
        pairs.map(lambda kv: dict[kv[0], kv[1]]),  # type: ignore[misc]
        inner.map(lambda t: tuple[t]),  # type: ignore[valid-type]
        pairs.map(lambda ab: tuple[ab[0], ab[1]]),  # type: ignore[misc]
        st.tuples(inner, inner, inner).map(lambda abc: tuple[abc]),  # type: ignore[misc]
        inner.map(lambda t: tuple[t, ...]),  # type: ignore[valid-type]
        pairs.map(lambda ab: Union[ab[0], ab[1]]),
        pairs.map(lambda ab: Callable[[ab[0]], ab[1]]),
        pairs.map(lambda ab: Callable[[ab[0], ab[1]], ab[0]]),
        inner.map(lambda t: Annotated[t, "unit"]),
        inner.map(lambda t: Pair2[t]),
        inner.map(lambda t: Box[t]),  # type: ignore[valid-type]
        pairs.map(lambda ab: Callable[[ab[0]], te.TypeGuard[ab[1]]]),
        pairs.map(lambda ab: Callable[[ab[0]], te.TypeIs[ab[1]]]),
        pairs.map(lambda ab: Callable[te.Concatenate[ab[0], ...], ab[1]]),
        pairs.map(lambda ab: tuple[ab[0], te.Unpack[tuple[ab[1], ...]]]),  # type: ignore[misc]
        pairs.map(lambda ab: tuple[te.Unpack[tuple[ab[0], ...]], ab[1]]),  # type: ignore[misc]
        pairs.map(lambda ab: Step[[ab[0]], ab[1]]),
    )


# Types that None does not fit: no Any, object or None anywhere at the top level.
types_without_none = st.recursive(_leaves, _compound, max_leaves=6)
any_types = st.recursive(
    st.one_of(_leaves, st.sampled_from([Any, object, None, JSON])), _compound, max_leaves=6
)
with_optional = st.one_of(any_types, any_types.map(lambda t: Optional[t]))


@settings(max_examples=150, deadline=None)
@given(with_optional)
def test_every_type_fits_itself(tp: Any) -> None:
    assert check(tp, tp).status is Status.COMPATIBLE
    # The engine answers an equal pair at once; the rules must agree when made to work
    # it out (uncached, with the shortcut off).
    with mock.patch.object(rules, "_settled", return_value=False):
        assert typecheck._check_uncached(tp, tp, {}).status is Status.COMPATIBLE


@settings(max_examples=100, deadline=None)
@given(with_optional)
def test_any_fits_both_ways(tp: Any) -> None:
    assert check(Any, tp).status is Status.COMPATIBLE
    assert check(tp, Any).status is Status.COMPATIBLE
    assert check(tp, object).status is Status.COMPATIBLE


@settings(max_examples=100, deadline=None)
@given(with_optional, with_optional)
def test_a_type_fits_any_union_containing_it(a: Any, b: Any) -> None:
    assert check(a, Union[a, b]).status is Status.COMPATIBLE
    assert check(b, Union[a, b]).status is Status.COMPATIBLE


@settings(max_examples=100, deadline=None)
@given(with_optional, with_optional, with_optional)
def test_a_union_fits_exactly_when_every_member_fits(a: Any, b: Any, c: Any) -> None:
    both = is_compatible(a, c) and is_compatible(b, c)
    assert is_compatible(Union[a, b], c) is both


@settings(max_examples=100, deadline=None)
@given(types_without_none)
def test_optional_never_fits_the_bare_type(tp: Any) -> None:
    assert not is_compatible(Optional[tp], tp)


@settings(max_examples=100, deadline=None)
@given(with_optional, with_optional)
def test_explain_agrees_with_is_compatible(a: Any, b: Any) -> None:
    assert (explain(a, b) is None) is is_compatible(a, b)


# A sample of related types on which fitting is transitive. Left out on purpose, as the
# known exceptions (each tested below): a mapping fits a TypedDict consumer when its
# values could hold the fields (keys cannot be known statically), which is gradual like
# Any; and ``Callable[..., X]`` takes any parameters both ways.
TRANSITIVE_SAMPLE = [
    object, None, bool, int, float, complex, UserId, AdminId, Literal[1], Literal[True],
    Literal["a"], Literal["a", "b"], str, bytes, Optional[int], float | None, int | str,
    float | str | None, Dog, Animal, Point, Point3, Color, Literal[Color.RED],
    list[int], list[float], list[bool], typing.List[UserId], Sequence[float],
    Sequence[complex], Iterable[complex], Iterable[object], Sequence[str], Iterable[str],
    Sequence[int | str], frozenset[int], set[int], Iterable[int], tuple[int, int],
    tuple[bool, int], tuple[float, ...], tuple[int, str], tuple[()], Coordinate,
    tuple[object, ...], dict[str, int], dict[str, float], Mapping[str, float],
    Mapping[str, object], Mapping[object, object], NDArray[np.float32], NDArray[np.float64],
    NDArray[np.floating], NDArray[np.number], NDArray[np.generic],
    NDArray[np.float32 | np.int64], Callable[[float], int], Callable[[int], float],
    Callable[[int], object], Callable[[object], bool], type[bool], type[int], type[object],
    Ints, JSON, Pair2[int], Pair2[float], Box[int], Box[float], IntBox,
    list[dict[str, int]], Sequence[Mapping[str, object]],
]  # fmt: skip


def test_fitting_is_transitive_on_a_sample_of_related_types() -> None:
    indices = range(len(TRANSITIVE_SAMPLE))
    fits = {
        (a, b): check(TRANSITIVE_SAMPLE[a], TRANSITIVE_SAMPLE[b]).status
        for a in indices
        for b in indices
    }
    broken = [
        tuple(format_type(TRANSITIVE_SAMPLE[i]) for i in (a, b, c))
        for a in indices
        for b in indices
        if fits[a, b] is Status.COMPATIBLE
        for c in indices
        if fits[b, c] is Status.COMPATIBLE and fits[a, c] is Status.INCOMPATIBLE
    ]
    assert broken == []
    # The sample must be related enough for chains to exist at all.
    assert sum(status is Status.COMPATIBLE for status in fits.values()) > 400


def test_transitivity_exception_a_dict_of_any_fits_a_typeddict_gradually() -> None:
    assert is_compatible(dict[str, int], dict[str, Any])
    assert is_compatible(dict[str, Any], Movie)
    assert not is_compatible(dict[str, int], Movie)


def test_transitivity_exception_callable_with_any_parameters() -> None:
    assert is_compatible(Callable[[int], int], Callable[..., int])
    assert is_compatible(Callable[..., int], Callable[[str], int])
    assert not is_compatible(Callable[[int], int], Callable[[str], int])


def test_namedtuple_fits_an_iterable_of_its_field_types() -> None:
    assert check(Coordinate, Iterable[int | str]).status is Status.COMPATIBLE
    assert explain(Coordinate, Iterable[int]) == (
        "element type of Iterable: str is not int (a member of the union int | str)"
    )


# --------------------------------------------------------------------------------------
# Differential test against mypy, the reference semantics where the rules are silent.
# Left out of the generated types are the deliberate departures, tested in the rule table
# above: mutable containers and mapping keys are read covariantly, and a mapping fits a
# TypedDict consumer.

_MYPY_PRELUDE = """\
import enum
from typing import Literal, NewType, Optional
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing_extensions import TypeAliasType
class Animal: ...
class Dog(Animal): ...
UserId = NewType("UserId", int)
class Color(enum.Enum):
    RED = 1
    BLUE = 2
Ints = TypeAliasType("Ints", Sequence[int])
"""
_MYPY_LEAVES = (
    "int", "float", "bool", "complex", "str", "bytes", "None", "object",
    "Animal", "Dog", "UserId", "Literal['a']", "Literal[1]", "Literal['a', 'b']",
    "Color", "Literal[Color.RED]", "type[Dog]", "type[Animal]", "Ints", "tuple[()]",
)  # fmt: skip


def _random_type(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(_MYPY_LEAVES)
    a, b = _random_type(rng, depth - 1), _random_type(rng, depth - 1)
    return rng.choice(
        [
            f"Sequence[{a}]",
            f"Iterable[{a}]",
            f"Mapping[str, {a}]",
            f"frozenset[{a}]",
            f"tuple[{a}, {b}]",
            f"tuple[{a}, ...]",
            f"{a} | {b}",
            f"Optional[{a}]",
            f"Callable[[{a}], {b}]",
            f"Callable[[{a}, {b}], {a}]",
            f"Callable[..., {a}]",
            f"Iterator[{a}]",
            f"tuple[{a}]",
        ]
    )


def _related_pairs(count: int) -> list[tuple[str, str]]:
    rng = random.Random(20240611)
    pairs: set[tuple[str, str]] = set()
    while len(pairs) < count:
        a, b = _random_type(rng, 2), _random_type(rng, 2)
        # Near-identical pairs are where the interesting verdicts are.
        if rng.random() < 0.3:
            b = a.replace("int", "float", 1)
        if rng.random() < 0.2:
            a = b.replace("float", "int", 1).replace("Animal", "Dog", 1)
        pairs.add((a, b))
    return sorted(pairs)


def test_verdicts_agree_with_mypy_on_generated_pairs(tmp_path: Path) -> None:
    pairs = _related_pairs(300)
    lines = _MYPY_PRELUDE.splitlines()
    first = len(lines) + 1
    for index, (produced, consumed) in enumerate(pairs):
        lines += [f"def case{index}(x: {produced}) -> None:", f"    y: {consumed} = x"]
    source = tmp_path / "cases.py"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n", encoding="utf-8")
    stdout, _, _ = mypy_api.run(
        [str(source), "--config-file", str(config), "--cache-dir", str(tmp_path / "cache")]
    )
    rejected = {int(m.group(1)) for m in re.finditer(r"cases\.py:(\d+): error", stdout)}
    namespace: dict[str, Any] = {}
    exec(_MYPY_PRELUDE, namespace)
    disagreements = []
    for index, (produced, consumed) in enumerate(pairs):
        mypy_accepts = first + 2 * index + 1 not in rejected
        ours = is_compatible(eval(produced, namespace), eval(consumed, namespace))
        if ours != mypy_accepts:
            disagreements.append((produced, consumed, mypy_accepts))
    assert disagreements == []
