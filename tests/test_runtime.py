"""The run-time contract of a built pipeline: inputs, outputs, errors, validation."""

from __future__ import annotations

import collections
import importlib.util
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import (
    BuiltPipeline,
    InferenceBackendInitializationError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    Pipeline,
    PipelineDefinitionError,
    Records,
    StageError,
    ensure_valid_output,
)


def build_echo() -> BuiltPipeline:
    pipe = Pipeline("echo")

    @pipe.execute
    def predict(records: Records) -> Records:
        return [{"echo": record.get("x")} for record in records]

    return pipe.build()


def build_returning(outputs: Any) -> BuiltPipeline:
    """A pipeline whose execute returns ``outputs`` whatever it is given."""
    pipe = Pipeline("fixed")

    @pipe.execute
    def predict(records: Records) -> Any:
        return outputs

    return pipe.build()


# -- inputs and outputs ------------------------------------------------------------------


def test_a_dict_in_gives_a_dict_out() -> None:
    assert build_echo()({"x": 1}) == {"echo": 1}


def test_a_list_in_gives_a_list_out_in_order() -> None:
    assert build_echo()([{"x": 1}, {"x": 2}, {"x": 3}]) == [
        {"echo": 1},
        {"echo": 2},
        {"echo": 3},
    ]


@settings(max_examples=50)
@given(st.lists(st.dictionaries(st.text(max_size=3), st.integers(), max_size=3), max_size=8))
def test_any_batch_comes_back_as_a_list_of_the_same_length_in_order(batch: Records) -> None:
    pipe = Pipeline("tagger")

    @pipe.execute
    def tag(records: Records) -> Records:
        return [{"position": i, "keys": sorted(r)} for i, r in enumerate(records)]

    outputs = pipe.build()(batch)
    assert outputs == [{"position": i, "keys": sorted(r)} for i, r in enumerate(batch)]


def test_a_list_of_one_gives_a_list_of_one() -> None:
    assert build_echo()([{"x": 1}]) == [{"echo": 1}]


def test_an_empty_list_gives_an_empty_list_without_running_a_stage() -> None:
    pipe = Pipeline("p")
    calls: list[Records] = []

    @pipe.execute
    def predict(records: Records) -> Records:
        calls.append(records)
        return records

    assert pipe.build()([]) == []
    assert calls == []


def test_the_first_stage_receives_a_single_dict_as_a_batch_of_one() -> None:
    pipe = Pipeline("p")
    seen: list[Any] = []

    @pipe.execute
    def predict(records: Records) -> Records:
        seen.append(records)
        return [{"n": len(records)}]

    assert pipe({"x": 1}) == {"n": 1}
    assert seen == [[{"x": 1}]]


def test_a_dict_subclass_is_accepted_as_one_record() -> None:
    record = collections.OrderedDict(x=1)
    assert build_echo()(record) == {"echo": 1}


def test_a_list_of_dict_subclasses_is_accepted_as_a_batch() -> None:
    batch = [collections.OrderedDict(x=1), {"x": 2}, collections.defaultdict(int, x=3)]
    assert build_echo()(batch) == [{"echo": 1}, {"echo": 2}, {"echo": 3}]


@pytest.mark.parametrize(
    ("inputs", "type_name"),
    [
        (({"x": 1},), "tuple"),
        ("x", "str"),
        (None, "NoneType"),
        (3, "int"),
        (np.array([1, 2]), "ndarray"),
        ((row for row in [{"x": 1}]), "generator"),
    ],
    ids=["tuple", "str", "None", "int", "ndarray", "generator"],
)
def test_inputs_that_are_neither_dict_nor_list_name_the_type_received(
    inputs: Any, type_name: str
) -> None:
    with pytest.raises(InferenceBackendRuntimeError) as err:
        build_echo()(inputs)
    assert f"got {type_name}" in str(err.value)


@pytest.mark.parametrize(
    ("batch", "index", "type_name"),
    [
        ([{"x": 1}, {"x": 2}, 3], 2, "int"),
        ([[("x", 1)]], 0, "list"),
        ([{"x": 1}, None], 1, "NoneType"),
    ],
    ids=["int-at-2", "list-at-0", "None-at-1"],
)
def test_a_list_with_a_non_dict_names_its_index_and_type(
    batch: list[Any], index: int, type_name: str
) -> None:
    with pytest.raises(InferenceBackendRuntimeError) as err:
        build_echo()(batch)
    assert f"record {index} is {type_name}" in str(err.value)


def test_a_batch_too_short_raises_naming_the_last_stage() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records) -> Records:
        return records[:1]

    with pytest.raises(InferenceBackendRuntimeError) as err:
        pipe([{"x": 1}, {"x": 2}])
    message = str(err.value)
    assert "execute `predict`" in message
    assert "returned 1 record(s) for a batch of 2" in message


def test_a_batch_too_long_raises_naming_the_last_stage() -> None:
    pipe = Pipeline("p")
    pipe.add_execute(lambda records: records)

    @pipe.transform_outputs
    def explode(outputs: Records) -> Records:
        return outputs + outputs

    with pytest.raises(InferenceBackendRuntimeError) as err:
        pipe({"x": 1})
    message = str(err.value)
    assert "transform_outputs `explode`" in message
    assert "returned 2 record(s) for a batch of 1" in message


@pytest.mark.parametrize(
    "outputs",
    [{"y": 1}, ({"y": 1},), np.array([1.0]), None],
    ids=["dict", "tuple", "ndarray", "None"],
)
def test_an_output_that_is_not_a_list_raises_naming_the_stage_and_the_type(
    outputs: Any,
) -> None:
    with pytest.raises(InferenceBackendRuntimeError) as err:
        build_returning(outputs)({"x": 1})
    message = str(err.value)
    assert "execute `predict`" in message
    assert f"returned {type(outputs).__name__}" in message


def test_an_output_that_is_a_list_subclass_is_accepted() -> None:
    class Rows(list):  # type: ignore[type-arg]
        pass

    assert build_returning(Rows([{"y": 1}, {"y": 2}]))([{}, {}]) == [{"y": 1}, {"y": 2}]


# -- stage and initializer failures --------------------------------------------------------


def test_a_failing_stage_raises_stage_error_naming_stage_function_and_location() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records) -> Records:
        raise ValueError("model exploded")

    location = f"{__file__}:{predict.__code__.co_firstlineno}"
    with pytest.raises(StageError) as err:
        pipe({"x": 1})
    error = err.value
    assert error.stage == "execute"
    assert error.function == "predict"
    assert error.location == location
    message = str(error)
    assert "execute `predict`" in message
    assert location in message
    assert "ValueError: model exploded" in message


def test_a_stage_error_chains_the_original_exception() -> None:
    pipe = Pipeline("p")
    original = KeyError("feature")

    @pipe.transform_inputs
    def prepare(records: Records) -> Records:
        raise original

    pipe.add_execute(lambda records: records)
    with pytest.raises(StageError) as err:
        pipe({"x": 1})
    assert err.value.stage == "transform_inputs"
    assert err.value.function == "prepare"
    assert err.value.__cause__ is original


def test_a_stage_error_is_an_inference_backend_runtime_error() -> None:
    pipe = Pipeline("p")

    @pipe.transform_outputs
    def label(outputs: Records) -> Records:
        return [{"ratio": 1 / 0} for _ in outputs]

    pipe.add_execute(lambda records: records)
    with pytest.raises(InferenceBackendRuntimeError) as err:
        pipe({"x": 1})
    assert isinstance(err.value, StageError)
    assert err.value.stage == "transform_outputs"
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_a_stage_raising_a_packflow_error_is_still_a_stage_error_naming_it() -> None:
    # A transform_outputs that validates its own rows is common; its error must still
    # say which stage failed.
    pipe = Pipeline("p")
    pipe.add_execute(lambda records: records)

    @pipe.transform_outputs
    def label(outputs: Records) -> Records:
        return ensure_valid_output([{"score": math.nan} for _ in outputs])

    with pytest.raises(StageError) as err:
        pipe({"x": 1})
    assert err.value.stage == "transform_outputs"
    assert err.value.function == "label"
    assert isinstance(err.value.__cause__, InferenceBackendValidationError)


def test_a_failing_initializer_raises_an_initialization_error_at_build() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model() -> int:
        raise FileNotFoundError("weights.bin")

    pipe.add_execute(lambda records: records)
    with pytest.raises(InferenceBackendInitializationError) as err:
        pipe.build()
    message = str(err.value)
    assert "`model`" in message
    assert f"{__file__}:{model.__code__.co_firstlineno}" in message
    assert "weights.bin" in message
    assert isinstance(err.value.__cause__, FileNotFoundError)


def test_a_failing_initializer_surfaces_on_the_first_call_of_the_default_instance() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model() -> int:
        raise RuntimeError("no GPU")

    pipe.add_execute(lambda records: records)
    with pytest.raises(InferenceBackendInitializationError, match="no GPU"):
        pipe({"x": 1})


def test_the_default_instance_is_built_again_after_a_failed_build() -> None:
    pipe = Pipeline("p")
    attempts: list[int] = []

    @pipe.initialize
    def model() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("model store unreachable")
        return 7

    @pipe.execute
    def predict(records: Records, model: int) -> Records:
        return [{"model": model} for _ in records]

    with pytest.raises(InferenceBackendInitializationError):
        pipe({})
    assert pipe({}) == {"model": 7}


def test_initializers_after_a_failing_one_do_not_run() -> None:
    pipe = Pipeline("p")
    runs: list[str] = []

    @pipe.initialize
    def weights() -> int:
        raise OSError("disk")

    @pipe.initialize
    def model(weights: int) -> int:
        runs.append("model")
        return weights

    pipe.add_execute(lambda records: records)
    with pytest.raises(InferenceBackendInitializationError):
        pipe.build()
    assert runs == []


# -- importing runs nothing ----------------------------------------------------------------


PIPELINE_MODULE = """
    from packflow import Pipeline, Records

    CALLS = []
    pipe = Pipeline("imported")


    @pipe.initialize
    def model():
        CALLS.append("model")
        raise RuntimeError("an initializer ran at import time")


    @pipe.execute
    def predict(records: Records, model) -> Records:
        CALLS.append("predict")
        return records
"""


def import_from(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_importing_a_module_that_defines_a_pipeline_runs_no_user_code(tmp_path: Path) -> None:
    path = tmp_path / "inference.py"
    path.write_text(textwrap.dedent(PIPELINE_MODULE))
    module = import_from(path, "packflow_test_imported_pipeline")
    assert module.CALLS == []
    assert isinstance(module.pipe, Pipeline)


def test_checking_an_imported_pipeline_runs_no_user_code(tmp_path: Path) -> None:
    path = tmp_path / "inference.py"
    path.write_text(textwrap.dedent(PIPELINE_MODULE))
    module = import_from(path, "packflow_test_checked_pipeline")
    module.pipe.check()
    assert module.CALLS == []


def test_an_imported_pipeline_runs_its_initializer_on_build(tmp_path: Path) -> None:
    path = tmp_path / "inference.py"
    path.write_text(textwrap.dedent(PIPELINE_MODULE))
    module = import_from(path, "packflow_test_built_pipeline")
    with pytest.raises(InferenceBackendInitializationError):
        module.pipe.build()
    assert module.CALLS == ["model"]


# -- validate ------------------------------------------------------------------------------


def test_validate_returns_the_outputs_when_they_are_json_ready() -> None:
    built = build_echo()
    assert built.validate([{"x": 1}, {"x": "a"}]) == [{"echo": 1}, {"echo": "a"}]
    assert built.validate({"x": [1, 2]}) == {"echo": [1, 2]}


def test_validate_on_the_pipeline_uses_the_default_instance() -> None:
    pipe = Pipeline("p")
    pipe.add_execute(lambda records: [{"ok": True} for _ in records])
    assert pipe.validate({"x": 1}) == {"ok": True}


@pytest.mark.parametrize(
    ("outputs", "index", "path", "fragment"),
    [
        # Converted as packflow run converts them (one rule), then checked.
        ([{"a": 1}, {"score": np.float32("nan")}], 1, "score", "nan"),
        ([{"m": {"scores": [1.0, math.nan]}}], 0, "m.scores[1]", "NaN"),
        ([{"a": 1}, {"a": 2}, {"a": math.inf}], 2, "a", "inf"),
        ([{"meta": {1: "x"}}], 0, "meta[1]", "not a string"),
        ([{"ids": {b"x"}}], 0, "ids[0]", "bytes"),
        ([{"arr": np.array([1, object()], dtype=object)}], 0, "arr[1]", "object"),
    ],
    ids=["numpy-scalar", "nan-nested", "inf", "non-str-key", "set", "ndarray"],
)
def test_validate_names_record_index_and_key_path_of_the_first_bad_value(
    outputs: Records, index: int, path: str, fragment: str
) -> None:
    built = build_returning(outputs)
    with pytest.raises(InferenceBackendValidationError) as err:
        built.validate([{}] * len(outputs))
    assert err.value.index == index
    assert err.value.path == path
    message = str(err.value)
    assert f"record {index} at {path}" in message
    assert fragment in message


def test_an_output_row_that_is_not_a_dict_breaks_the_contract_naming_its_index() -> None:
    built = build_returning([{"a": 1}, ["not", "a", "dict"]])
    with pytest.raises(InferenceBackendRuntimeError) as err:
        built([{}, {}])
    assert err.value.index == 1
    assert err.value.stage == "execute"
    assert "output record 1" in str(err.value)
    assert "must be a dict" in str(err.value)


def test_a_single_event_whose_output_is_not_a_dict_is_refused() -> None:
    pipe = Pipeline("scalar")

    @pipe.execute
    def predict(records):  # unannotated, so only the run-time contract can catch it
        return [1 for _ in records]

    with pytest.raises(InferenceBackendRuntimeError, match="returned int 1 as output record 0"):
        pipe({"x": 1})


def test_validate_reports_only_the_first_offending_record() -> None:
    built = build_returning([{"a": 1}, {"b": math.nan}, {"c": object()}])
    with pytest.raises(InferenceBackendValidationError) as err:
        built.validate([{}, {}, {}])
    assert err.value.index == 1
    assert err.value.path == "b"


def test_validate_of_a_single_dict_reports_record_zero() -> None:
    built = build_returning([{"score": np.float64("inf")}])
    with pytest.raises(InferenceBackendValidationError) as err:
        built.validate({"x": 1})
    assert err.value.index == 0
    assert err.value.path == "score"


def test_validate_keeps_the_runtime_contract() -> None:
    with pytest.raises(InferenceBackendRuntimeError, match="got str"):
        build_echo().validate("not records")


def test_building_a_pipeline_without_execute_is_a_definition_error() -> None:
    with pytest.raises(PipelineDefinitionError, match="no execute stage"):
        Pipeline("empty").build()
