"""Loaders: from "module:attribute", a file, an installed module or a project."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import (
    BuiltPipeline,
    ConfigError,
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    PipelineDefinitionError,
    PipelineTypeError,
)
from packflow.backend import InferenceBackend
from packflow.loaders import InferenceBackendLoader, LocalLoader, ModuleLoader, load
from packflow.project import create_project

SOURCE = """
from typing import Any

from packflow import Pipeline, Records
from packflow.backend import InferenceBackend

pipe = Pipeline("adder", verbose=False)


@pipe.execute
def add(records: Records, config) -> Records:
    return [{"y": record["x"] + (100 if config.verbose else 1)} for record in records]


class Backend(InferenceBackend):
    def execute(self, inputs: Any) -> Any:
        return [{"y": record["x"] + (100 if self.config.verbose else 2)} for record in inputs]


backend = Backend()
built = pipe.build()


def make_pipe():
    return pipe


def make_nothing():
    return 42


def needs_args(path):
    return pipe


def broken_factory():
    raise OSError("model store unreachable")


answer = 42
"""


pytestmark = pytest.mark.usefixtures("isolated_cwd")


def write(path: Path, text: str = SOURCE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- kinds of targets


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("pipe", {"y": 2}),
        ("Backend", {"y": 3}),
        ("backend", {"y": 3}),
        ("built", {"y": 2}),
        ("make_pipe", {"y": 2}),
    ],
)
def test_every_kind_of_target_loads_ready_for_calls(
    tmp_path: Path, attribute: str, expected: dict[str, int]
) -> None:
    write(tmp_path / "inference.py")
    backend = LocalLoader(f"inference:{attribute}").load()
    assert backend({"x": 1}) == expected
    assert backend.ready()


@pytest.mark.parametrize("attribute", ["pipe", "Backend", "backend", "make_pipe"])
def test_config_given_to_load_overrides_the_targets_own(tmp_path: Path, attribute: str) -> None:
    write(tmp_path / "inference.py")
    backend = LocalLoader(f"inference:{attribute}").load(verbose=True)
    assert backend.config.verbose is True
    assert backend({"x": 1}) == {"y": 101}


def test_config_cannot_be_applied_to_an_already_built_pipeline(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(InferenceBackendLoadError, match="already built"):
        LocalLoader("inference:built").load(verbose=True)


def test_a_bad_config_value_is_a_config_error_not_a_load_error(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(ConfigError, match="verbos"):
        LocalLoader("inference:pipe").load(verbos=True)


def test_a_dotted_module_path_is_a_path_of_folders(tmp_path: Path) -> None:
    write(tmp_path / "models" / "text" / "scorer.py")
    assert LocalLoader("models.text.scorer:pipe").load()({"x": 0}) == {"y": 1}


def test_a_package_folder_loads_from_its_init(tmp_path: Path) -> None:
    write(tmp_path / "scoring" / "__init__.py")
    assert LocalLoader("scoring:pipe").load()({"x": 0}) == {"y": 1}


def test_the_file_can_import_its_neighbours(tmp_path: Path) -> None:
    write(tmp_path / "helpers_for_test_loaders.py", "OFFSET = 7\n")
    write(
        tmp_path / "inference.py",
        """
        from helpers_for_test_loaders import OFFSET
        from packflow import Pipeline

        pipe = Pipeline("neighbour")

        @pipe.execute
        def shift(records):
            return [{"y": r["x"] + OFFSET} for r in records]
        """,
    )
    assert LocalLoader("inference:pipe").load()({"x": 1}) == {"y": 8}


def test_base_dir_replaces_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "inference.py")
    loader = LocalLoader("inference:pipe", base_dir=tmp_path / "elsewhere")
    assert loader.load()({"x": 1}) == {"y": 2}


def test_loading_a_pipeline_module_runs_no_initializer(tmp_path: Path) -> None:
    write(
        tmp_path / "inference.py",
        """
        from packflow import Pipeline

        pipe = Pipeline("lazy")

        @pipe.initialize
        def model(config) -> int:
            raise RuntimeError("ran too early")

        @pipe.execute
        def predict(records, model: int):
            return records
        """,
    )
    loader = LocalLoader("inference:pipe")
    checked = loader.check()
    assert [stage.name for stage in checked.graph.stages] == ["predict"]
    with pytest.raises(InferenceBackendInitializationError, match="ran too early"):
        loader.load()


def test_check_of_a_class_runs_none_of_its_code(tmp_path: Path) -> None:
    write(
        tmp_path / "inference.py",
        """
        from packflow.backend import InferenceBackend

        class Backend(InferenceBackend):
            def initialize(self):
                raise RuntimeError("ran too early")

            def execute(self, inputs):
                return inputs
        """,
    )
    checked = LocalLoader("inference:Backend").check()
    assert checked.graph.name == "Backend"


def test_a_type_error_between_stages_surfaces_as_pipeline_type_error(tmp_path: Path) -> None:
    write(
        tmp_path / "inference.py",
        """
        from packflow import Pipeline

        pipe = Pipeline("typed")

        @pipe.transform_inputs
        def prepare(records) -> int:
            return 1

        @pipe.execute
        def predict(x: str) -> list[dict]:
            return [{}]
        """,
    )
    with pytest.raises(PipelineTypeError, match="expected str, got int"):
        LocalLoader("inference:pipe").load()


# --------------------------------------------------------------------------- failures


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    write(tmp_path / "other.py", "x = 1\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:pipe").load()
    message = str(info.value)
    assert f"{tmp_path / 'inference.py'} does not exist" in message
    assert "other.py" in message


def test_an_import_error_inside_the_module_names_file_line_and_cause(tmp_path: Path) -> None:
    write(tmp_path / "inference.py", "import os\nimport sklearn_not_installed_here\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:pipe").load()
    message = str(info.value)
    assert f"{tmp_path / 'inference.py'}:2: ModuleNotFoundError" in message
    assert "sklearn_not_installed_here" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "inference.py", "x = 1\ndef broken(:\n")
    with pytest.raises(InferenceBackendLoadError, match=r"inference\.py:2: SyntaxError"):
        LocalLoader("inference:pipe").load()


def test_a_missing_attribute_suggests_a_close_name(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(
        InferenceBackendLoadError, match=r"no attribute 'pip' \(did you mean 'pipe'\?\)"
    ):
        LocalLoader("inference:pip").load()


def test_a_missing_attribute_lists_what_could_be_loaded(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(
        InferenceBackendLoadError, match="it defines Backend, backend, built, pipe"
    ):
        LocalLoader("inference:zzz").load()


def test_the_wrong_kind_of_object_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(InferenceBackendLoadError, match="it is int 42; expected a Pipeline"):
        LocalLoader("inference:answer").load()


def test_a_factory_returning_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(InferenceBackendLoadError, match="the factory returned int 42"):
        LocalLoader("inference:make_nothing").load()


def test_a_factory_that_needs_arguments_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(InferenceBackendLoadError, match=r"needs arguments \(path\)"):
        LocalLoader("inference:needs_args").load()


def test_a_factory_that_raises_is_a_load_error_with_the_cause(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    with pytest.raises(InferenceBackendLoadError, match="OSError: model store unreachable"):
        LocalLoader("inference:broken_factory").load()


def test_a_class_that_is_not_a_backend_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "inference.py", "class Model:\n    pass\n")
    with pytest.raises(InferenceBackendLoadError, match="not an InferenceBackend subclass"):
        LocalLoader("inference:Model").load()


@given(st.text(max_size=20).filter(lambda s: ":" not in s))
@settings(max_examples=30)
def test_a_spec_without_a_colon_is_refused(spec: str) -> None:
    with pytest.raises(InferenceBackendLoadError, match="expected 'module:attribute'"):
        LocalLoader(spec)


# --------------------------------------------------------------------------- installed modules


def test_module_loader_imports_an_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "site" / "installed_scorer_pkg" / "__init__.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert ModuleLoader("installed_scorer_pkg:pipe").load()({"x": 1}) == {"y": 2}


def test_module_loader_says_when_a_module_is_not_installed() -> None:
    with pytest.raises(InferenceBackendLoadError, match="no module named 'not_there_at_all'"):
        ModuleLoader("not_there_at_all.models:pipe").load()


def test_module_loader_reports_an_error_inside_an_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "site" / "crashing_pkg_for_loaders.py", "raise KeyError('MODEL_URL')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(InferenceBackendLoadError, match="KeyError: 'MODEL_URL'"):
        ModuleLoader("crashing_pkg_for_loaders:pipe").load()


def test_load_prefers_a_local_file_and_falls_back_to_the_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "site" / "dual_scorer_mod.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert load("dual_scorer_mod:pipe")({"x": 1}) == {"y": 2}
    write(
        tmp_path / "dual_scorer_mod.py",
        SOURCE.replace("+ (100 if config.verbose else 1)", "+ 50"),
    )
    assert load("dual_scorer_mod:pipe")({"x": 1}) == {"y": 51}


def test_load_passes_config_on(tmp_path: Path) -> None:
    write(tmp_path / "inference.py")
    backend = load("inference:Backend", verbose=True)
    assert isinstance(backend, InferenceBackend)
    assert backend({"x": 1}) == {"y": 101}


# --------------------------------------------------------------------------- projects


def test_from_project_loads_the_backend_packflow_yaml_names(tmp_path: Path) -> None:
    folder = create_project("demo", tmp_path)
    backend = InferenceBackendLoader.from_project(folder)
    assert isinstance(backend, BuiltPipeline)
    assert backend({"value": 0.9}) == {"value": 0.9, "positive": True}


def test_backend_config_in_packflow_yaml_is_applied_and_keywords_win(tmp_path: Path) -> None:
    folder = create_project("demo", tmp_path)
    write(folder / "inference.py")
    yaml_text = (folder / "packflow.yaml").read_text()
    yaml_text = yaml_text.replace("inference:pipe", "inference:Backend").replace(
        "backend_config: {}", "backend_config:\n  verbose: true\n  rename_fields: {a: x}"
    )
    (folder / "packflow.yaml").write_text(yaml_text)
    from_yaml = InferenceBackendLoader.from_project(folder)
    assert from_yaml({"a": 1}) == {"y": 101}
    overridden = InferenceBackendLoader.from_project(folder, verbose=False)
    assert overridden({"a": 1}) == {"y": 3}


def test_from_project_with_a_module_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "site" / "project_module_scorer.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    write(
        tmp_path / "proj" / "packflow.yaml",
        "name: proj\nruntime:\n  inference_backend: project_module_scorer:pipe\n"
        "  loader: module\n",
    )
    assert InferenceBackendLoader.from_project(tmp_path / "proj")({"x": 1}) == {"y": 2}


def test_from_project_without_packflow_yaml_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(InferenceBackendLoadError, match=r"packflow\.yaml is missing") as info:
        InferenceBackendLoader.from_project(tmp_path)
    assert isinstance(info.value.__cause__, ConfigError)


def test_from_project_names_the_spec_when_the_attribute_is_missing(tmp_path: Path) -> None:
    folder = create_project("demo", tmp_path)
    text = (folder / "packflow.yaml").read_text().replace("inference:pipe", "inference:model")
    (folder / "packflow.yaml").write_text(text)
    with pytest.raises(InferenceBackendLoadError, match="cannot load 'inference:model'"):
        InferenceBackendLoader.from_project(folder)


def test_a_project_module_that_is_not_installed_points_at_the_loader_key(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "proj" / "packflow.yaml",
        "name: proj\nruntime:\n  inference_backend: nowhere_installed_x:pipe\n  loader: module\n",
    )
    with pytest.raises(
        InferenceBackendLoadError, match="says `loader: module`; use `loader: local`"
    ):
        InferenceBackendLoader.from_project(tmp_path / "proj")


def test_a_bad_backend_config_value_names_packflow_yaml(tmp_path: Path) -> None:
    folder = create_project("demo", tmp_path)
    yaml_text = (folder / "packflow.yaml").read_text()
    (folder / "packflow.yaml").write_text(
        yaml_text.replace("backend_config: {}", "backend_config: {input_formt: numpy}")
    )
    with pytest.raises(ConfigError, match=r"packflow\.yaml: backend_config: invalid config"):
        InferenceBackendLoader.from_project(folder)
    with pytest.raises(ConfigError, match=r"(?s)packflow\.yaml: backend_config: .*input_format"):
        InferenceBackendLoader.for_project(folder).check()


def test_a_bad_keyword_is_not_blamed_on_packflow_yaml(tmp_path: Path) -> None:
    folder = create_project("demo", tmp_path)
    with pytest.raises(ConfigError, match=r"^invalid config") as info:
        InferenceBackendLoader.from_project(folder, verbose="loud")
    assert info.value.path is None


@pytest.mark.parametrize("loader", [LocalLoader, ModuleLoader])
def test_load_backend_module_is_the_originals_name_for_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: type[InferenceBackendLoader]
) -> None:
    write(tmp_path / "original_style_inference.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = loader("original_style_inference:Backend").load_backend_module()
    assert isinstance(found, type) and issubclass(found, InferenceBackend)
    assert found.__name__ == "Backend"
    assert found()({"x": 1}) == {"y": 3}


def test_loading_or_checking_a_base_class_without_execute_names_the_missing_method(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "bases.py",
        """
        from packflow import InferenceBackend

        class SharedBase(InferenceBackend, abstract=True):
            def transform_outputs(self, outputs):
                return outputs
        """,
    )
    with pytest.raises(
        InferenceBackendLoadError,
        match=r"SharedBase\(InferenceBackend\): it has no execute method",
    ):
        LocalLoader("bases:SharedBase").load()
    with pytest.raises(PipelineDefinitionError, match="cannot check SharedBase"):
        LocalLoader("bases:SharedBase").check()
