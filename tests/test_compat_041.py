"""Code written for the original Packflow's release 0.4.1 runs under this library."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import packflow
from packflow import InferenceBackend, Pipeline
from packflow.cli import main
from packflow.config import BackendConfig
from packflow.exceptions import InferenceBackendRuntimeError, InferenceBackendValidationError
from packflow.project import read_project_config

# -- check_io: 0.4.1's name for validate ------------------------------------------------


class Doubler(InferenceBackend):
    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"y": record["x"] * 2} for record in inputs]


def doubler_pipeline() -> Pipeline:
    pipe = Pipeline("doubler")

    @pipe.execute
    def double(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"y": record["x"] * 2} for record in records]

    return pipe


def test_check_io_on_a_class_backend_returns_what_validate_returns() -> None:
    backend = Doubler()
    assert backend.check_io({"x": 2}) == backend.validate({"x": 2}) == {"y": 4}
    assert backend.check_io([{"x": 1}, {"x": 3}]) == [{"y": 2}, {"y": 6}]


def test_check_io_on_a_pipeline_and_a_built_instance() -> None:
    pipe = doubler_pipeline()
    assert pipe.check_io([{"x": 1}]) == [{"y": 2}]
    assert pipe.build().check_io({"x": 5}) == {"y": 10}


def test_check_io_refuses_an_output_json_cannot_hold_as_validate_does() -> None:
    class Bad(InferenceBackend):
        def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"y": {1, 2}} for _ in inputs]

    with pytest.raises(InferenceBackendValidationError) as info:
        Bad().check_io([{"x": 1}])
    assert info.value.index == 0
    assert info.value.path == "y"


def test_check_io_follows_a_validate_the_class_overrides() -> None:
    class Custom(Doubler):
        def validate(self, sample: Any, **kwargs: Any) -> Any:
            return "custom"

    assert Custom().check_io({"x": 1}) == "custom"


def test_check_io_on_a_composition() -> None:
    first = doubler_pipeline()
    second = Pipeline("plus")

    @second.execute
    def plus(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"z": record["y"] + 1} for record in records]

    assert (first >> second).check_io({"x": 1}) == {"z": 3}


# -- validate() on an output row that is not a dict --------------------------------------


class NotDicts(InferenceBackend):
    def execute(self, inputs: list[dict[str, Any]]) -> list[Any]:
        return [record["x"] for record in inputs]


@pytest.mark.parametrize("method", ["validate", "check_io"])
def test_validate_raises_a_validation_error_for_an_output_row_that_is_not_a_dict(
    method: str,
) -> None:
    backend = NotDicts()
    with pytest.raises(InferenceBackendValidationError) as info:
        getattr(backend, method)([{"x": 1}, {"x": 2}])
    assert info.value.index == 0
    assert "output record 0" in str(info.value)
    assert "must be a dict" in str(info.value)
    # Chained: the run-time contract's own error is still there to read.
    assert isinstance(info.value.__cause__, InferenceBackendRuntimeError)


def test_a_plain_call_with_an_output_row_that_is_not_a_dict_keeps_its_runtime_error() -> None:
    with pytest.raises(InferenceBackendRuntimeError, match="must be a dict"):
        NotDicts()([{"x": 1}])


def test_a_pipeline_s_validate_also_raises_a_validation_error_for_a_non_dict_row() -> None:
    pipe = Pipeline("bare")

    @pipe.execute
    def bare(records: list[dict[str, Any]]) -> list[Any]:
        return [1 for _ in records]

    with pytest.raises(InferenceBackendValidationError, match="output record 0"):
        pipe.validate({"x": 1})
    with pytest.raises(InferenceBackendRuntimeError):
        pipe({"x": 1})


# -- BackendConfig.output_keys -------------------------------------------------------------


def scorer(keys: list[str]) -> Pipeline:
    pipe = Pipeline("scorer", output_keys=keys)

    @pipe.execute
    def score(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"score": 1} if record.get("full") else {} for record in records]

    return pipe


def test_output_keys_defaults_to_none_declared() -> None:
    assert BackendConfig().output_keys == []


def test_output_keys_warns_once_per_missing_key_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = scorer(["score", "label"]).build()
    with caplog.at_level(logging.WARNING, logger="packflow"):
        outputs = built([{"full": True}, {}, {}])
    assert outputs == [{"score": 1}, {}, {}]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "'score' is missing from 2 of 3 output record(s) (first: record 1)" in messages[0]
    assert "'label' is missing from 3 of 3" in messages[1]
    assert all(r.name.startswith("packflow") for r in caplog.records)


def test_output_keys_is_quiet_when_every_record_has_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = scorer(["score"]).build()
    with caplog.at_level(logging.WARNING, logger="packflow"):
        built([{"full": True}, {"full": True}])
    assert not caplog.records


def test_output_keys_ignores_error_rows(caplog: pytest.LogCaptureFixture) -> None:
    pipe = Pipeline("picky", output_keys=["score"])

    @pipe.execute
    def picky(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"score": 1 / record["x"]} for record in records]

    with caplog.at_level(logging.WARNING, logger="packflow"):
        outputs = pipe.build()([{"x": 1}, {"x": 0}], on_error="row")
    assert "error" in outputs[1]
    assert not [r for r in caplog.records if "output_keys" in r.getMessage()]


def test_output_keys_of_a_composition_are_its_last_part_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    composed = doubler_pipeline() >> scorer(["score"])
    built = composed.build()
    assert built.output_keys == ("score",)
    with caplog.at_level(logging.WARNING, logger="packflow"):
        built([{"x": 1}])
    assert "'score' is missing from 1 of 1" in caplog.text


def test_output_keys_on_a_class_backend_config_model() -> None:
    class Declared(Doubler):
        pass

    backend = Declared(output_keys=["y"])
    assert backend.config.output_keys == ["y"]
    assert backend({"x": 1}) == {"y": 2}


# -- the project layout 0.4.1 creates, run unchanged ------------------------------------------

PROJECT_041 = Path(__file__).parent / "compat_041" / "myproj"


@pytest.fixture
def project_041(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the 0.4.1 project, in a working directory of its own."""
    folder = tmp_path / "myproj"
    shutil.copytree(PROJECT_041, folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKEND_CONFIG_FILE_PATH", raising=False)
    monkeypatch.delenv("MYPROJ_MODEL_NAME", raising=False)
    saved_path = list(sys.path)
    yield folder
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BACKEND_CONFIG_FILE_PATH"}
    # This library, not whatever else is installed, answers `import packflow`.
    environ["PYTHONPATH"] = os.pathsep.join([str(Path(packflow.__file__).parents[1]), str(cwd)])
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_0_4_1_project_s_own_tests_pass_unchanged(project_041: Path) -> None:
    done = python("-m", "pytest", "tests.py", "-q", "-p", "no:cacheprovider", cwd=project_041)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_0_4_1_packflow_yaml_reads_with_its_env_and_extra(project_041: Path) -> None:
    config = read_project_config(project_041)
    assert config.runtime.inference_backend == "inference:Backend"
    assert config.env == {"MYPROJ_MODEL_NAME": "myproj-model"}
    assert config.extra == {"created_with": "packflow 0.4.1", "template": "default"}


def test_packflow_check_works_on_the_0_4_1_project(
    project_041: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "myproj"]) == 0
    assert "ok: inference:Backend type-checks" in capsys.readouterr().out


def test_packflow_validate_works_on_the_0_4_1_project(
    project_041: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "myproj"]) == 0
    assert capsys.readouterr().out.startswith("ok: myproj: 0 errors")


def test_packflow_run_works_on_the_0_4_1_project_with_its_env(
    project_041: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project_041.parent / "in.jsonl").write_text('{"a": 1}\n{"a": 1, "b": 2}\n')
    assert main(["run", "myproj", "--input", "in.jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # env: MYPROJ_MODEL_NAME reached the backend before inference.py was imported.
    assert lines == [
        {"prediction": 1, "model": "myproj-model"},
        {"prediction": 2, "model": "myproj-model"},
    ]


def test_packflow_export_works_on_the_0_4_1_project(
    project_041: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "myproj"]) == 0
    with zipfile.ZipFile(project_041.parent / "myproj-0.1.0.zip") as archive:
        names = set(archive.namelist())
    assert {"packflow.yaml", "inference.py", "tests.py", "requirements.txt"} <= {
        name.split("/", 1)[-1] for name in names
    }


def test_a_non_dict_row_keeps_its_runtime_error_type_in_error_rows() -> None:
    rows = NotDicts()([{"x": 1}], on_error="row")
    assert rows[0]["error"]["type"] == "InferenceBackendRuntimeError"
