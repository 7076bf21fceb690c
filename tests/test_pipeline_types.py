"""The type checker wired into pipelines: check() before any user code, run-time checks,
attrs records in and out."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

from packflow import (
    Pipeline,
    PipelineDefinitionError,
    PipelineTypeError,
    PreprocessorRuntimeError,
    Records,
)
from packflow.exceptions import RuntimeTypeError

T = TypeVar("T")


def test_check_rejects_a_stage_that_does_not_fit_the_next_and_runs_nothing() -> None:
    calls: list[str] = []
    pipe = Pipeline("mismatch")

    @pipe.initialize
    def model() -> str:
        calls.append("initializer")
        return "m"

    @pipe.transform_inputs
    def to_rows(records: Records) -> list[dict[str, Any]]:
        calls.append("transform_inputs")
        return records

    @pipe.execute
    def predict(x: NDArray[np.float64], model: str) -> Records:
        calls.append("execute")
        return []

    with pytest.raises(PipelineTypeError) as info:
        pipe.build()
    with pytest.raises(PipelineTypeError):
        pipe([{"a": 1}])
    assert calls == []
    (problem,) = info.value.problems
    assert problem.stage == "execute"
    assert problem.function == "predict"
    assert problem.parameter == "x"
    assert problem.location.endswith(f":{predict.__code__.co_firstlineno}")
    assert "predict" in str(info.value)


def test_every_type_problem_is_reported_at_once() -> None:
    pipe = Pipeline("many")

    @pipe.initialize
    def threshold() -> str:
        return "high"

    @pipe.transform_inputs
    def first(records: Records) -> int:
        return 0

    @pipe.execute
    def predict(x: str, threshold: float) -> Records:
        return []

    @pipe.transform_outputs
    def last(rows: Records) -> dict[str, Any]:
        return {}

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    problems = {(p.function, p.parameter) for p in info.value.problems}
    assert ("predict", "x") in problems
    assert ("predict", "threshold") in problems
    assert ("last", "return") in problems
    assert str(info.value).count("\n1. ") == 1 and "\n3. " in str(info.value)


def test_a_typevar_stage_hands_on_the_solved_type() -> None:
    pipe = Pipeline("typevar")

    @pipe.transform_inputs
    def identity(x: T) -> T:
        return x

    @pipe.execute
    def predict(records: Records) -> Records:
        return records

    assert pipe.check().report.data_types["execute"] == Records


def test_strict_mode_reports_a_missing_annotation() -> None:
    pipe = Pipeline("strict", strict=True)

    @pipe.execute
    def predict(records):  # type: ignore[no-untyped-def]
        return records

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    assert {p.parameter for p in info.value.problems} >= {"records", "return"}


def test_missing_annotations_are_any_by_default() -> None:
    pipe = Pipeline("gradual")

    @pipe.execute
    def predict(records):  # type: ignore[no-untyped-def]
        return records

    assert pipe({"a": 1}) == {"a": 1}


def test_an_unresolvable_annotation_is_a_definition_error_naming_the_name() -> None:
    pipe = Pipeline("unresolvable")

    def predict(records: Records) -> NoSuchType:  # type: ignore[name-defined]  # noqa: F821
        return records

    pipe.add_execute(predict)
    with pytest.raises(PipelineDefinitionError) as info:
        pipe.check()
    assert not isinstance(info.value, PipelineTypeError)
    assert "NoSuchType" in str(info.value)
    assert "predict" in str(info.value)


def test_runtime_checks_reject_a_value_that_breaks_the_annotation() -> None:
    pipe = Pipeline("runtime", runtime_checks=True)

    @pipe.transform_inputs
    def values(records: Records) -> list[int]:
        return [record["x"] for record in records]

    @pipe.execute
    def predict(xs: list[int]) -> Records:
        return [{"y": x} for x in xs]

    assert pipe([{"x": 1}]) == [{"y": 1}]
    with pytest.raises(RuntimeTypeError) as info:
        pipe([{"x": 1}, {"x": "two"}])
    assert info.value.stage == "transform_inputs"
    assert info.value.function == "values"
    assert info.value.expected == "list[int]"
    assert "element 1" in info.value.actual


def test_without_runtime_checks_values_are_not_checked_per_call() -> None:
    pipe = Pipeline("no-runtime")

    @pipe.transform_inputs
    def values(records: Records) -> list[int]:
        return [record["x"] for record in records]

    @pipe.execute
    def predict(xs: list[int]) -> Records:
        return [{"y": x} for x in xs]

    assert pipe([{"x": "two"}]) == [{"y": "two"}]


@attrs.frozen
class Review:
    id: int
    text: str


@attrs.frozen
class Verdict:
    id: int
    positive: bool


def review_pipeline() -> Pipeline:
    pipe = Pipeline("attrs-records")

    @pipe.execute
    def judge(reviews: list[Review]) -> list[Verdict]:
        return [Verdict(id=r.id, positive="good" in r.text) for r in reviews]

    return pipe


def test_attrs_records_are_structured_in_and_unstructured_out() -> None:
    pipe = review_pipeline()
    assert pipe([{"id": 1, "text": "good"}, {"id": 2, "text": "bad"}]) == [
        {"id": 1, "positive": True},
        {"id": 2, "positive": False},
    ]


def test_an_attrs_record_that_does_not_fit_names_the_index_and_field() -> None:
    pipe = review_pipeline()
    with pytest.raises(PreprocessorRuntimeError) as info:
        pipe([{"id": 1, "text": "good"}, {"id": 2}])
    assert info.value.index == 1
    assert info.value.field == "text"
