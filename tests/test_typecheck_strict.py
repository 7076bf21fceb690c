"""Undecided type checks in pipelines: a note naming the construct, an error in strict mode;
and old-style recursive aliases, which get a definite verdict through check()."""

# The old spelling of a recursive alias (Union with quoted names) is under test.
# ruff: noqa: UP007

from __future__ import annotations

import logging
import typing
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, Union

import pytest

from packflow import Pipeline, PipelineTypeError, Records
from packflow.typecheck import Status, check, resolve_forward_refs


class Named(Protocol):
    name: str


def make_name() -> str:
    return "x"


class SetsNameInInit:
    """Sets ``name`` in ``__init__`` to a value whose type the source does not say."""

    def __init__(self) -> None:
        self.name = make_name()


Json = Union[dict[str, "Json"], list["Json"], str, int, float, bool, None]


def _undecided_pipeline(*, strict: bool) -> Pipeline:
    pipe = Pipeline("undecided", strict=strict)

    @pipe.transform_inputs
    def wrap(records: Records) -> SetsNameInInit:
        return SetsNameInInit()

    @pipe.execute
    def predict(item: Named) -> Records:
        return [{"name": item.name}]

    return pipe


def test_an_undecided_edge_is_a_note_naming_the_construct() -> None:
    checked = _undecided_pipeline(strict=False).check()
    (note,) = checked.report.notes
    assert "function `predict`" in note
    assert "parameter `item`" in note
    assert "SetsNameInInit" in note and "name" in note and "protocol Named" in note
    assert not checked.report.problems


def test_an_undecided_edge_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="packflow"):
        _undecided_pipeline(strict=False).check()
    messages = [record.getMessage() for record in caplog.records]
    assert any("cannot read the type of SetsNameInInit.name" in m for m in messages)


def test_strict_makes_an_undecided_edge_a_type_error() -> None:
    with pytest.raises(PipelineTypeError) as info:
        _undecided_pipeline(strict=True).check()
    (problem,) = info.value.problems
    assert problem.function == "predict"
    assert problem.parameter == "item"
    assert "cannot decide" in problem.explanation
    assert "protocol Named" in problem.explanation
    assert "strict=True" in str(info.value)


def test_strict_undecided_injected_parameter_is_a_type_error() -> None:
    pipe = Pipeline("undecided resource", strict=True)

    @pipe.initialize
    def model() -> SetsNameInInit:
        return SetsNameInInit()

    @pipe.execute
    def predict(records: Records, model: Named) -> Records:
        return records

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    (problem,) = info.value.problems
    assert (problem.function, problem.parameter) == ("predict", "model")


def test_a_decided_strict_pipeline_has_no_notes() -> None:
    pipe = Pipeline("decided", strict=True)

    @pipe.execute
    def predict(records: Records) -> Records:
        return records

    assert pipe.check().report.notes == ()


def test_an_old_style_recursive_alias_fits_without_a_note() -> None:
    pipe = Pipeline("json", strict=True)

    @pipe.transform_inputs
    def parse(records: Records) -> dict[str, list[int]]:
        return {}

    @pipe.execute
    def predict(doc: Json) -> Records:
        return []

    assert pipe.check().report.notes == ()


def test_an_old_style_recursive_alias_rejects_what_it_cannot_hold() -> None:
    pipe = Pipeline("json bytes")

    @pipe.transform_inputs
    def parse(records: Records) -> dict[str, list[bytes]]:
        return {}

    @pipe.execute
    def predict(doc: Json) -> Records:
        return []

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    (problem,) = info.value.problems
    assert problem.parameter == "doc"
    assert "bytes" in problem.explanation


def test_an_old_style_recursive_alias_producer_is_compared_member_by_member() -> None:
    pipe = Pipeline("json out")

    @pipe.transform_inputs
    def parse(records: Records) -> Json:
        return {}

    @pipe.execute
    def predict(doc: dict[str, Any] | list[Any] | str | int | float | None) -> Records:
        return []

    assert pipe.check().report.notes == ()  # bool fits int, so every member fits


def test_resolve_forward_refs_leaves_an_annotation_without_names_as_it_is() -> None:
    annotation = dict[str, list[int]]
    assert resolve_forward_refs(annotation, __name__) is annotation


def test_resolve_forward_refs_binds_quoted_names_to_the_module() -> None:
    bound = resolve_forward_refs(list["Json"], __name__)
    (ref,) = typing.get_args(bound)
    assert (ref.__forward_arg__, ref.__forward_module__) == ("Json", __name__)
    json_list = resolve_forward_refs(list[Json], __name__)
    assert check(bound, json_list).status is Status.COMPATIBLE
    assert check(list[bytes], json_list).status is Status.INCOMPATIBLE


Params = ParamSpec("Params")


def _unsolved_paramspec_pipeline(*, strict: bool) -> Pipeline:
    pipe = Pipeline("paramspec", strict=strict)

    @pipe.transform_inputs
    def make(records: Records) -> Callable[Params, int]:
        return lambda *args, **kwargs: 0

    @pipe.execute
    def predict(score: Callable[[int], float]) -> Records:
        return [{"score": score(1)}]

    return pipe


def test_an_unsolved_paramspec_is_a_note_or_a_strict_error_never_a_silent_fit() -> None:
    (note,) = _unsolved_paramspec_pipeline(strict=False).check().report.notes
    assert "the parameters of Params are not known" in note
    with pytest.raises(PipelineTypeError) as caught:
        _unsolved_paramspec_pipeline(strict=True).check()
    assert "the parameters of Params are not known" in str(caught.value)
