"""packflow.testing: input strategies from what a pipeline declares, and the pytest plugin."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, TypedDict

import attrs
import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from typing_extensions import NotRequired

from packflow import InferenceBackend, Pipeline, Records
from packflow.testing import NothingDeclaredError, UndeclaredFieldError, batches, records

pytest_plugins = ["pytester"]


def one(strategy: Any) -> Any:
    """The simplest value a strategy draws (``.example()`` is for interactive use)."""
    return find(strategy, lambda _: True)


class Reading(TypedDict):
    sensor: str
    celsius: float
    note: NotRequired[str]


@attrs.frozen
class Applicant:
    age: int
    income: float
    employed: bool = False


def reading_pipe() -> Pipeline:
    pipe = Pipeline("kelvin")

    @pipe.execute
    def to_kelvin(readings: list[Reading]) -> Records:
        return [{"sensor": r["sensor"], "kelvin": r["celsius"] + 273.15} for r in readings]

    return pipe


def applicant_pipe(**config: Any) -> Pipeline:
    pipe = Pipeline("scorer", **config)

    @pipe.execute
    def score(applicants: list[Applicant]) -> Records:
        return [{"ok": (a.age >= 18 and a.income > 0) or a.employed} for a in applicants]

    return pipe


def numpy_pipe(**config: Any) -> Pipeline:
    pipe = Pipeline("matrix", input_format="numpy", **config)

    @pipe.execute
    def total(data: np.ndarray) -> Records:
        return [{"largest": float(row.max())} for row in data]

    return pipe


def untyped_pipe(**config: Any) -> Pipeline:
    pipe = Pipeline("untyped", **config)

    @pipe.execute
    def echo(records: Records) -> Records:
        return records

    return pipe


# -- records(): from a TypedDict, an attrs class, feature_names and numpy_dtype ----------


@given(records(reading_pipe()))
def test_records_of_a_typeddict_have_its_required_keys_and_types(record: dict[str, Any]) -> None:
    assert {"sensor", "celsius"} <= set(record) <= {"sensor", "celsius", "note"}
    assert isinstance(record["sensor"], str)
    assert isinstance(record["celsius"], float)


@given(records(applicant_pipe()))
def test_records_of_an_attrs_class_leave_defaulted_fields_optional(
    record: dict[str, Any],
) -> None:
    assert {"age", "income"} <= set(record) <= {"age", "income", "employed"}
    assert type(record["age"]) is int


def test_optional_keys_are_sometimes_present_and_sometimes_not() -> None:
    seen: set[bool] = set()

    @given(records(reading_pipe()))
    def look(record: dict[str, Any]) -> None:
        seen.add("note" in record)

    look()
    assert seen == {True, False}


@given(records(numpy_pipe(feature_names=["user.age", "score"], numpy_dtype="int8")))
def test_numpy_features_are_nested_paths_with_values_of_the_dtype(
    record: dict[str, Any],
) -> None:
    assert set(record) == {"user", "score"}
    assert set(record["user"]) == {"age"}
    for value in (record["user"]["age"], record["score"]):
        assert type(value) is int
        assert -128 <= value <= 127


@given(records(numpy_pipe(feature_names=["x"], numpy_dtype="float32")))
def test_float32_values_are_finite_and_fit_the_dtype(record: dict[str, Any]) -> None:
    assert np.isfinite(np.float32(record["x"]))
    assert float(np.float32(record["x"])) == record["x"]


@given(records(applicant_pipe(rename_fields={"applicant.years": "age"})))
def test_a_renamed_field_is_drawn_under_its_source_path(record: dict[str, Any]) -> None:
    assert "age" not in record
    assert type(record["applicant"]["years"]) is int


@given(records(applicant_pipe(flatten_nested_inputs=True, feature_names=["age", "income"])))
def test_records_with_flattening_and_features_are_what_the_stage_needs(
    record: dict[str, Any],
) -> None:
    assert set(record) == {"age", "income"}


def test_records_of_a_composition_are_those_of_its_first_part() -> None:
    downstream = untyped_pipe()

    drawn = one(records(reading_pipe() >> downstream))

    assert {"sensor", "celsius"} <= set(drawn)


class Thermometer(InferenceBackend):
    def execute(self, readings: list[Reading]) -> Records:
        return [{"c": r["celsius"]} for r in readings]


def test_records_of_a_class_backend_read_its_execute_annotation() -> None:
    assert {"sensor", "celsius"} <= set(one(records(Thermometer)))


def test_records_of_a_built_instance_use_its_config() -> None:
    built = numpy_pipe(feature_names=["a"]).build(numpy_dtype="bool")

    assert type(one(records(built))["a"]) is bool


def test_fields_fill_in_what_feature_names_do_not_type() -> None:
    pipe = untyped_pipe(feature_names=["x", "y"])

    drawn = one(records(pipe, fields={"x": st.just(1), "y": st.just("b")}))

    assert drawn == {"x": 1, "y": "b"}


def test_fields_replace_a_declared_strategy() -> None:
    drawn = one(records(applicant_pipe(), fields={"age": st.just(30)}))

    assert drawn["age"] == 30


def test_a_field_the_pipeline_does_not_declare_is_an_error_naming_the_declared_ones() -> None:
    with pytest.raises(UndeclaredFieldError) as info:
        records(applicant_pipe(), fields={"incme": st.just(1.0)})

    message = str(info.value)
    assert "does not declare a field 'incme'; did you mean 'income'?" in message
    assert "'age', 'income', 'employed'" in message
    assert (info.value.field, info.value.declared) == ("incme", ("age", "income", "employed"))


def test_a_field_outside_feature_names_is_an_error() -> None:
    with pytest.raises(UndeclaredFieldError, match="'a', 'b'"):
        records(
            numpy_pipe(feature_names=["a", "b"], numpy_dtype="float64"), fields={"c": st.just(1)}
        )


def test_fields_are_free_when_the_pipeline_declares_none() -> None:
    assert one(records(untyped_pipe(), fields={"anything": st.just(1)})) == {"anything": 1}


@given(records(applicant_pipe(), floats=dict(min_value=-5.0, max_value=5.0)))
def test_floats_bounds_every_float_field(record: dict[str, Any]) -> None:
    assert -5.0 <= record["income"] <= 5.0


@given(
    batches(
        numpy_pipe(feature_names=["a", "b"], numpy_dtype="float32"),
        floats=dict(min_value=0.1, max_value=2.5),
    )
)
def test_floats_bounds_float_numpy_columns_even_of_a_narrow_dtype(
    batch: list[dict[str, Any]],
) -> None:
    for record in batch:
        assert all(0.1 <= record[key] <= 2.5 for key in ("a", "b"))
        assert all(float(np.float32(record[key])) == record[key] for key in ("a", "b"))


@given(
    records(
        untyped_pipe(feature_names=["x"]),
        fields={"x": st.integers(0, 3)},
        floats={"max_value": 0.5},
    )
)
def test_floats_leaves_the_caller_s_own_field_strategies_alone(record: dict[str, Any]) -> None:
    assert record["x"] in range(4)


def test_an_unknown_floats_option_is_a_type_error_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match=r"'max_val' is not an option.*did you mean 'max_value'"):
        records(applicant_pipe(), floats={"max_val": 1})


# -- records(): nothing declared is said, not guessed ----------------------------------


def test_an_untyped_pipeline_without_features_declares_nothing() -> None:
    with pytest.raises(NothingDeclaredError, match="declares nothing about its input") as info:
        records(untyped_pipe())

    assert info.value.pipeline == "untyped"
    assert "execute `echo`" in str(info.value)
    assert "list[Row]" in str(info.value)


def test_features_without_types_are_named() -> None:
    with pytest.raises(NothingDeclaredError, match="does not declare the type") as info:
        records(untyped_pipe(feature_names=["age", "income"]))

    assert info.value.fields == ("age", "income")
    assert "fields=" in str(info.value)


def test_numpy_without_a_dtype_names_the_columns() -> None:
    with pytest.raises(NothingDeclaredError, match="numpy_dtype is not set") as info:
        records(numpy_pipe(feature_names=["a", "b"]))

    assert info.value.fields == ("a", "b")


def test_records_of_something_that_is_not_a_pipeline_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not function"):
        records(lambda records: records)


def test_a_missing_hypothesis_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.setitem(sys.modules, "hypothesis.strategies", None)

    with pytest.raises(ImportError, match="pip install hypothesis"):
        records(reading_pipe())


def test_importing_packflow_testing_does_not_import_hypothesis() -> None:
    code = "import sys, packflow.testing; print('hypothesis' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert done.stdout.strip() == "False", done.stderr


# -- the laws: every valid input gives one valid output --------------------------------

SCORER = applicant_pipe()
MATRIX = numpy_pipe(feature_names=["user.age", "score"], numpy_dtype="float64")
CHAIN = reading_pipe() >> untyped_pipe()


@pytest.mark.parametrize("pipe", [SCORER, MATRIX, CHAIN], ids=["attrs", "numpy", "composed"])
def test_every_valid_input_gives_one_valid_output(pipe: Any) -> None:
    @given(records(pipe))
    def law(record: dict[str, Any]) -> None:
        output = pipe(record)
        assert isinstance(output, dict)
        assert pipe.validate([record]) == [output]

    law()


@pytest.mark.parametrize("pipe", [SCORER, MATRIX, CHAIN], ids=["attrs", "numpy", "composed"])
def test_every_valid_batch_gives_one_output_per_record(pipe: Any) -> None:
    @given(batches(pipe, max_size=10))
    def law(batch: list[dict[str, Any]]) -> None:
        assert len(pipe(batch)) == len(batch)

    law()


# -- the pytest plugin -----------------------------------------------------------------

PLUGIN_TESTS = """
    import logging
    import os

    from packflow import Pipeline, Records

    pipe = Pipeline("offset")


    @pipe.initialize
    def offset(config) -> int:
        raise AssertionError("the real initializer must not run")


    @pipe.execute
    def add(records: Records, offset: int) -> Records:
        return [{"x": r["x"] + offset} for r in records]


    def test_env_is_isolated(packflow_env):
        assert "BACKEND_CONFIG_FILE_PATH" not in os.environ
        assert "PACKFLOW_LOG_LEVEL" not in os.environ


    def test_build_with_a_fake(packflow_build):
        built = packflow_build(pipe, resources={"offset": 10})
        assert built({"x": 1}) == {"x": 11}


    def test_a_log_level_for_one_test(packflow_env):
        packflow_env.log_level("ERROR")
        assert logging.getLogger("packflow").level == logging.ERROR


    def test_the_level_came_back(packflow_env):
        assert logging.getLogger("packflow").level != logging.ERROR
"""


LEAKY_TEST = """

    def test_leaks():
        # No fixture: the override file exported by the caller is read, and is broken.
        pipe.build(resources={"offset": 1})
"""


def test_the_plugin_is_active_without_importing_it_and_isolates_each_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = pytester.path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(broken))
    monkeypatch.setenv("PACKFLOW_LOG_LEVEL", "DEBUG")
    pytester.makepyfile(test_user=textwrap.dedent(PLUGIN_TESTS) + textwrap.dedent(LEAKY_TEST))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*ConfigError*broken.json*", "*FAILED test_user.py::test_leaks*"])


def test_the_plugin_is_the_pytest11_entry_point_named_packflow(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=textwrap.dedent(PLUGIN_TESTS))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:packflow")

    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*fixture 'packflow_env' not found*"])


def test_config_file_writes_an_override_file_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import attrs
            from packflow import BackendConfig, Pipeline, Records

            @attrs.define
            class Config(BackendConfig):
                factor: int = 1

            def scaling(name):
                pipe = Pipeline(name, config_model=Config)

                @pipe.execute
                def scale(records: Records, config: Config) -> Records:
                    return [{"x": r["x"] * config.factor} for r in records]

                return pipe

            def test_one_pipeline(packflow_env, packflow_build):
                packflow_env.config_file({"factor": 3})
                assert packflow_build(scaling("a"))({"x": 1}) == {"x": 3}

            def test_a_composition(packflow_env, packflow_build):
                packflow_env.config_file({"b": {"factor": 5}})
                built = packflow_build(scaling("a") >> scaling("b"), a={"factor": 2})
                assert built({"x": 1}) == {"x": 10}

            def test_class_backends_take_overrides(packflow_build):
                from packflow import InferenceBackend

                class Echo(InferenceBackend):
                    def execute(self, records: Records) -> Records:
                        return records

                assert packflow_build(Echo, verbose=True)({"x": 1}) == {"x": 1}
            """
        )
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)


def test_packflow_env_restores_the_logger_level(pytester: pytest.Pytester) -> None:
    before = logging.getLogger("packflow").level
    pytester.makepyfile(
        test_user="""
        def test_set(packflow_env):
            packflow_env.log_level("CRITICAL")
        """
    )

    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)

    assert logging.getLogger("packflow").level == before


def test_the_docs_test_module_passes_under_pytest_with_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "composing-and-testing.md"
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", page.read_text(), re.M | re.S)
    pytester.makepyfile(test_page="\n".join(blocks))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=6)  # the page's five tests and test_readings_stay_in_range


def test_packflow_build_refuses_fakes_for_a_class_backend_saying_what_to_do(
    packflow_build: Any,
) -> None:
    from packflow import InferenceBackend

    class Echo(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(TypeError, match=r"Echo, resources=...\): it is a class backend"):
        packflow_build(Echo, resources={"model": object()})
    assert packflow_build(Echo)({"x": 1}) == {"x": 1}
