"""Config on the command line (``--config FILE``, ``--set key=value``) and ``verbose``
in ``packflow run``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from packflow.cli import main
from packflow.project import create_project

pytestmark = pytest.mark.usefixtures("isolated_cwd")

SCALER = """
    import attrs
    from packflow import BackendConfig, Pipeline, Records

    @attrs.frozen(kw_only=True)
    class ScaleConfig(BackendConfig):
        factor: float = 1.0

    pipe = Pipeline("scaler", config_model=ScaleConfig)

    @pipe.execute
    def scale(records: Records, config: ScaleConfig) -> Records:
        return [{"y": record["x"] * config.factor} for record in records]
"""


def scaler_project(tmp_path: Path) -> Path:
    folder = create_project("demo", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "inference.py").write_text(textwrap.dedent(SCALER))
    (folder / "LICENSE.txt").write_text("MIT")
    (folder / "sample.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "in.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    return folder


def override_file(path: Path, configs: object) -> Path:
    path.write_text(json.dumps({"configs": configs}))
    return path


def outputs(capsys: pytest.CaptureFixture[str]) -> list[object]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_run_set_gives_one_config_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    assert main(["run", "demo", "--input", "in.jsonl", "--set", "factor=10"]) == 0
    assert outputs(capsys) == [{"y": 10.0}, {"y": 20.0}]


def test_run_config_file_has_the_override_file_s_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    override_file(tmp_path / "cfg.json", {"factor": 3})
    assert main(["run", "demo", "--input", "in.jsonl", "--config", "cfg.json"]) == 0
    assert outputs(capsys) == [{"y": 3.0}, {"y": 6.0}]


def test_set_wins_over_config_which_wins_over_the_environment_s_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scaler_project(tmp_path)
    monkeypatch.setenv(
        "BACKEND_CONFIG_FILE_PATH", str(override_file(tmp_path / "env.json", {"factor": 2}))
    )
    override_file(tmp_path / "cfg.json", {"factor": 3})
    args = ["run", "demo", "--input", "in.jsonl"]
    assert main(args) == 0
    assert outputs(capsys)[0] == {"y": 2.0}
    assert main([*args, "--config", "cfg.json"]) == 0
    assert outputs(capsys)[0] == {"y": 3.0}
    assert main([*args, "--config", "cfg.json", "--set", "factor=4", "--set", "factor=5"]) == 0
    assert outputs(capsys)[0] == {"y": 5.0}


@pytest.mark.parametrize("command", ["check", "validate", "run"])
def test_an_unknown_set_key_is_refused_with_did_you_mean_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    scaler_project(tmp_path)
    extra = ["--input", "in.jsonl"] if command == "run" else []
    assert main([command, "demo", *extra, "--set", "factr=2"]) == 1
    err = capsys.readouterr().err
    assert "factr: unknown config key for ScaleConfig (from --set); did you mean 'factor'?" in err


@pytest.mark.parametrize("command", ["check", "validate", "run"])
def test_a_wrongly_typed_value_in_the_config_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    scaler_project(tmp_path)
    override_file(tmp_path / "cfg.json", {"factor": "big"})
    extra = ["--input", "in.jsonl"] if command == "run" else []
    assert main([command, "demo", *extra, "--config", "cfg.json"]) == 1
    assert "factor" in (err := capsys.readouterr().err)
    assert "(from --config cfg.json)" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file 'cfg.json' (given by --config) does not exist"),
        ("{", "config file 'cfg.json' (given by --config) is not valid JSON"),
        ('{"factor": 2}', 'has no "configs" object'),
        ('{"configs": {"factor": 1, "factor": 2}}', "gives the key 'factor' twice"),
    ],
)
def test_a_config_file_is_checked_as_the_override_file_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    scaler_project(tmp_path)
    if content is not None:
        (tmp_path / "cfg.json").write_text(content)
    assert main(["check", "demo", "--config", "cfg.json"]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_setting_without_equals_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    assert main(["check", "demo", "--set", "factor"]) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_set_reads_json_values_and_falls_back_to_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"x": 1, "drop": 0}\n')
    args = ["run", "demo", "--input", "in.jsonl", "--set", 'feature_names=["x"]']
    assert main([*args, "--set", "input_format=records"]) == 0
    assert outputs(capsys) == [{"y": 1.0}]


def test_validate_uses_the_command_line_config_on_the_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    assert main(["validate", "demo", "--set", 'output_keys=["score"]']) == 0
    assert "output_keys: 'score' is missing" in capsys.readouterr().err


def test_set_addresses_a_part_of_a_composition_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chain.py").write_text(
        textwrap.dedent(
            SCALER
            + """
    other = Pipeline("other", config_model=ScaleConfig)

    @other.execute
    def again(records: Records, config: ScaleConfig) -> Records:
        return [{"z": record["y"] * config.factor} for record in records]

    both = pipe >> other
    """
        )
    )
    (tmp_path / "in.jsonl").write_text('{"x": 1}\n')
    args = ["run", "chain:both", "--input", "in.jsonl"]
    assert main([*args, "--set", "scaler.factor=2", "--set", "other.factor=5"]) == 0
    assert outputs(capsys) == [{"z": 10.0}]
    assert main([*args, "--set", "scalr.factor=2"]) == 1
    assert "'scalr' (did you mean 'scaler'?)" in capsys.readouterr().err


def test_config_and_set_are_refused_with_the_ray_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler_project(tmp_path)
    args = ["run", "demo", "--input", "in.jsonl", "--engine", "ray", "--set", "factor=2"]
    assert main(args) == 2
    assert "not supported with --engine ray" in capsys.readouterr().err


# -- verbose --------------------------------------------------------------------------------


def test_verbose_shows_per_batch_metrics_in_run_without_a_log_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACKFLOW_LOG_LEVEL", raising=False)
    scaler_project(tmp_path)
    assert main(["run", "demo", "--input", "in.jsonl", "--set", "verbose=true"]) == 0
    captured = capsys.readouterr()
    assert "'batch_size': 2" in captured.err
    assert "execution_times" in captured.err
    assert captured.out.count("\n") == 2


def test_without_verbose_run_shows_no_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACKFLOW_LOG_LEVEL", raising=False)
    scaler_project(tmp_path)
    assert main(["run", "demo", "--input", "in.jsonl"]) == 0
    assert "batch_size" not in capsys.readouterr().err


def test_verbose_leaves_the_logger_level_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    monkeypatch.delenv("PACKFLOW_LOG_LEVEL", raising=False)
    scaler_project(tmp_path)
    before = logging.getLogger("packflow.scaler").level
    assert main(["run", "demo", "--input", "in.jsonl", "--set", "verbose=true"]) == 0
    assert logging.getLogger("packflow.scaler").level == before


def test_check_refuses_a_class_backend_with_a_misspelt_stage_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "typo.py").write_text(
        textwrap.dedent(
            """
            from packflow import InferenceBackend

            class Backend(InferenceBackend):
                def execute(self, inputs):
                    return inputs

                def transform_input(self, inputs):
                    return inputs
            """
        )
    )
    assert main(["check", "typo:Backend"]) == 1
    err = capsys.readouterr().err
    assert "Backend.transform_input" in err
    assert "did you mean 'transform_inputs'?" in err
    assert "Traceback" not in err
