"""The graph-level type check: every edge and injected parameter of a stage graph."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray
from typing_extensions import TypeAliasType, TypeVarTuple, Unpack

from packflow.checker import Edge, TypeProblem, TypeReport, check_graph, raise_for_problems
from packflow.config import BackendConfig
from packflow.exceptions import PipelineDefinitionError, PipelineTypeError
from packflow.graph import Initializer, Stage, StageGraph, StageKind, describe_function
from packflow.records import Records

T = TypeVar("T")
Num = TypeVar("Num", bound=float)
Params = ParamSpec("Params")  # not a type on its own: the engine cannot judge it


def graph(
    *stages: tuple[str, Callable[..., Any]],
    initializers: Sequence[Callable[..., Any]] = (),
    config_model: type[Any] = BackendConfig,
) -> StageGraph:
    """A stage graph as Pipeline.check() builds it: first parameter is the data."""
    built = []
    for kind, func in stages:
        info = describe_function(func)
        built.append(Stage(StageKind(kind), info, info.params[0], info.params[1:]))
    inits = []
    for func in initializers:
        info = describe_function(func)
        inits.append(Initializer(info, info.params))
    return StageGraph("scorer", config_model, tuple(inits), tuple(built))


def run(
    *stages: tuple[str, Callable[..., Any]],
    input_type: Any = Records,
    strict: bool = False,
    initializers: Sequence[Callable[..., Any]] = (),
    config_model: type[Any] = BackendConfig,
) -> TypeReport:
    built = graph(*stages, initializers=initializers, config_model=config_model)
    return check_graph(built, input_type=input_type, strict=strict)


def line_of(func: Callable[..., Any]) -> str:
    return f"{inspect.getsourcefile(func)}:{inspect.getsourcelines(func)[1]}"


# --- functions used as stages ------------------------------------------------------------


class Model:
    pass


class OtherModel:
    pass


@attrs.frozen
class Row:
    a: float
    b: float


@attrs.frozen
class Score:
    value: float


@attrs.frozen(kw_only=True)
class ScorerConfig(BackendConfig):
    threshold: float = 0.5


def records_identity(x: Records) -> Records:
    return x


def to_array(x: Records) -> NDArray[np.float64]:
    return np.asarray([[r["a"]] for r in x], dtype=np.float64)


def to_array32(x: Records) -> NDArray[np.float32]:
    return np.asarray([[r["a"]] for r in x], dtype=np.float32)


def predict(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return x


def predict_with_model(x: NDArray[np.float64], model: Model) -> NDArray[np.float64]:
    return x


def label(y: NDArray[np.float64]) -> Records:
    return [{"score": float(v)} for v in y]


def label_as_dict(y: NDArray[np.float64]) -> dict[str, float]:
    return {}


def identity(x: T) -> T:
    return x


def bounded(x: Num) -> Num:
    return x


def count_words(x: list[str]) -> list[int]:
    return [len(s) for s in x]


def takes_ints(x: list[int]) -> Records:
    return [{"n": n} for n in x]


def takes_words(x: list[str]) -> list[str]:
    return x


def structured(rows: list[Row]) -> list[Score]:
    return [Score(r.a + r.b) for r in rows]


@attrs.frozen
class Tagged(Generic[T]):
    value: T
    tag: str


Rows = TypeAliasType("Rows", list[Row])


def tag_rows(rows: list[Tagged[int]]) -> list[Tagged[int]]:
    return rows


def aliased_rows(rows: Rows) -> Records:
    return []


def score_rows(rows: list[Row]) -> Records:
    return [{"score": r.a} for r in rows]


def unannotated(x, model):  # type: ignore[no-untyped-def]
    return x


def uses_config(x: Records, config: ScorerConfig) -> Records:
    return x


def uses_base_config(x: Records, config: BackendConfig) -> Records:
    return x


def uses_logger(x: Records, logger: logging.Logger) -> Records:
    return x


def uses_bad_logger(x: Records, logger: str) -> Records:
    return x


def model(config: BackendConfig) -> Model:
    return Model()


def model_from_string(config: BackendConfig) -> OtherModel:
    return OtherModel()


def wants_later_class(x: Records) -> LaterDefined:
    return LaterDefined()


def accepts_later_class(x: LaterDefined) -> Records:
    return []


class LaterDefined:
    """Defined after the functions that name it: a forward reference."""


def misspelled(x: Records, model: Modle) -> Records:  # noqa: F821
    return x


# --- edges -------------------------------------------------------------------------------


def test_fitting_pipeline_has_no_problems() -> None:
    report = run(
        ("transform_inputs", to_array), ("execute", predict), ("transform_outputs", label)
    )
    assert report.problems == ()
    assert report.ok


def test_edges_carry_the_type_that_flows() -> None:
    report = run(
        ("transform_inputs", to_array), ("execute", predict), ("transform_outputs", label)
    )
    assert report.edges == (
        Edge("preprocess", "transform_inputs", Records, Records),
        Edge("transform_inputs", "execute", NDArray[np.float64], NDArray[np.float64]),
        Edge("execute", "transform_outputs", NDArray[np.float64], NDArray[np.float64]),
        Edge("transform_outputs", "output", Records, Records),
    )
    assert str(report.edges[1]) == "transform_inputs --[NDArray[float64]]--> execute"


def test_records_into_an_array_stage_suggests_numpy_input_format() -> None:
    report = run(("execute", predict), ("transform_outputs", label))
    (problem,) = report.problems
    assert problem.stage == "execute"
    assert problem.function == "predict"
    assert problem.parameter == "x"
    assert problem.expected == "NDArray[float64]"
    assert problem.actual == "list[dict[str, Any]]"
    assert "input_format='numpy'" in problem.hint


def test_array_input_into_a_records_stage_suggests_records_input_format() -> None:
    report = run(("execute", records_identity), input_type=NDArray[np.float64])
    (problem,) = report.problems
    assert "input_format='records'" in problem.hint


def test_numpy_input_fits_an_array_stage() -> None:
    report = run(("execute", predict), ("transform_outputs", label), input_type=np.ndarray)
    assert report.ok


def test_stage_to_stage_mismatch_names_the_failing_element_type() -> None:
    report = run(
        ("execute", count_words), ("transform_outputs", takes_words), input_type=list[str]
    )
    problem = report.problems[0]
    assert (problem.stage, problem.function, problem.parameter) == (
        "transform_outputs",
        "takes_words",
        "x",
    )
    assert problem.explanation == "element type of list: int is not str"
    assert problem.hint == "make `count_words` return list[str], or annotate `x` as list[int]"


def test_last_stage_that_is_not_records_suggests_a_transform_outputs_stage() -> None:
    report = run(("transform_inputs", to_array), ("execute", predict))
    (problem,) = report.problems
    assert problem.parameter == "return"
    assert problem.function == "predict"
    assert problem.expected == "list[dict[str, Any]]"
    assert "add a transform_outputs stage that returns list[dict]" in problem.hint


def test_transform_outputs_returning_one_dict_is_reported() -> None:
    report = run(
        ("transform_inputs", to_array), ("execute", predict), ("transform_outputs", label_as_dict)
    )
    (problem,) = report.problems
    assert problem.function == "label_as_dict"
    assert problem.actual == "dict[str, float]"
    assert "make `label_as_dict` return list[dict[str, Any]]" in problem.hint


def test_all_problems_are_reported_at_once() -> None:
    report = run(("execute", predict), ("transform_outputs", label_as_dict))
    assert [(p.function, p.parameter) for p in report.problems] == [
        ("predict", "x"),
        ("label_as_dict", "return"),
    ]


def test_problem_names_the_function_file_and_line() -> None:
    report = run(("execute", predict), ("transform_outputs", label))
    (problem,) = report.problems
    assert problem.location == line_of(predict)
    assert str(problem).startswith(
        f"{line_of(predict)}: stage `execute` function `predict`, parameter `x`: "
        "expected NDArray[float64], got list[dict[str, Any]]"
    )
    assert "\n  why: " in str(problem)
    assert "\n  hint: " in str(problem)


def test_raise_for_problems_raises_a_numbered_report() -> None:
    report = run(("execute", predict), ("transform_outputs", label_as_dict))
    with pytest.raises(PipelineTypeError) as caught:
        raise_for_problems(report, "scorer")
    assert caught.value.problems == list(report.problems)
    text = str(caught.value)
    assert text.startswith("pipeline 'scorer': 2 type problems between stages:")
    assert "\n1. " in text
    assert "\n2. " in text


def test_raise_for_problems_is_silent_without_problems() -> None:
    raise_for_problems(run(("execute", records_identity)), "scorer")


# --- annotations ----------------------------------------------------------------------


def test_forward_references_resolve_in_the_function_module() -> None:
    report = run(("transform_inputs", wants_later_class), ("execute", accepts_later_class))
    assert report.ok
    assert report.return_types["transform_inputs"] is LaterDefined


def test_unresolvable_name_is_reported_naming_function_location_and_name() -> None:
    report = run(("execute", misspelled))
    (message,) = report.unresolved
    assert "`misspelled`" in message
    assert line_of(misspelled) in message
    assert "'Modle'" in message
    with pytest.raises(PipelineDefinitionError) as caught:
        raise_for_problems(report, "p")
    assert not isinstance(caught.value, PipelineTypeError)
    assert caught.value.problems == [message]


def test_missing_annotations_are_any_by_default() -> None:
    report = run(("execute", unannotated), initializers=[model])
    assert report.ok
    assert report.data_types["execute"] is Any


def test_strict_mode_reports_every_missing_annotation() -> None:
    report = run(("execute", unannotated), initializers=[model], strict=True)
    assert [p.parameter for p in report.problems] == ["x", "model", "return"]
    assert all(p.expected == "an annotation" for p in report.problems)
    assert report.problems[0].hint == "annotate `x`, e.g. `x: list[dict[str, Any]]`"
    assert report.problems[1].hint == "annotate `model`, e.g. `model: Model`"


def test_bound_methods_are_checked_without_self() -> None:
    class Backend:
        def transform_inputs(self, inputs: Records) -> NDArray[np.float64]:
            return np.zeros((len(inputs), 1))

        def execute(self, inputs: list[str]) -> Records:
            return []

    backend = Backend()
    report = run(("transform_inputs", backend.transform_inputs), ("execute", backend.execute))
    (problem,) = report.problems
    assert problem.function == "execute"
    assert problem.parameter == "inputs"
    assert problem.actual == "NDArray[float64]"


# --- TypeVars --------------------------------------------------------------------------


def test_typevar_solution_is_carried_to_the_next_stage() -> None:
    report = run(
        ("transform_inputs", to_array32), ("execute", identity), ("transform_outputs", label)
    )
    (problem,) = report.problems
    assert problem.function == "label"
    assert problem.actual == "NDArray[float32]"
    assert problem.explanation == "dtype of ndarray: float32 is not float64"
    assert report.return_types["execute"] == NDArray[np.float32]


def test_typevar_solution_that_fits_passes() -> None:
    report = run(
        ("transform_inputs", to_array), ("execute", identity), ("transform_outputs", label)
    )
    assert report.ok
    assert report.data_types["execute"] == NDArray[np.float64]


def test_typevar_bound_is_enforced_per_stage() -> None:
    report = run(("execute", bounded))
    problem = report.problems[0]
    assert problem.function == "bounded"
    assert "outside the bound of Num" in problem.explanation


Result = TypeVar("Result")
Items = TypeVarTuple("Items")


def make_scorer(records: Records) -> Callable[[int, str], float]:
    return lambda n, s: 0.0


def batched(score: Callable[Params, Result]) -> Callable[Params, list[Result]]:
    return lambda *args, **kwargs: [score(*args, **kwargs)]


def use_batched(score: Callable[[int, str], list[float]]) -> Records:
    return []


def use_batched_wrongly(score: Callable[[int], list[float]]) -> Records:
    return []


def make_row(records: Records) -> tuple[int, str, bytes]:
    return (1, "a", b"b")


def drop_first(row: tuple[int, Unpack[Items]]) -> tuple[Unpack[Items]]:
    return row[1:]


def use_rest(rest: tuple[str, str]) -> Records:
    return []


def test_a_paramspec_solved_in_one_stage_carries_its_parameters_to_the_next() -> None:
    report = run(
        ("transform_inputs", make_scorer),
        ("execute", batched),
        ("transform_outputs", use_batched),
    )
    assert report.ok and not report.notes
    assert report.return_types["execute"] == Callable[[int, str], list[float]]
    report = run(
        ("transform_inputs", make_scorer),
        ("execute", batched),
        ("transform_outputs", use_batched_wrongly),
    )
    (problem,) = report.problems
    assert problem.function == "use_batched_wrongly"
    assert "takes 2 arguments" in problem.explanation


def test_a_typevartuple_solved_in_one_stage_carries_its_items_to_the_next() -> None:
    report = run(
        ("transform_inputs", make_row), ("execute", drop_first), ("transform_outputs", use_rest)
    )
    (problem,) = report.problems
    assert problem.function == "use_rest"
    assert problem.actual == "tuple[str, bytes]"
    assert problem.explanation == "item 1 of tuple: bytes is not str"


# --- attrs records --------------------------------------------------------------------


def test_records_fit_a_first_stage_that_wants_attrs_instances() -> None:
    report = run(("execute", score_rows))
    assert report.ok


def test_attrs_list_returned_by_the_last_stage_fits_the_records_contract() -> None:
    report = run(("execute", structured))
    assert report.ok


def test_records_fit_a_first_stage_that_wants_generic_attrs_instances() -> None:
    assert run(("execute", tag_rows)).ok


def test_records_fit_a_first_stage_whose_attrs_batch_is_a_type_alias() -> None:
    assert run(("execute", aliased_rows)).ok


def test_arrays_do_not_fit_a_first_stage_that_wants_attrs_instances() -> None:
    report = run(("execute", score_rows), input_type=NDArray[np.float64])
    (problem,) = report.problems
    assert problem.expected == "list[Row]"


def test_only_the_first_stage_gets_records_structured() -> None:
    report = run(("transform_inputs", records_identity), ("execute", score_rows))
    (problem,) = report.problems
    assert problem.function == "score_rows"
    assert problem.explanation == "element type of list: dict[str, Any] is not Row"


# --- injected parameters -----------------------------------------------------------------


def test_config_annotated_with_another_model_suggests_config_model() -> None:
    report = run(("execute", uses_config))
    (problem,) = report.problems
    assert problem.parameter == "config"
    assert problem.expected == "ScorerConfig"
    assert problem.actual == "BackendConfig"
    assert problem.hint == "pass config_model=ScorerConfig to the Pipeline (it uses BackendConfig)"


def test_config_fits_when_the_model_matches() -> None:
    assert run(("execute", uses_config), config_model=ScorerConfig).ok


def test_config_subclass_fits_a_base_config_annotation() -> None:
    assert run(("execute", uses_base_config), config_model=ScorerConfig).ok


def test_logger_must_be_annotated_as_a_logger() -> None:
    assert run(("execute", uses_logger)).ok
    (problem,) = run(("execute", uses_bad_logger)).problems
    assert problem.parameter == "logger"
    assert problem.actual == "Logger"
    assert "logging.Logger" in problem.hint


def test_resource_is_checked_against_its_initializer_return() -> None:
    def model(config: BackendConfig) -> OtherModel:
        return OtherModel()

    report = run(
        ("transform_inputs", to_array),
        ("execute", predict_with_model),
        ("transform_outputs", label),
        initializers=[model],
    )
    (problem,) = report.problems
    assert problem.parameter == "model"
    assert problem.expected == "Model"
    assert problem.actual == "OtherModel"
    assert problem.hint == (
        "make initializer `model` return Model, or annotate `model` as OtherModel"
    )


def test_matching_resource_passes() -> None:
    report = run(
        ("transform_inputs", to_array),
        ("execute", predict_with_model),
        ("transform_outputs", label),
        initializers=[model],
    )
    assert report.ok


def test_initializer_parameters_are_checked_too() -> None:
    def tokenizer(config: ScorerConfig) -> str:
        return "t"

    report = run(("execute", records_identity), initializers=[tokenizer])
    (problem,) = report.problems
    assert problem.stage == "initialize"
    assert problem.function == "tokenizer"
    assert problem.parameter == "config"


def test_initializer_may_require_another_resource() -> None:
    def encoder(model: str) -> str:
        return model

    report = run(("execute", records_identity), initializers=[model, encoder])
    (problem,) = report.problems
    assert (problem.function, problem.parameter) == ("encoder", "model")
    assert problem.actual == "Model"


# --- notes -------------------------------------------------------------------------------


def test_undecidable_check_is_a_note_not_a_problem() -> None:
    def exotic(x: Params) -> Records:  # type: ignore[valid-type]
        return []

    report = run(("execute", exotic))
    assert report.ok
    (note,) = report.notes
    assert "`exotic`" in note
    assert "treated as compatible" in note


def test_type_problem_is_a_frozen_value() -> None:
    problem = TypeProblem("execute", "f", "m.py:1", "x", "int", "str", "str is not int", "h")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        problem.stage = "other"  # type: ignore[misc]
    assert str(problem) == (
        "m.py:1: stage `execute` function `f`, parameter `x`: expected int, got str\n"
        "  why: str is not int\n"
        "  hint: h"
    )


# --- one round reports every kind of problem ----------------------------------------------


def test_check_reports_a_misspelt_name_a_forward_ref_and_a_type_mismatch_in_one_error() -> None:
    from packflow import Pipeline

    pipe = Pipeline("three_kinds")

    @pipe.initialize
    def model(config: BackendConfig) -> int:
        return 1

    @pipe.transform_inputs
    def prepare(records: Records) -> NDArray[np.float64]:
        return np.zeros((len(records), 1))

    @pipe.execute
    def predict(x: Records, modle: int, extra: NotDefinedAnywhere) -> Records:  # type: ignore[name-defined]  # noqa: F821
        return x

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    definitions = [p for p in info.value.problems if isinstance(p, str)]
    types = [p for p in info.value.problems if isinstance(p, TypeProblem)]
    assert any("asks for `modle` (did you mean 'model'?)" in p for p in definitions)
    assert any("naming 'NotDefinedAnywhere'" in p for p in definitions)
    assert [(p.function, p.parameter) for p in types] == [("predict", "x")]
    assert "3 definition problems and 1 type problem" in str(info.value)


def test_a_last_stage_returning_an_iterator_is_told_to_return_a_list() -> None:
    from packflow import Pipeline

    pipe = Pipeline("lazy_output")

    @pipe.execute
    def rows(records: Records) -> Iterator[dict[str, Any]]:
        yield from records

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    (problem,) = info.value.problems
    assert problem.hint.startswith("make `rows` return a list (e.g. `return list(...)`)")
    assert "transform_outputs" not in problem.hint


def test_an_unannotated_generator_function_as_last_stage_is_reported_at_check_time() -> None:
    from packflow import Pipeline

    pipe = Pipeline("yields")

    @pipe.execute
    def rows(records):  # type: ignore[no-untyped-def]
        yield from records

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    (problem,) = info.value.problems
    assert (problem.function, problem.parameter) == ("rows", "return")
    assert problem.actual.startswith("Generator")
    assert "return a list" in problem.hint


T_only_returned = TypeVar("T_only_returned")


def test_a_typevar_only_in_a_return_annotation_is_reported_for_stages_and_initializers() -> None:
    from packflow import Pipeline

    pipe = Pipeline("free_typevar")

    @pipe.initialize
    def model(config: BackendConfig) -> T_only_returned:  # type: ignore[type-var]
        return None  # type: ignore[return-value]

    @pipe.execute
    def predict(records: Records, model: Any) -> list[T_only_returned]:  # type: ignore[type-var]
        return []

    with pytest.raises(PipelineTypeError) as info:
        pipe.check()
    found = sorted((p.function, p.parameter) for p in info.value.problems)
    assert found == [("model", "return"), ("predict", "return")]
    assert all(
        "appears only in the return annotation" in p.explanation for p in info.value.problems
    )
