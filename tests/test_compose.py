"""Composition (``a >> b``), test doubles (``build(resources=...)``) and ``replace``.

Pipelines that must be found by reference (pickling, the CLI, packflow.yaml) are written
to a module in the test's own folder and imported from there, as a user's would be.
"""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, TypedDict

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import packflow
from packflow import (
    BackendConfig,
    ConfigError,
    InferenceBackend,
    InferenceBackendInitializationError,
    InferenceBackendRuntimeError,
    Pipeline,
    PipelineDefinitionError,
    PipelineTypeError,
    Records,
)
from packflow.project import create_project
from packflow.render import graph_edges, render_mermaid, render_text

pytestmark = pytest.mark.usefixtures("isolated_cwd")


def write_module(folder: Path, name: str, source: str) -> Any:
    """Write ``name.py`` into ``folder`` and import it (``isolated_cwd`` forgets it)."""
    (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return importlib.import_module(name)


def packflow_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


PARTS = """
    from typing import TypedDict

    from packflow import InferenceBackend, Pipeline, Records


    class Scaled(TypedDict):
        y: int


    scale = Pipeline("scale")


    @scale.initialize
    def factor(config) -> int:
        return 2


    @scale.execute
    def times(records: Records, factor: int) -> list[Scaled]:
        return [{"y": record["x"] * factor} for record in records]


    shift = Pipeline("shift")


    @shift.execute
    def plus_one(records: list[Scaled]) -> Records:
        return [{"z": record["y"] + 1} for record in records]


    class Labeller(InferenceBackend):
        def execute(self, records: Records) -> Records:
            return [{"label": "big" if r["z"] > 5 else "small"} for r in records]


    pipe = scale >> shift
    three = scale >> shift >> Labeller
"""


def pipeline_project(folder: Path, source: str, spec: str = "inference:pipe") -> Path:
    project = create_project("demo", folder, description="d", maintainers=["a@b.c"])
    (project / "inference.py").write_text(textwrap.dedent(source), encoding="utf-8")
    text = (project / "packflow.yaml").read_text()
    (project / "packflow.yaml").write_text(text.replace("inference:pipe", spec))
    return project


# -- the CLI on compositions -----------------------------------------------------------


def test_packflow_check_shows_the_parts_and_the_seam_of_a_composition(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "composition 'scale >> shift': 2 parts (scale, shift)" in out
    assert out.index("part 'scale'") < out.index("[execute `times`]") < out.index("part 'shift'")
    assert "list[Scaled]   (seam scale >> shift)" in out
    assert "resources of part 'scale'" in out
    assert "type-checks (2 parts, 2 stages, 1 initializer)" in out


def test_packflow_check_of_three_parts_with_a_class_backend(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS, spec="inference:three")

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "part 'Labeller'" in done.stdout
    assert "(seam shift >> Labeller)" in done.stdout
    assert "type-checks (3 parts, 3 stages, 1 initializer)" in done.stdout


def test_packflow_graph_draws_each_part_as_a_mermaid_subgraph(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("graph", str(project), "--format", "mermaid", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert '    subgraph p0 ["part scale"]' in lines
    assert '    subgraph p1 ["part shift"]' in lines
    assert '    p0_execute ==>|"list[Scaled] (seam)"| p1_preprocess' in lines
    assert "    p0_res_factor -.-> p0_execute" in lines
    assert '    p1_execute -->|"list[dict[str, Any]]"| outputs' in lines


def test_packflow_graph_text_of_a_composition(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("graph", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "[execute `plus_one`]" in done.stdout


def test_packflow_check_of_a_broken_seam_names_both_functions(tmp_path: Path) -> None:
    broken = PARTS.replace("plus_one(records: list[Scaled])", "plus_one(records: list[int])")
    project = pipeline_project(tmp_path, broken)

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 1
    assert "stage `shift.execute` function `plus_one`" in done.stderr
    assert "from: stage `scale.execute` function `times`" in done.stderr
    assert "inference.py:" in done.stderr


LABELLED = """
    from packflow import Pipeline, Records
    from packflow.prebuilt import label_map

    scoring = Pipeline("scoring")


    @scoring.initialize
    def cutoff(config) -> float:
        return 0.5


    @scoring.execute
    def score(records: Records, cutoff: float) -> Records:
        return [{"positive": r["value"] > cutoff} for r in records]


    pipe = scoring >> label_map("positive", {True: "yes", False: "no"})
"""


def test_validate_run_and_export_accept_a_composition(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, LABELLED)
    (project / "LICENSE.txt").write_text("MIT")
    samples = project / "sample.jsonl"
    samples.write_text('{"value": 0.2}\n{"value": 0.9}\n')

    validated = packflow_cmd("validate", str(project), cwd=tmp_path)
    ran = packflow_cmd("run", str(project), "--input", str(samples), cwd=tmp_path)
    exported = packflow_cmd("export", str(project), cwd=tmp_path)

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "2 sample records passed validate()" in validated.stdout
    assert ran.returncode == 0, ran.stderr
    assert [json.loads(line) for line in ran.stdout.splitlines()] == [
        {"positive": "no"},
        {"positive": "yes"},
    ]
    assert exported.returncode == 0, exported.stderr


def test_render_of_a_single_pipeline_has_no_part_headings(tmp_path: Path) -> None:
    module = write_module(tmp_path, "parts_single", PARTS)

    text = render_text(module.scale.check())

    assert text.startswith("pipeline 'scale'")
    assert "part '" not in text
    assert "subgraph" not in render_mermaid(module.scale.check())


def test_graph_edges_of_a_composition_join_the_parts_by_one_seam(tmp_path: Path) -> None:
    module = write_module(tmp_path, "parts_edges", PARTS)

    edges = graph_edges(module.three.check())

    seams = [(e.source, e.target, e.seam) for e in edges if e.seam]
    assert seams == [
        ("scale.execute", "shift.preprocess", "scale >> shift"),
        ("shift.execute", "Labeller.preprocess", "shift >> Labeller"),
    ]
    assert [e.source for e in edges].count("inputs") == 1
    assert [e.target for e in edges].count("outputs") == 1


# -- composing -------------------------------------------------------------------------


def doubling(name: str = "double") -> Pipeline:
    pipe = Pipeline(name)

    @pipe.execute
    def double(records: Records) -> Records:
        return [{"x": record["x"] * 2} for record in records]

    return pipe


def adding(name: str, amount: int) -> Pipeline:
    pipe = Pipeline(name)

    @pipe.execute
    def add(records: Records) -> Records:
        return [{"x": record["x"] + amount} for record in records]

    return pipe


def test_three_parts_run_left_to_right() -> None:
    pipe = doubling() >> adding("plus1", 1) >> adding("plus10", 10)

    assert pipe({"x": 3}) == {"x": 17}
    assert pipe([{"x": 0}, {"x": 1}]) == [{"x": 11}, {"x": 13}]
    assert pipe.part_names == ("double", "plus1", "plus10")


def test_nested_compositions_are_flattened() -> None:
    a, b, c = doubling(), adding("b", 1), adding("c", 2)

    assert ((a >> b) >> c).part_names == (a >> (b >> c)).part_names == ("double", "b", "c")


def test_composing_leaves_the_parts_unchanged_and_usable_alone() -> None:
    a, b = doubling(), adding("b", 1)
    assert a({"x": 1}) == {"x": 2}

    composed = a >> b

    assert composed({"x": 1}) == {"x": 3}
    assert a({"x": 1}) == {"x": 2}
    assert b({"x": 1}) == {"x": 2}
    assert (a.name, b.name) == ("double", "b")


def test_a_composition_has_the_pipeline_surface() -> None:
    pipe = doubling() >> adding("b", 1)

    checked = pipe.check()
    built = pipe.build()

    assert [name for name, _ in checked.parts] == ["double", "b"]
    assert checked.part("b").graph.name == "b"
    assert built({"x": 1}) == {"x": 3}
    assert pipe.validate([{"x": 1}]) == [{"x": 3}]
    assert pipe.ready
    assert (pipe >> adding("c", 1))({"x": 1}) == {"x": 4}


def test_checked_part_of_an_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        (doubling() >> adding("b", 1)).check().part("nope")


class Scored(TypedDict):
    score: float


def test_a_seam_type_error_names_both_functions_and_their_lines() -> None:
    a = Pipeline("a")

    @a.execute
    def score(records: Records) -> list[Scored]:
        return [{"score": 0.5} for _ in records]

    b = Pipeline("b")

    @b.execute
    def count(records: list[int]) -> Records:
        return [{"n": n} for n in records]

    with pytest.raises(PipelineTypeError) as info:
        (a >> b).check()

    (problem,) = info.value.problems
    assert problem.part == "b"
    assert problem.stage == "b.execute"
    assert problem.function == "count"
    assert problem.location == f"{__file__}:{count.__code__.co_firstlineno}"
    assert "function `score`" in problem.source
    assert f"{__file__}:{score.__code__.co_firstlineno}" in problem.source
    assert "list[Scored]" in str(info.value)


def test_every_problem_of_every_part_and_seam_comes_in_one_error() -> None:
    a = Pipeline("a")

    @a.execute
    def texts(records: Records) -> list[str]:
        return ["x" for _ in records]

    b = Pipeline("b")

    @b.transform_inputs
    def numbers(records: list[int]) -> list[int]:
        return records

    @b.execute
    def widen(data: list[bytes]) -> Records:
        return [{} for _ in data]

    with pytest.raises(PipelineTypeError) as info:
        (a >> b).check()

    stages = [problem.stage for problem in info.value.problems]
    assert "a.execute" in stages  # list[str] is not a list of records
    assert "b.transform_inputs" in stages  # the seam
    assert "b.execute" in stages  # inside b


def test_a_seam_is_checked_before_any_user_code_runs() -> None:
    ran: list[str] = []
    a = Pipeline("a")

    @a.initialize
    def model(config: Any) -> int:
        ran.append("model")
        return 1

    @a.execute
    def numbers(records: Records, model: int) -> list[int]:
        return [model for _ in records]

    b = Pipeline("b")

    @b.execute
    def as_records(records: list[str]) -> Records:
        return [{"v": v} for v in records]

    with pytest.raises(PipelineTypeError):
        (a >> b).build()
    assert ran == []


@attrs.frozen
class Score:
    value: float


def test_attrs_outputs_reach_the_next_part_as_dicts() -> None:
    a = Pipeline("a")

    @a.execute
    def score(records: Records) -> list[Score]:
        return [Score(record["x"] / 10) for record in records]

    b = Pipeline("b")

    @b.execute
    def label(records: Records) -> Records:
        return [{"big": record["value"] > 0.5} for record in records]

    assert (a >> b).check()
    assert (a >> b)([{"x": 9}, {"x": 1}]) == [{"big": True}, {"big": False}]


def test_two_parts_with_one_name_are_a_definition_error() -> None:
    with pytest.raises(PipelineDefinitionError, match="two parts of the composition are named"):
        adding("p", 1) >> adding("p", 2)


def test_the_same_pipeline_twice_is_a_definition_error_that_says_so() -> None:
    a = doubling()

    with pytest.raises(PipelineDefinitionError, match="the same pipeline twice"):
        a >> adding("b", 1) >> a


def test_composing_something_that_is_not_a_pipeline_is_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="cannot compose"):
        doubling() >> (lambda records: records)


# -- per-part config -------------------------------------------------------------------


@attrs.define
class FactorConfig(BackendConfig):
    factor: int = 2


def scaling(name: str) -> Pipeline:
    pipe = Pipeline(name, config_model=FactorConfig)

    @pipe.execute
    def scale(records: Records, config: FactorConfig) -> Records:
        return [{"x": record["x"] * config.factor} for record in records]

    return pipe


def test_build_gives_overrides_to_each_part_by_name() -> None:
    pipe = scaling("a") >> scaling("b")

    built = pipe.build(a={"factor": 3}, b={"factor": 5})

    assert built({"x": 1}) == {"x": 15}
    assert built.config["a"].factor == 3
    assert built.config["b"].factor == 5
    assert pipe({"x": 1}) == {"x": 4}


def test_the_override_file_holds_one_config_per_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"configs": {"b": {"factor": 10}}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(overrides))

    built = (scaling("a") >> scaling("b")).build()

    assert built.config["a"].factor == 2
    assert built.config["b"].factor == 10
    assert built({"x": 1}) == {"x": 20}


def test_an_unknown_part_in_build_is_a_config_error_with_a_suggestion() -> None:
    pipe = scaling("scaler") >> scaling("other")

    with pytest.raises(ConfigError, match="did you mean 'scaler'") as info:
        pipe.build(scalar={"factor": 3})

    assert info.value.field == "scalar"
    assert "the parts are scaler, other" in str(info.value)


def test_an_unknown_part_in_the_override_file_is_a_config_error_with_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"configs": {"scalar": {"factor": 3}}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(overrides))

    with pytest.raises(ConfigError, match="did you mean 'scaler'") as info:
        (scaling("scaler") >> scaling("other")).build()

    assert info.value.path == str(overrides)
    assert info.value.field == "scalar"


def test_a_bad_key_in_a_part_config_names_the_part() -> None:
    with pytest.raises(ConfigError, match=r"(?s)part 'b'.*did you mean 'factor'"):
        (scaling("a") >> scaling("b")).build(b={"factr": 3})


def test_part_overrides_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        (scaling("a") >> scaling("b")).build(a=3)  # type: ignore[arg-type]


# -- metrics and the length contract ---------------------------------------------------


def test_metrics_name_every_stage_by_part() -> None:
    built = (doubling("a") >> adding("b", 1)).build()

    built([{"x": 1}, {"x": 2}])

    metrics = built.get_metrics()
    assert list(metrics.execution_times) == [
        "a.preprocess",
        "a.execute",
        "b.preprocess",
        "b.execute",
    ]
    assert metrics.batch_size == 2


def test_a_part_that_drops_a_record_is_named() -> None:
    dropper = Pipeline("dropper")

    @dropper.execute
    def drop_last(records: Records) -> Records:
        return records[:-1]

    pipe = doubling("a") >> dropper >> adding("c", 1)

    with pytest.raises(InferenceBackendRuntimeError, match="returned 1 record") as info:
        pipe([{"x": 1}, {"x": 2}])

    assert info.value.stage == "dropper.execute"
    assert info.value.function == "drop_last"
    assert "part 'dropper'" in str(info.value)


# -- class backends as parts -----------------------------------------------------------


class Labeller(InferenceBackend):
    def initialize(self) -> None:
        self.cut = 5

    def execute(self, records: Records) -> Records:
        return [{"label": "big" if r["x"] > self.cut else "small"} for r in records]


def test_a_class_backend_can_be_a_part() -> None:
    pipe = doubling() >> Labeller

    assert pipe.part_names == ("double", "Labeller")
    assert pipe([{"x": 1}, {"x": 3}]) == [{"label": "small"}, {"label": "big"}]


def test_a_class_backend_part_is_metered_by_its_class_name() -> None:
    built = (doubling() >> Labeller).build()

    built({"x": 1})

    assert "Labeller.execute" in built.get_metrics().execution_times


def test_an_instance_of_a_class_backend_is_refused_with_the_class_to_use() -> None:
    with pytest.raises(PipelineDefinitionError, match="compose the class itself, `Labeller`"):
        doubling() >> Labeller()


# -- test doubles: build(resources=...) ------------------------------------------------


class Model:
    def predict(self, value: float) -> float:
        raise AssertionError("the real model must not run in tests")


class FakeModel(Model):
    def predict(self, value: float) -> float:
        return 42.0


def scoring(name: str, ran: list[str]) -> Pipeline:
    pipe = Pipeline(name)

    @pipe.initialize
    def weights(config: Any) -> bytes:
        ran.append(f"{name}.weights")
        return b"weights"

    @pipe.initialize
    def model(weights: bytes) -> Model:
        ran.append(f"{name}.model")
        return Model()

    @pipe.initialize
    def vocabulary(config: Any) -> list[str]:
        ran.append(f"{name}.vocabulary")
        return ["a"]

    @pipe.execute
    def score(records: Records, model: Model, vocabulary: list[str]) -> Records:
        return [{"score": model.predict(record["x"])} for record in records]

    return pipe


def test_a_fake_replaces_the_initializer_and_what_only_fed_it() -> None:
    ran: list[str] = []
    pipe = scoring("scorer", ran)
    fake = FakeModel()

    built = pipe.build(resources={"model": fake})

    assert built({"x": 1.0}) == {"score": 42.0}
    assert built.resources["model"] is fake
    assert ran == ["scorer.vocabulary"]


def test_an_initializer_still_needed_by_another_runs_although_it_fed_a_fake() -> None:
    ran: list[str] = []
    pipe = scoring("scorer", ran)

    @pipe.initialize
    def checksum(weights: bytes) -> int:
        return len(weights)

    pipe.build(resources={"model": FakeModel()})

    assert "scorer.weights" in ran
    assert "scorer.model" not in ran


def test_an_unknown_resource_lists_the_available_ones() -> None:
    pipe = scoring("scorer", [])

    with pytest.raises(PipelineDefinitionError, match="did you mean 'model'") as info:
        pipe.build(resources={"modle": FakeModel()})

    assert "resources: weights, model, vocabulary" in str(info.value)


def test_a_fake_of_the_wrong_type_names_the_resource_and_the_initializer() -> None:
    ran: list[str] = []
    pipe = scoring("scorer", ran)

    with pytest.raises(InferenceBackendInitializationError) as info:
        pipe.build(resources={"model": "not a model"})

    message = str(info.value)
    assert "resource 'model'" in message
    assert "initializer `model`" in message
    assert f"{__file__}:" in message
    assert "Model" in message and "str" in message
    assert ran == []


def test_fakes_in_a_composition_are_named_by_part() -> None:
    ran: list[str] = []
    pipe = scoring("a", ran) >> scoring("b", ran)
    fake = FakeModel()

    built = pipe.build(resources={"b.model": fake})

    assert built.resources["b.model"] is fake
    assert isinstance(built.resources["a.model"], Model)
    assert "b.model" not in ran and "b.weights" not in ran
    assert "a.model" in ran


def test_an_unqualified_fake_in_a_composition_lists_the_qualified_names() -> None:
    pipe = scoring("a", []) >> scoring("b", [])

    with pytest.raises(PipelineDefinitionError, match=r"'<part>\.<resource>'") as info:
        pipe.build(resources={"model": FakeModel()})

    assert "a.model" in str(info.value) and "b.vocabulary" in str(info.value)


def test_a_misspelt_resource_of_a_part_is_suggested_with_its_part() -> None:
    pipe = scoring("a", []) >> scoring("b", [])

    with pytest.raises(PipelineDefinitionError, match=r"did you mean 'b\.model'"):
        pipe.build(resources={"b.modle": FakeModel()})


def test_a_wrong_fake_in_a_composition_names_the_part_qualified_resource() -> None:
    pipe = scoring("a", []) >> scoring("b", [])

    with pytest.raises(InferenceBackendInitializationError, match=r"resource 'a\.model'"):
        pipe.build(resources={"a.model": 3})


def test_a_fake_for_a_class_backend_part_is_refused_with_what_to_do() -> None:
    pipe = scoring("a", []) >> Labeller

    with pytest.raises(PipelineDefinitionError, match="class backend"):
        pipe.build(resources={"Labeller.cut": 1})


def test_a_fake_does_not_touch_the_pipeline_or_its_default_instance() -> None:
    pipe = Pipeline("offset")

    @pipe.initialize
    def offset(config: Any) -> int:
        return 1

    @pipe.execute
    def add(records: Records, offset: int) -> Records:
        return [{"x": record["x"] + offset} for record in records]

    assert pipe({"x": 0}) == {"x": 1}

    faked = pipe.build(resources={"offset": 100})

    assert faked({"x": 0}) == {"x": 100}
    assert pipe({"x": 0}) == {"x": 1}
    assert pipe.build()({"x": 0}) == {"x": 1}


# -- replace ---------------------------------------------------------------------------


def test_replace_swaps_a_stage_and_leaves_the_original_and_its_instance_alone() -> None:
    pipe = doubling()
    assert pipe({"x": 1}) == {"x": 2}
    default = pipe._runtime()

    fake = pipe.replace(execute=lambda records: [{"fake": True} for _ in records])

    assert fake({"x": 1}) == {"fake": True}
    assert pipe({"x": 1}) == {"x": 2}
    assert pipe._runtime() is default


def test_replace_with_none_removes_an_optional_stage() -> None:
    pipe = doubling()

    @pipe.transform_outputs
    def hide(records: Records) -> Records:
        return [{"hidden": True} for _ in records]

    assert pipe({"x": 1}) == {"hidden": True}
    assert pipe.replace(transform_outputs=None)({"x": 1}) == {"x": 2}
    assert pipe({"x": 1}) == {"hidden": True}


def test_replace_cannot_remove_execute() -> None:
    with pytest.raises(PipelineDefinitionError, match="replace\\(execute=None\\)"):
        doubling().replace(execute=None)


def test_a_replaced_stage_is_type_checked_like_any_other() -> None:
    def wrong(records: Records) -> list[int]:
        return [1 for _ in records]

    copy = doubling().replace(execute=wrong)

    with pytest.raises(PipelineTypeError, match="wrong"):
        copy.check()


def test_replace_a_stage_of_one_part_of_a_composition() -> None:
    pipe = doubling("a") >> adding("b", 1)

    copy = pipe.replace(**{"b.execute": lambda records: [{"x": -1} for _ in records]})

    assert copy({"x": 1}) == {"x": -1}
    assert pipe({"x": 1}) == {"x": 3}
    assert copy.part_names == pipe.part_names


def test_replace_a_whole_part_of_a_composition() -> None:
    pipe = doubling("a") >> adding("b", 1)

    copy = pipe.replace(b=adding("b", 100))

    assert copy({"x": 1}) == {"x": 102}
    assert pipe({"x": 1}) == {"x": 3}


def test_replace_of_an_unknown_part_suggests_one() -> None:
    pipe = doubling("alpha") >> adding("beta", 1)

    with pytest.raises(PipelineDefinitionError, match="did you mean 'beta'"):
        pipe.replace(**{"betta.execute": lambda records: records})


# -- pickling --------------------------------------------------------------------------

BOUND = """
    from packflow import Pipeline, Records

    a = Pipeline("a")


    @a.execute
    def double(records: Records) -> Records:
        return [{"x": record["x"] * 2} for record in records]


    b = Pipeline("b")


    @b.execute
    def add_one(records: Records) -> Records:
        return [{"x": record["x"] + 1} for record in records]


    def add_ten(records: Records) -> Records:
        return [{"x": record["x"] + 10} for record in records]


    pipe = a >> b
    swapped = pipe.replace(**{"b.execute": add_ten})
    single = b.replace(execute=add_ten)
"""


def test_a_composition_bound_in_a_module_pickles_by_reference(tmp_path: Path) -> None:
    module = write_module(tmp_path, "bound_pipes", BOUND)

    assert pickle.loads(pickle.dumps(module.pipe)) is module.pipe


def test_replace_copies_bound_in_a_module_pickle_by_reference(tmp_path: Path) -> None:
    module = write_module(tmp_path, "bound_copies", BOUND)

    assert pickle.loads(pickle.dumps(module.swapped)) is module.swapped
    assert pickle.loads(pickle.dumps(module.single)) is module.single


def test_an_unbound_composition_pickles_by_value_and_still_runs(tmp_path: Path) -> None:
    module = write_module(tmp_path, "bound_parts", BOUND)
    composed = module.b >> module.a

    copy = pickle.loads(pickle.dumps(composed))

    assert copy is not composed
    assert copy.part_names == ("b", "a")
    assert copy({"x": 1}) == {"x": 4}


def test_a_composition_pickles_in_a_fresh_interpreter(tmp_path: Path) -> None:
    write_module(tmp_path, "bound_fresh", BOUND)
    script = textwrap.dedent(
        """
        import pickle, sys
        sys.path.insert(0, sys.argv[1])
        import bound_fresh
        sys.stdout.buffer.write(pickle.dumps(bound_fresh.swapped))
        """
    )
    dumped = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, check=True
    ).stdout

    copy = pickle.loads(dumped)

    assert copy({"x": 1}) == {"x": 12}


# -- loading, and the law of composition -----------------------------------------------


def test_packflow_load_builds_a_composition_with_per_part_overrides(tmp_path: Path) -> None:
    (tmp_path / "inference.py").write_text(textwrap.dedent(PARTS), encoding="utf-8")

    loaded = packflow.load("inference:three")

    assert loaded({"x": 1}) == {"label": "small"}
    assert loaded.get_metrics().execution_times.keys() >= {"scale.execute", "Labeller.execute"}


def test_a_class_backend_part_takes_its_overrides_by_class_name() -> None:
    built = (doubling() >> Labeller).build(Labeller={"verbose": True})

    assert built.config["Labeller"].verbose is True
    assert built({"x": 4}) == {"label": "big"}


def test_a_class_backend_part_with_an_unknown_key_names_it() -> None:
    with pytest.raises(ConfigError, match="Labeller"):
        (doubling() >> Labeller).build(Labeller={"verbos": True})


@given(st.lists(st.fixed_dictionaries({"x": st.integers()}), max_size=20))
def test_a_composition_gives_what_its_parts_give_one_after_the_other(
    batch: list[dict[str, Any]],
) -> None:
    a, b, c = doubling("a"), adding("b", 3), adding("c", -1)

    assert (a >> b >> c)(batch) == c(b(a(batch)))


def test_render_shows_each_parts_own_input_format() -> None:
    matrix = Pipeline("matrix-part", input_format="numpy", feature_names=["x"])

    @matrix.execute
    def rows(data: Any) -> Records:
        return [{"x": float(row[0])} for row in data]

    text = render_text((doubling() >> matrix).check())

    assert text.index("part 'double'") < text.index("[preprocess (records)]")
    assert text.index("part 'matrix-part'") < text.index("[preprocess (numpy)]")
    mermaid = render_mermaid((doubling() >> matrix).check())
    assert 'p1_preprocess["preprocess (numpy)"]' in mermaid
    assert "matrix-part_" not in mermaid  # ids are made from positions, not names


class ScaledLabeller(InferenceBackend):
    backend_config_model = FactorConfig

    def execute(self, records: Records) -> Records:
        return [{"x": r["x"] * self.config.factor} for r in records]


def test_a_three_part_build_reads_the_override_file_once_and_checks_each_part_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import packflow.checker
    import packflow.config

    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"configs": {"ScaledLabeller": {"factor": 10}}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(overrides))
    reads: list[str] = []
    checks: list[str] = []
    read = packflow.config._read_override_file
    check_graph = packflow.checker.check_graph

    def counting_read(path: str) -> Any:
        reads.append(path)
        return read(path)

    def counting_check(graph: Any, **options: Any) -> Any:
        checks.append(graph.name)
        return check_graph(graph, **options)

    monkeypatch.setattr(packflow.config, "_read_override_file", counting_read)
    monkeypatch.setattr(packflow.checker, "check_graph", counting_check)

    built = (scaling("a") >> ScaledLabeller >> scaling("c")).build()

    assert built({"x": 1}) == {"x": 2 * 10 * 2}
    assert built.config["ScaledLabeller"].factor == 10
    assert reads == [str(overrides)]
    assert sorted(checks) == ["ScaledLabeller", "a", "c"]
