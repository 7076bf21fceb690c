"""The class-based front end: ``class Backend(InferenceBackend)``."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any, List  # noqa: UP035 - List is what the original docs' example uses

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from packflow import (
    BackendConfig,
    ConfigError,
    InferenceBackend,
    InferenceBackendInitializationError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PipelineDefinitionError,
    PipelineTypeError,
    StageError,
)
from packflow.backend import check_backend


@pytest.fixture(autouse=True)
def _no_override_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKEND_CONFIG_FILE_PATH", raising=False)


# --------------------------------------------------------------------------- the original docs


def test_the_custom_backend_page_example_runs_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    class Backend(InferenceBackend):
        def initialize(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.logger.info("Loading model weights")
            self.logger.info("Placing model on GPUs")
            # ... etc

        def execute(self, inputs):  # type: ignore[no-untyped-def]
            return inputs

    with caplog.at_level(logging.INFO, logger="packflow"):
        backend = Backend()
    assert [r.getMessage() for r in caplog.records] == [
        "Loading model weights",
        "Placing model on GPUs",
    ]
    assert backend({"sample": "data"}) == {"sample": "data"}


def test_the_numpy_math_example_computes_row_means() -> None:
    class NumpyMath(InferenceBackend):
        def execute(self, inputs):  # type: ignore[no-untyped-def]
            """
            Receives the input array from transform_inputs and calculates the mean.
            """
            means = inputs.mean(axis=1)

            return means

        def transform_outputs(self, outputs):  # type: ignore[no-untyped-def]
            """
            Use Packflow utilities to convert outputs to native Python types
            """
            return [
                # calling tolist() on a numpy array converts to native Python types
                {"mean": v}
                for v in outputs.tolist()
            ]

    # Set Default Arguments for the NumpyMath backend
    app = NumpyMath(feature_names=["a", "b", "c"], input_format="numpy")
    assert app({"a": 1, "b": 2, "c": 6, "ignored": 100}) == {"mean": 3.0}
    assert app([{"a": 0, "b": 0, "c": 3}, {"a": 3, "b": 3, "c": 3}]) == [
        {"mean": 1.0},
        {"mean": 3.0},
    ]


@attrs.frozen(kw_only=True)
class CustomConfigModel(BackendConfig):
    # New domain-specific fields with defaults
    model_path: str = "./resources/model.joblib"

    # Set fields without defaults so the backend cannot start without this provided
    output_class_names: list[str]


class CustomBackend(InferenceBackend):
    backend_config_model = CustomConfigModel

    def initialize(self):  # type: ignore[no-untyped-def]
        self.logger(f"Loading model from {self.config.model_path}")
        self.model = lambda x: x  # Mocking loading of a model

    def execute(self, inputs: Any) -> Any:
        return self.model(inputs)

    def transform_outputs(self, outputs: Any) -> List[dict]:  # noqa: UP006
        cleaned = []
        for row in outputs:
            cleaned.append(dict(zip(self.config.output_class_names, row, strict=False)))
        return cleaned


def test_the_extended_config_example_uses_its_custom_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="packflow"):
        backend = CustomBackend(output_class_names=["first"])
    assert caplog.records[0].getMessage() == "Loading model from ./resources/model.joblib"
    assert backend.config.output_class_names == ["first"]
    assert backend({"x": 1}) == {"first": "x"}


def test_a_missing_required_config_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="output_class_names"):
        CustomBackend()


def test_an_unknown_config_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="verbos"):
        CustomBackend(output_class_names=["a"], verbos=True)


def test_the_override_file_wins_over_keyword_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "config.json"
    override.write_text(json.dumps({"configs": {"output_class_names": ["from_file"]}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(override))
    backend = CustomBackend(output_class_names=["from_kwargs"], verbose=True)
    assert backend.config.output_class_names == ["from_file"]
    assert backend.config.verbose is True


# --------------------------------------------------------------------------- definition


def test_a_subclass_without_execute_is_defined_and_refused_when_instantiated() -> None:
    class NoExecute(InferenceBackend):
        def transform_inputs(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(TypeError, match=r"cannot instantiate NoExecute\(InferenceBackend\)"):
        NoExecute()


def test_instantiating_inference_backend_itself_is_a_type_error_as_with_an_abc() -> None:
    with pytest.raises(TypeError, match="InferenceBackend itself: it is abstract"):
        InferenceBackend()


def test_a_mixin_base_without_execute_is_completed_by_a_subclass() -> None:
    class Labels(InferenceBackend):
        def transform_outputs(self, outputs: Any) -> Any:
            return [{"out": value} for value in outputs]

    class Concrete(Labels):
        def execute(self, inputs: Any) -> Any:
            return [record["x"] for record in inputs]

    assert Concrete()({"x": 5}) == {"out": 5}


def test_checking_a_class_without_execute_reports_the_missing_stage() -> None:
    class NoExecute(InferenceBackend):
        def transform_inputs(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(PipelineDefinitionError) as info:
        check_backend(NoExecute)
    assert str(info.value).startswith(
        "cannot check NoExecute(InferenceBackend): it has no execute method; an "
        "InferenceBackend must define `def execute(self, inputs): ...`"
    )
    assert "@pipe.execute" not in str(info.value)
    assert info.value.problems == [str(info.value)]


def test_an_abstract_base_may_leave_execute_to_its_subclasses() -> None:
    class Base(InferenceBackend, abstract=True):
        def transform_outputs(self, outputs: Any) -> Any:
            return [{"out": value} for value in outputs]

    class Concrete(Base):
        def execute(self, inputs: Any) -> Any:
            return [record["x"] for record in inputs]

    assert Concrete()({"x": 5}) == {"out": 5}
    with pytest.raises(TypeError, match="cannot instantiate Base"):
        Base()


def test_a_config_model_that_is_not_attrs_fails_at_class_definition() -> None:
    class NotAttrs(BackendConfig):
        extra: int = 1

    with pytest.raises(ConfigError, match=r"decorate it with @attrs\.frozen"):

        class Backend(InferenceBackend):
            backend_config_model = NotAttrs

            def execute(self, inputs: Any) -> Any:
                return inputs


def test_a_static_execute_is_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="define it as a plain method"):

        class Backend(InferenceBackend):
            @staticmethod
            def execute(inputs: Any) -> Any:
                return inputs


def test_methods_run_in_stage_order() -> None:
    class Backend(InferenceBackend):
        def transform_inputs(self, inputs: list[dict[str, Any]]) -> list[int]:
            return [record["x"] for record in inputs]

        def execute(self, inputs: list[int]) -> list[int]:
            return [value * 10 for value in inputs]

        def transform_outputs(self, outputs: list[int]) -> list[dict[str, Any]]:
            return [{"y": value + 1} for value in outputs]

    assert Backend()([{"x": 1}, {"x": 2}]) == [{"y": 11}, {"y": 21}]


def test_an_overridden_init_that_calls_super_works() -> None:
    class Backend(InferenceBackend):
        def __init__(self, factor: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.factor = factor

        def execute(self, inputs: Any) -> Any:
            return [{"y": record["x"] * self.factor} for record in inputs]

    assert Backend(3, verbose=True)({"x": 2}) == {"y": 6}


def test_an_overridden_init_that_forgets_super_says_so_on_call() -> None:
    class Backend(InferenceBackend):
        def __init__(self) -> None:
            self.ready_to_go = True

        def execute(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(InferenceBackendInitializationError, match=r"super\(\).__init__"):
        Backend()({"x": 1})


# --------------------------------------------------------------------------- lifecycle


def test_initialize_runs_once_at_construction_with_config_and_logger() -> None:
    seen: list[Any] = []

    class Backend(InferenceBackend):
        def initialize(self) -> None:
            seen.append((self.config.verbose, self.logger.name))

        def execute(self, inputs: Any) -> Any:
            return inputs

    backend = Backend(verbose=True)
    backend({"x": 1})
    backend({"x": 2})
    assert seen == [(True, "packflow.Backend")]


def test_an_exception_in_initialize_is_an_initialization_error_with_the_cause() -> None:
    class Backend(InferenceBackend):
        def initialize(self) -> None:
            raise FileNotFoundError("weights.bin")

        def execute(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(InferenceBackendInitializationError, match=r"Backend\.initialize") as info:
        Backend()
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert "test_backend.py:" in str(info.value)


def test_an_exception_in_a_method_is_a_stage_error_naming_it() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            raise ZeroDivisionError("boom")

    with pytest.raises(StageError) as info:
        Backend()({"x": 1})
    assert (info.value.stage, info.value.function) == ("execute", "execute")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_an_output_of_the_wrong_length_is_refused() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs[:1]

    with pytest.raises(InferenceBackendRuntimeError, match="1 record"):
        Backend()([{"x": 1}, {"x": 2}])


def test_get_metrics_times_each_method_of_the_last_call() -> None:
    class Backend(InferenceBackend):
        def transform_inputs(self, inputs: Any) -> Any:
            return inputs

        def execute(self, inputs: Any) -> Any:
            return inputs

    backend = Backend()
    backend([{"x": 1}, {"x": 2}, {"x": 3}])
    metrics = backend.get_metrics()
    assert metrics.batch_size == 3
    assert set(metrics.execution_times) == {"preprocess", "transform_inputs", "execute"}


def test_validate_points_at_an_output_json_cannot_hold() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return [{"score": {"raw": object()}} for _ in inputs]

    with pytest.raises(InferenceBackendValidationError) as info:
        Backend().validate([{"x": 1}])
    assert info.value.index == 0
    assert "raw" in str(info.value.path)


def test_ready_can_be_overridden() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs

        def ready(self) -> bool:
            return False

    assert Backend().ready() is False


def test_ready_is_true_once_constructed() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs

    assert Backend().ready() is True


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=20))
@settings(max_examples=50)
def test_one_output_per_input_for_any_batch(batch: list[dict[str, int]]) -> None:
    assert ECHO(batch) == batch


class _Echo(InferenceBackend):
    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs


ECHO = _Echo()


class _Counting(InferenceBackend):
    initialized = 0

    def initialize(self) -> None:
        type(self).initialized += 1

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"verbose": self.config.verbose} for _ in inputs]


def test_a_pickled_backend_is_rebuilt_with_its_config_and_initialized_again() -> None:
    original = _Counting(verbose=True)
    before = _Counting.initialized
    copy = pickle.loads(pickle.dumps(original))
    assert copy is not original
    assert copy({"x": 1}) == {"verbose": True}
    assert _Counting.initialized == before + 1


# --------------------------------------------------------------------------- checking


def test_check_backend_reads_the_methods_without_running_initialize() -> None:
    class Backend(InferenceBackend):
        def initialize(self) -> None:
            raise AssertionError("initialize must not run during a check")

        def transform_inputs(self, inputs: Any) -> Any:
            return inputs

        def execute(self, inputs: Any) -> Any:
            return inputs

    checked = check_backend(Backend)  # initialize raising would fail the test
    assert [stage.kind.value for stage in checked.graph.stages] == [
        "transform_inputs",
        "execute",
    ]
    assert checked.graph.name.endswith("Backend")


def test_method_annotations_that_do_not_fit_fail_before_initialize_runs() -> None:
    initialized: list[bool] = []

    class Backend(InferenceBackend):
        def initialize(self) -> None:
            initialized.append(True)

        def transform_inputs(self, inputs: list[dict[str, Any]]) -> list[str]:
            return [str(record) for record in inputs]

        def execute(self, inputs: NDArray[np.float64]) -> list[dict[str, Any]]:
            return [{"y": value} for value in inputs]

    with pytest.raises(PipelineTypeError) as info:
        Backend()
    (problem,) = info.value.problems
    assert (problem.stage, problem.parameter) == ("execute", "inputs")
    assert "NDArray[float64]" in str(problem)
    assert initialized == []


def test_numpy_input_reaches_execute_as_an_annotated_array() -> None:
    class Backend(InferenceBackend):
        def execute(self, inputs: NDArray[np.float64]) -> NDArray[np.float64]:
            return inputs.sum(axis=1)

        def transform_outputs(self, outputs: NDArray[np.float64]) -> list[dict[str, float]]:
            return [{"sum": value} for value in outputs.tolist()]

    backend = Backend(input_format="numpy", feature_names=["a", "b"])
    assert backend({"a": 1.5, "b": 2.0}) == {"sum": 3.5}


def test_checking_inference_backend_itself_says_it_is_abstract() -> None:
    with pytest.raises(PipelineDefinitionError, match="InferenceBackend itself: it is abstract"):
        check_backend(InferenceBackend)


def test_a_mixin_without_execute_defines_no_stage_until_a_subclass_completes_it() -> None:
    class Scaled(InferenceBackend):
        def transform_inputs(self, inputs: Any) -> Any:
            return [record["x"] * 10 for record in inputs]

    class Mixed(Scaled):
        def execute(self, inputs: Any) -> Any:
            return [{"y": value} for value in inputs]

    with pytest.raises(TypeError, match="cannot instantiate Scaled"):
        Scaled()
    assert check_backend(Mixed).graph.stages
    assert Mixed()({"x": 2}) == {"y": 20}


# -- misspelt stage methods -----------------------------------------------------------------


class Misspelt(InferenceBackend):
    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def transfrom_outputs(self, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"never": "runs"} for _ in outputs]


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("transfrom_outputs", "transform_outputs"),
        ("transform_input", "transform_inputs"),
        ("transform_output", "transform_outputs"),
        ("initialise", "initialize"),
        ("exceute", "execute"),
    ],
)
def test_a_misspelt_stage_method_is_refused_at_instantiation_with_did_you_mean(
    name: str, stage: str
) -> None:
    def method(self: Any, data: Any = None) -> Any:
        return data

    def execute(self: Any, inputs: Any) -> Any:
        return inputs

    body: dict[str, Any] = {name: method}
    if stage != "execute":
        body["execute"] = execute
    cls = type("Typo", (InferenceBackend,), body)
    with pytest.raises(PipelineDefinitionError) as info:
        cls()
    assert f"Typo.{name}" in str(info.value)
    assert f"did you mean {stage!r}?" in str(info.value)
    assert len(info.value.problems) == 1


def test_a_misspelt_stage_method_fails_check_without_running_code() -> None:
    with pytest.raises(
        PipelineDefinitionError, match=r"Misspelt\.transfrom_outputs \(.*\.py:\d+\)"
    ):
        check_backend(Misspelt)


def test_a_misspelt_stage_method_in_a_base_class_is_found() -> None:
    class Child(Misspelt):
        pass

    with pytest.raises(PipelineDefinitionError, match=r"Misspelt\.transfrom_outputs"):
        Child()


def test_helpers_that_only_resemble_a_stage_are_left_alone() -> None:
    class Helpers(InferenceBackend):
        def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return self.transform_output_batch(inputs)

        def transform_output_batch(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return rows

        def _transfrom_outputs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return rows

        def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return rows

    assert Helpers()({"x": 1}) == {"x": 1}


def test_a_near_miss_of_a_stage_the_class_defines_is_a_helper() -> None:
    class Both(InferenceBackend):
        def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return inputs

        def transform_outputs(self, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [self.transform_output(row) for row in outputs]

        def transform_output(self, row: dict[str, Any]) -> dict[str, Any]:
            return {"y": row["x"]}

    assert Both()({"x": 1}) == {"y": 1}
