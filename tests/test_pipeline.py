"""Defining a pipeline: registration, stage order, initializers, injection, check, build."""

from __future__ import annotations

import importlib
import itertools
import logging
import pickle
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from packflow import (
    BackendConfig,
    ConfigError,
    Pipeline,
    PipelineDefinitionError,
    Records,
)


def echo(records: Records) -> Records:
    return [dict(record) for record in records]


# -- registration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "decorator", ["initialize", "transform_inputs", "execute", "transform_outputs"]
)
def test_decorators_return_the_function_unchanged(decorator: str) -> None:
    pipe = Pipeline("p")

    def resource(records: Records) -> Records:
        return records

    assert getattr(pipe, decorator)(resource) is resource


def test_decorated_stage_stays_a_plain_callable_function() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records, scale: float) -> Records:
        return [{"y": r["x"] * scale} for r in records]

    assert predict([{"x": 2}], scale=3) == [{"y": 6}]


def test_plain_method_twins_register_like_the_decorators() -> None:
    pipe = Pipeline("p")
    calls: list[str] = []

    def offset() -> int:
        return 10

    def add(records: Records, offset: int) -> list[int]:
        calls.append("transform_inputs")
        return [r["x"] + offset for r in records]

    def double(values: list[int]) -> list[int]:
        calls.append("execute")
        return [v * 2 for v in values]

    def wrap(values: list[int]) -> Records:
        calls.append("transform_outputs")
        return [{"y": v} for v in values]

    pipe.add_initializer(offset)
    pipe.add_transform_inputs(add)
    pipe.add_execute(double)
    pipe.add_transform_outputs(wrap)

    assert pipe({"x": 1}) == {"y": 22}
    assert calls == ["transform_inputs", "execute", "transform_outputs"]


def test_add_stage_accepts_the_kind_as_a_string() -> None:
    pipe = Pipeline("p")
    pipe.add_stage("execute", echo)
    assert pipe({"x": 1}) == {"x": 1}


def test_add_stage_with_an_unknown_kind_lists_the_kinds() -> None:
    pipe = Pipeline("p")
    with pytest.raises(PipelineDefinitionError) as err:
        pipe.add_stage("predict", echo)
    message = str(err.value)
    assert "'predict'" in message
    assert "transform_inputs, execute, transform_outputs" in message


def test_registering_something_that_is_not_callable_is_a_definition_error() -> None:
    pipe = Pipeline("p")
    with pytest.raises(PipelineDefinitionError, match="execute"):
        pipe.add_execute(42)  # type: ignore[arg-type]


def test_pipeline_needs_a_non_empty_name() -> None:
    with pytest.raises(PipelineDefinitionError, match="name"):
        Pipeline("")


@pytest.mark.parametrize(
    "registration_order",
    list(itertools.permutations(["transform_inputs", "execute", "transform_outputs"])),
    ids="-then-".join,
)
def test_stages_run_in_kind_order_whatever_the_registration_order(
    registration_order: tuple[str, ...],
) -> None:
    pipe = Pipeline("p")
    calls: list[str] = []

    def inputs(records: Records) -> list[int]:
        calls.append("transform_inputs")
        return [r["x"] for r in records]

    def predict(values: list[int]) -> list[int]:
        calls.append("execute")
        return [v + 1 for v in values]

    def outputs(values: list[int]) -> Records:
        calls.append("transform_outputs")
        return [{"y": v} for v in values]

    functions = {"transform_inputs": inputs, "execute": predict, "transform_outputs": outputs}
    for kind in registration_order:
        pipe.add_stage(kind, functions[kind])

    assert pipe({"x": 1}) == {"y": 2}
    assert calls == ["transform_inputs", "execute", "transform_outputs"]


def test_a_second_different_execute_is_a_definition_error_naming_both() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records) -> Records:
        return records

    def other_predict(records: Records) -> Records:
        return records

    with pytest.raises(PipelineDefinitionError) as err:
        pipe.execute(other_predict)
    message = str(err.value)
    assert "`predict`" in message
    assert "`other_predict`" in message
    assert "execute" in message


@pytest.mark.parametrize("kind", ["transform_inputs", "transform_outputs"])
def test_a_second_different_transform_is_a_definition_error(kind: str) -> None:
    pipe = Pipeline("p")

    def first(records: Records) -> Records:
        return records

    def second(records: Records) -> Records:
        return records

    pipe.add_stage(kind, first)
    with pytest.raises(PipelineDefinitionError, match=kind):
        pipe.add_stage(kind, second)


def test_a_second_initializer_with_the_same_name_elsewhere_is_a_definition_error() -> None:
    pipe = Pipeline("p")

    def make() -> Any:
        def model() -> int:
            return 2

        return model

    @pipe.initialize
    def model() -> int:
        return 1

    with pytest.raises(PipelineDefinitionError, match="'model' is already provided"):
        pipe.initialize(make())


def test_re_registering_the_same_qualified_name_replaces_the_stage() -> None:
    pipe = Pipeline("p")

    # A notebook cell run twice, edited in between: the same function, defined again.
    @pipe.execute
    def predict(records: Records) -> Records:
        return [{"y": r["x"]} for r in records]

    @pipe.execute
    def predict(records: Records) -> Records:  # noqa: F811
        return [{"y": r["x"] * 2} for r in records]

    assert pipe({"x": 5}) == {"y": 10}


def test_re_registering_the_same_qualified_name_replaces_the_initializer() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model() -> int:
        return 1

    @pipe.initialize
    def model() -> int:  # noqa: F811
        return 2

    @pipe.execute
    def predict(records: Records, model: int) -> Records:
        return [{"model": model} for _ in records]

    assert pipe({}) == {"model": 2}


def test_re_registering_a_stage_after_build_invalidates_the_default_instance() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records) -> Records:
        return [{"version": 1} for _ in records]

    assert pipe({}) == {"version": 1}

    @pipe.execute
    def predict(records: Records) -> Records:  # noqa: F811
        return [{"version": 2} for _ in records]

    assert pipe({}) == {"version": 2}


def test_adding_an_initializer_after_build_rebuilds_the_default_instance() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records, config: BackendConfig) -> Records:
        return [{"n": len(records)}]

    assert pipe({}) == {"n": 1}
    runs: list[str] = []

    @pipe.initialize
    def model() -> str:
        runs.append("model")
        return "m"

    @pipe.execute
    def predict(records: Records, model: str) -> Records:  # noqa: F811
        return [{"model": model} for _ in records]

    assert pipe({}) == {"model": "m"}
    assert runs == ["model"]


# -- initializers and injection ----------------------------------------------------------


def test_the_initializer_name_is_the_resource_name() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def tokenizer() -> str:
        return "tok"

    @pipe.initialize
    def model() -> str:
        return "mdl"

    pipe.add_execute(echo)
    assert dict(pipe.build().resources) == {"tokenizer": "tok", "model": "mdl"}


def test_stages_receive_config_logger_and_resources_by_parameter_name() -> None:
    pipe = Pipeline("p", verbose=False)
    seen: dict[str, Any] = {}

    @pipe.initialize
    def model() -> str:
        return "the model"

    @pipe.execute
    def predict(records: Records, logger: logging.Logger, model: str, config: Any) -> Records:
        seen.update(logger=logger, model=model, config=config)
        return records

    built = pipe.build()
    built({"x": 1})
    assert seen["model"] == "the model"
    assert seen["config"] is built.config
    assert isinstance(seen["logger"], logging.Logger)
    assert seen["logger"].name.startswith("packflow")


def test_initializers_receive_config_logger_and_other_resources_by_name() -> None:
    pipe = Pipeline("p", feature_names=["a"])
    seen: dict[str, Any] = {}

    @pipe.initialize
    def vocabulary() -> list[str]:
        return ["a", "b"]

    @pipe.initialize
    def model(config: BackendConfig, logger: logging.Logger, vocabulary: list[str]) -> str:
        seen.update(config=config, logger=logger, vocabulary=vocabulary)
        return "m"

    pipe.add_execute(echo)
    pipe.build()
    assert seen["config"].feature_names == ["a"]
    assert isinstance(seen["logger"], logging.Logger)
    assert seen["vocabulary"] == ["a", "b"]


def test_initializers_run_in_dependency_order_not_registration_order() -> None:
    pipe = Pipeline("p")
    order: list[str] = []

    @pipe.initialize
    def model(weights: str, tokenizer: str) -> str:
        order.append("model")
        return weights + tokenizer

    @pipe.initialize
    def tokenizer(weights: str) -> str:
        order.append("tokenizer")
        return "t"

    @pipe.initialize
    def weights() -> str:
        order.append("weights")
        return "w"

    pipe.add_execute(echo)
    built = pipe.build()
    assert order == ["weights", "tokenizer", "model"]
    assert built.resources["model"] == "wt"


def test_initializers_run_once_per_built_instance() -> None:
    pipe = Pipeline("p")
    runs: list[int] = []

    @pipe.initialize
    def model() -> int:
        runs.append(1)
        return len(runs)

    @pipe.execute
    def predict(records: Records, model: int) -> Records:
        return [{"model": model} for _ in records]

    first = pipe.build()
    assert [first({}), first({}), first([{}, {}])] == [
        {"model": 1},
        {"model": 1},
        [{"model": 1}, {"model": 1}],
    ]
    second = pipe.build()
    assert second({}) == {"model": 2}
    assert len(runs) == 2


def test_the_default_instance_is_built_once_under_concurrent_first_calls() -> None:
    pipe = Pipeline("p")
    runs: list[int] = []
    threads_count = 8
    barrier = threading.Barrier(threads_count, timeout=10)

    @pipe.initialize
    def model() -> int:
        runs.append(1)
        return 1

    @pipe.execute
    def predict(records: Records, model: int) -> Records:
        return records

    def call() -> None:
        barrier.wait()
        pipe({})

    threads = [threading.Thread(target=call) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs == [1]


def test_initializer_cycle_is_a_definition_error_showing_the_cycle() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def a(b: int) -> int:
        return b

    @pipe.initialize
    def b(c: int) -> int:
        return c

    @pipe.initialize
    def c(a: int) -> int:
        return a

    pipe.add_execute(echo)
    with pytest.raises(PipelineDefinitionError) as err:
        pipe.check()
    assert "cycle: a -> b -> c -> a" in str(err.value)


def test_initializer_asking_for_itself_is_a_definition_error() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model(model: int) -> int:
        return model

    pipe.add_execute(echo)
    with pytest.raises(PipelineDefinitionError, match=r"`model`.*its own resource 'model'"):
        pipe.check()


def test_unknown_injected_name_in_a_stage_lists_the_available_names() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model() -> int:
        return 1

    @pipe.execute
    def predict(records: Records, modle: int) -> Records:
        return records

    with pytest.raises(PipelineDefinitionError) as err:
        pipe.check()
    message = str(err.value)
    assert "execute `predict`" in message
    assert "`modle`" in message
    assert "did you mean 'model'" in message
    assert "available: config, logger, model" in message


def test_unknown_injected_name_in_an_initializer_lists_the_available_names() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def tokenizer() -> int:
        return 1

    @pipe.initialize
    def model(tokeniser: int) -> int:
        return tokeniser

    pipe.add_execute(echo)
    with pytest.raises(PipelineDefinitionError) as err:
        pipe.check()
    message = str(err.value)
    assert "initializer `model`" in message
    assert "`tokeniser`" in message
    assert "available: config, logger, tokenizer" in message


@pytest.mark.parametrize("reserved", ["config", "logger"])
def test_an_initializer_may_not_take_a_reserved_name(reserved: str) -> None:
    pipe = Pipeline("p")

    def make() -> int:
        return 1

    make.__name__ = reserved
    make.__qualname__ = reserved
    with pytest.raises(PipelineDefinitionError, match=f"{reserved!r}.*reserved"):
        pipe.initialize(make)


# -- check -------------------------------------------------------------------------------


def test_check_reports_every_definition_problem_at_once() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def a(b: int) -> int:
        return b

    @pipe.initialize
    def b(a: int) -> int:
        return a

    @pipe.transform_inputs
    def no_data() -> Records:
        return []

    @pipe.transform_outputs
    def label(outputs: Records, modle: int) -> Records:
        return outputs

    with pytest.raises(PipelineDefinitionError) as err:
        pipe.check()
    problems = err.value.problems
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "no execute stage" in text
    assert "`no_data`" in text
    assert "no parameter to receive the data" in text
    assert "`modle`" in text
    assert "cycle" in text
    assert "4 definition problems" in str(err.value)


def test_check_reports_a_missing_execute() -> None:
    pipe = Pipeline("p")
    pipe.add_transform_inputs(echo)
    with pytest.raises(PipelineDefinitionError, match="no execute stage"):
        pipe.check()


def test_check_reports_a_stage_without_a_data_parameter_with_its_location() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict() -> Records:
        return []

    with pytest.raises(PipelineDefinitionError) as err:
        pipe.check()
    assert f"{__file__}:{predict.__code__.co_firstlineno}" in str(err.value)


def test_check_reports_a_positional_only_injected_parameter() -> None:
    pipe = Pipeline("p")

    @pipe.initialize
    def model() -> int:
        return 1

    @pipe.execute
    def predict(records: Records, model: int, /) -> Records:
        return records

    with pytest.raises(PipelineDefinitionError, match="'model' is positional-only"):
        pipe.check()


def test_check_runs_no_user_code() -> None:
    pipe = Pipeline("p")
    calls: list[str] = []

    @pipe.initialize
    def model(config: BackendConfig) -> int:
        calls.append("initializer")
        raise AssertionError("an initializer ran during check()")

    @pipe.transform_inputs
    def prepare(records: Records, model: int) -> Records:
        calls.append("transform_inputs")
        raise AssertionError("a stage ran during check()")

    @pipe.execute
    def predict(records: Records) -> Records:
        calls.append("execute")
        raise AssertionError("a stage ran during check()")

    pipe.check()
    assert calls == []


def test_a_failing_check_stops_build_before_any_initializer_runs() -> None:
    pipe = Pipeline("p")
    calls: list[str] = []

    @pipe.initialize
    def model() -> int:
        calls.append("model")
        return 1

    @pipe.execute
    def predict(records: Records, unknown: int) -> Records:
        return records

    with pytest.raises(PipelineDefinitionError):
        pipe.build()
    assert calls == []


def test_defining_a_pipeline_runs_no_initializer_until_first_use() -> None:
    pipe = Pipeline("p")
    calls: list[str] = []

    @pipe.initialize
    def model() -> int:
        calls.append("model")
        return 1

    @pipe.execute
    def predict(records: Records, model: int) -> Records:
        return records

    assert calls == []
    assert pipe.ready() is True
    assert calls == ["model"]


# -- config ------------------------------------------------------------------------------


def test_build_overrides_beat_pipeline_config_which_beats_class_defaults() -> None:
    pipe = Pipeline("p", verbose=True, feature_names=["a", "b"])
    pipe.add_execute(echo)

    defaults = BackendConfig()
    built = pipe.build(feature_names=["c"])
    assert built.config.feature_names == ["c"]
    assert built.config.verbose is True
    assert built.config.nested_field_delimiter == defaults.nested_field_delimiter
    assert pipe.build().config.feature_names == ["a", "b"]


def test_stages_see_the_resolved_config() -> None:
    pipe = Pipeline("p", feature_names=["a"])

    @pipe.execute
    def predict(records: Records, config: BackendConfig) -> Records:
        return [{"features": config.feature_names} for _ in records]

    assert pipe.build(feature_names=["b"])({}) == {"features": ["b"]}
    assert pipe({}) == {"features": ["a"]}


def test_an_unknown_config_key_is_a_config_error() -> None:
    pipe = Pipeline("p")
    pipe.add_execute(echo)
    with pytest.raises(ConfigError, match="verbos"):
        pipe.build(verbos=True)


@attrs.frozen(kw_only=True)
class ScorerConfig(BackendConfig):
    threshold: float = 0.5
    model_path: str = "model.bin"


def test_a_custom_config_model_is_structured_and_injected() -> None:
    pipe = Pipeline("p", config_model=ScorerConfig, threshold=0.9)

    @pipe.execute
    def predict(records: Records, config: ScorerConfig) -> Records:
        return [{"threshold": config.threshold, "path": config.model_path} for _ in records]

    built = pipe.build(model_path="other.bin")
    assert isinstance(built.config, ScorerConfig)
    assert built({}) == {"threshold": 0.9, "path": "other.bin"}


def test_a_custom_config_model_keeps_the_backend_config_fields() -> None:
    pipe = Pipeline("p", config_model=ScorerConfig, verbose=True)
    pipe.add_execute(echo)
    config = pipe.build().config
    assert config.verbose is True
    assert config.threshold == 0.5


def test_a_wrong_type_for_a_custom_config_field_is_a_config_error() -> None:
    pipe = Pipeline("p", config_model=ScorerConfig, threshold="high")
    pipe.add_execute(echo)
    with pytest.raises(ConfigError, match="threshold"):
        pipe.build()


class PlainConfig:
    verbose = False


@attrs.frozen
class UnrelatedAttrsConfig:
    verbose: bool = False


@pytest.mark.parametrize(
    "model",
    [PlainConfig, UnrelatedAttrsConfig, BackendConfig(), dict],
    ids=["plain-class", "attrs-not-a-subclass", "an-instance", "dict"],
)
def test_a_config_model_that_is_not_an_attrs_backend_config_subclass_is_refused(
    model: Any,
) -> None:
    with pytest.raises(ConfigError) as err:
        Pipeline("p", config_model=model)
    assert err.value.field == "config_model"
    assert "BackendConfig" in str(err.value)


def test_a_parameter_with_a_default_keeps_it_when_nothing_of_that_name_is_injected() -> None:
    pipe = Pipeline("defaults")

    @pipe.execute
    def predict(records: list[dict[str, Any]], threshold: float = 0.5) -> list[dict[str, Any]]:
        return [{"above": r["x"] > threshold} for r in records]

    assert pipe([{"x": 0.7}, {"x": 0.2}]) == [{"above": True}, {"above": False}]


def test_a_parameter_with_a_default_is_injected_when_a_resource_has_its_name() -> None:
    pipe = Pipeline("defaults-injected")

    @pipe.initialize
    def threshold() -> float:
        return 0.1

    @pipe.execute
    def predict(records: list[dict[str, Any]], threshold: float = 0.5) -> list[dict[str, Any]]:
        return [{"above": r["x"] > threshold} for r in records]

    assert pipe({"x": 0.2}) == {"above": True}


def test_an_undecorated_config_subclass_is_refused_instead_of_dropping_its_fields() -> None:
    class Undecorated(BackendConfig):
        threshold: float = 0.5

    with pytest.raises(ConfigError) as info:
        Pipeline("undecorated", config_model=Undecorated)
    assert info.value.field == "config_model"


def test_a_module_level_pipeline_pickles_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "picklable_pipeline.py").write_text(
        "from packflow import Pipeline\n"
        "pipe = Pipeline('picklable')\n"
        "@pipe.execute\n"
        "def predict(records):\n"
        "    return [{'n': len(r)} for r in records]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("picklable_pipeline")
    copy = pickle.loads(pickle.dumps(module.pipe))
    assert copy is module.pipe
    assert copy({"a": 1}) == {"n": 1}


def test_a_pipeline_that_is_not_a_module_global_pickles_by_value() -> None:
    pipe = Pipeline("local", feature_names=["a"])
    pipe.add_execute(echo)
    copy = pickle.loads(pickle.dumps(pipe))
    assert copy is not pipe
    assert copy.name == "local"
    assert copy({"a": 1, "b": 2}) == {"a": 1}


def test_pickling_by_value_names_a_function_that_cannot_be_pickled() -> None:
    pipe = Pipeline("local")

    @pipe.execute
    def inner(records: Records) -> Records:
        return records

    with pytest.raises((pickle.PicklingError, AttributeError), match="inner"):
        pickle.dumps(pipe)
