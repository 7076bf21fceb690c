"""The packflow command line, driven as a user drives it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import packflow
from packflow.cli import main
from packflow.project import create_project

# The console script installed next to this interpreter (a venv's bin folder), else on PATH.
SCRIPT = Path(sys.executable).parent / "packflow"
if not SCRIPT.exists():
    SCRIPT = Path(shutil.which("packflow") or SCRIPT)


pytestmark = pytest.mark.usefixtures("isolated_cwd")


def packflow_cmd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m packflow ARGS`` in the working directory, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "packflow", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_project(tmp_path: Path, inference: str, name: str = "demo") -> Path:
    folder = create_project(name, tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "inference.py").write_text(textwrap.dedent(inference))
    (folder / "LICENSE.txt").write_text("MIT")
    return folder


DOUBLER = """
    from packflow import Pipeline, Records

    pipe = Pipeline("doubler")

    @pipe.execute
    def double(records: Records) -> Records:
        return [{"y": record["x"] * 2} for record in records]
"""


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_the_acceptance_flow_works_with_the_console_script(tmp_path: Path) -> None:
    command = (
        "packflow create x && packflow check x && packflow validate x && "
        "packflow run x --input sample.jsonl && packflow export x"
    )
    env = {**os.environ, "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '{"value": 0.9, "positive": true}' in done.stdout.splitlines()
    with zipfile.ZipFile(tmp_path / "x-0.1.0.zip") as archive:
        assert {"packflow.yaml", "inference.py", "sample.jsonl"} <= set(archive.namelist())


def test_the_scaffolded_tests_pass(tmp_path: Path) -> None:
    assert main(["create", "x"]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "x",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    assert "7 passed" in done.stdout


def test_the_scaffolded_validate_script_passes(tmp_path: Path) -> None:
    assert main(["create", "x"]) == 0
    done = subprocess.run(
        [sys.executable, "validate.py"], cwd=tmp_path / "x", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: 3 sample records passed validation\n"


def test_version_prints_the_package_version() -> None:
    done = packflow_cmd("--version")
    assert (done.returncode, done.stdout) == (0, f"packflow {packflow.__version__}\n")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "required: COMMAND" in capsys.readouterr().err


# --------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "9lives"], "invalid project name '9lives'"),
        (["check", "nowhere"], "nowhere: no such project folder"),
        (["run", "nowhere", "--input", "x.jsonl"], "nowhere: no such project folder"),
        (["graph", "inference:pipe"], "and there is no inference.py in"),
        (["export", "nowhere"], "nowhere: no such project folder"),
    ],
)
def test_a_user_mistake_prints_one_line_and_no_traceback(args: list[str], message: str) -> None:
    done = packflow_cmd(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


def test_a_broken_packflow_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "packflow.yaml").write_text("name: p\nruntime: [\n")
    done = packflow_cmd("check", "p")
    assert done.returncode == 1
    assert "packflow.yaml: not valid YAML at line 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_backend_that_fails_to_import_names_its_file_and_line(tmp_path: Path) -> None:
    write_project(tmp_path, "x = 1\nraise ValueError('no weights')\n")
    done = packflow_cmd("check", "demo")
    assert done.returncode == 1
    assert f"{tmp_path / 'demo' / 'inference.py'}:2: ValueError: no weights" in done.stderr
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    write_project(tmp_path, "raise ValueError('no weights')\n")
    done = packflow_cmd("--debug", "check", "demo")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "InferenceBackendLoadError" in done.stderr


def test_python_dash_m_is_the_same_cli_as_the_script() -> None:
    by_module = packflow_cmd("--help")
    by_script = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True)
    assert by_module.stdout == by_script.stdout
    assert by_module.stdout.startswith("usage: packflow")


# --------------------------------------------------------------------------- check, graph


def test_check_prints_the_stage_graph_with_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    assert main(["check", "demo"]) == 0
    out = capsys.readouterr().out
    assert "[execute `double`]" in out
    assert out.count("|  list[dict[str, Any]]") == 3
    assert "ok: inference:pipe type-checks (1 stage, 0 initializers)" in out


def test_check_reports_every_definition_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(
        tmp_path,
        """
        from packflow import Pipeline

        pipe = Pipeline("broken")

        @pipe.transform_inputs
        def prepare(records, modle):
            return records

        @pipe.execute
        def predict(records, tokenizer):
            return records
        """,
    )
    assert main(["check", "demo"]) == 1
    err = capsys.readouterr().err
    assert "2 definition problems" in err
    assert "asks for `modle`" in err
    assert "asks for `tokenizer`" in err


def test_check_reports_stages_whose_types_do_not_fit_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(
        tmp_path,
        """
        import numpy as np
        from numpy.typing import NDArray
        from packflow import Pipeline, Records

        pipe = Pipeline("mismatch")

        @pipe.transform_inputs
        def prepare(records: Records) -> Records:
            return records

        @pipe.execute
        def predict(x: NDArray[np.float64]) -> Records:
            return [{"y": 1.0} for _ in x]
        """,
    )
    assert main(["check", "demo"]) == 1
    captured = capsys.readouterr()
    assert "1 type problem between stages" in captured.err
    assert "expected NDArray[float64], got list[dict[str, Any]]" in captured.err
    assert "inference.py:12" in captured.err
    assert captured.out == ""


def test_check_shows_the_numpy_preprocessor_output_on_its_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(
        tmp_path,
        """
        import numpy as np
        from numpy.typing import NDArray
        from packflow import Pipeline

        pipe = Pipeline("means", input_format="numpy", feature_names=["a", "b"])

        @pipe.execute
        def mean(x: NDArray[np.float64]) -> list[dict[str, float]]:
            return [{"mean": v} for v in x.mean(axis=1).tolist()]
        """,
    )
    assert main(["check", "demo"]) == 0
    out = capsys.readouterr().out
    assert "[preprocess (numpy)]" in out
    assert "-> NDArray[float64]" in out


NUMPY_MATH = """
    from packflow.backend import InferenceBackend


    class NumpyMath(InferenceBackend):
        def initialize(self):
            raise RuntimeError("only run and validate build the backend")

        def execute(self, inputs):
            return inputs.mean(axis=1)

        def transform_outputs(self, outputs):
            return [{"mean": v} for v in outputs.tolist()]
"""


def test_check_reads_a_class_backend_without_initializing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_project(tmp_path, NUMPY_MATH)
    text = (folder / "packflow.yaml").read_text().replace("inference:pipe", "inference:NumpyMath")
    (folder / "packflow.yaml").write_text(text)
    assert main(["check", "demo"]) == 0
    out = capsys.readouterr().out
    assert "[execute `execute`]" in out
    assert "[transform_outputs `transform_outputs`]" in out


def test_run_serves_a_class_backend_with_its_project_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_project(tmp_path, NUMPY_MATH.replace("raise RuntimeError", "self.logger.info"))
    text = (folder / "packflow.yaml").read_text().replace("inference:pipe", "inference:NumpyMath")
    text = text.replace(
        "backend_config: {}", "backend_config:\n  input_format: numpy\n  feature_names: [a, b]"
    )
    (folder / "packflow.yaml").write_text(text)
    write_lines(tmp_path / "in.jsonl", ['{"a": 1, "b": 3}', '{"a": 2, "b": 2, "c": 9}'])
    assert main(["run", "demo", "--input", "in.jsonl"]) == 0
    assert capsys.readouterr().out == '{"mean": 2.0}\n{"mean": 2.0}\n'


def test_check_accepts_a_module_attribute_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "scoring.py").write_text(textwrap.dedent(DOUBLER))
    assert main(["check", "scoring:pipe"]) == 0
    assert "ok: scoring:pipe type-checks" in capsys.readouterr().out


def test_check_does_not_run_initializers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(
        tmp_path,
        """
        from packflow import Pipeline

        pipe = Pipeline("lazy")

        @pipe.initialize
        def model(config) -> int:
            raise RuntimeError("initializer ran")

        @pipe.execute
        def predict(records, model: int):
            return records
        """,
    )
    assert main(["check", "demo"]) == 0
    assert "initializer ran" not in capsys.readouterr().err


def test_graph_in_mermaid_puts_the_type_on_every_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    assert main(["graph", "demo", "--format", "mermaid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flowchart TD"
    edges = [line.strip() for line in lines if "-->" in line]
    assert edges == [
        'inputs -->|"list[dict[str, Any]]"| preprocess',
        'preprocess -->|"list[dict[str, Any]]"| execute',
        'execute -->|"list[dict[str, Any]]"| outputs',
    ]


# --------------------------------------------------------------------------- validate, export


@pytest.mark.parametrize("command", ["check", "graph"])
def test_the_graph_is_all_that_stdout_holds_when_the_module_prints(
    tmp_path: Path, command: str
) -> None:
    write_project(tmp_path, 'print("hello from import")\n' + textwrap.dedent(DOUBLER))
    done = packflow_cmd(command, "demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pipeline 'doubler'")
    assert "hello from import" in done.stderr


def test_validate_says_when_the_path_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert main(["validate", "notes.txt"]) == 1
    assert "error: notes.txt: is a file, not a project folder" in capsys.readouterr().err


def test_validate_lists_warnings_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    assert main(["validate", "x"]) == 0
    captured = capsys.readouterr()
    assert "warning: LICENSE.txt: is empty" in captured.err
    assert "warning: " not in captured.out
    assert "ok: x: 0 errors, 3 warnings; 3 sample records passed validate()" in captured.out


def test_validate_strict_fails_on_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    assert main(["validate", "x", "--strict"]) == 1
    assert "FAILED: x: 0 errors, 3 warnings" in capsys.readouterr().out


def test_validate_fails_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_project(tmp_path, DOUBLER)
    (folder / "requirements.txt").unlink()
    assert main(["validate", "demo"]) == 1
    captured = capsys.readouterr()
    assert "error: requirements.txt: missing (required)" in captured.err
    assert captured.out.splitlines()[-1].startswith("FAILED: demo: ")
    assert "error: " not in captured.out


def test_export_writes_the_archive_in_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "my-model"]) == 0
    assert main(["export", "my-model"]) == 0
    assert "wrote my_model-0.1.0.zip (10 files)" in capsys.readouterr().out
    assert (tmp_path / "my_model-0.1.0.zip").is_file()


def test_export_of_a_missing_folder_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export", "nowhere"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "packflow export: error: not exporting nowhere: validation found an error: "
        "nowhere: no such project folder"
    ]


def test_a_packflow_yaml_without_inference_backend_fails_check_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    (tmp_path / "x" / "packflow.yaml").write_text("name: x\nversion: 0.1.0\n")
    assert main(["check", "x"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "`runtime.inference_backend` is missing" in line


def test_export_refuses_a_project_that_does_not_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, "import not_installed_anywhere\n")
    assert main(["export", "demo"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "packflow export: error: not exporting demo: validation found an error: "
        "backend: does not load: cannot load 'inference:pipe'"
    )
    assert not list(tmp_path.glob("*.zip"))


# --------------------------------------------------------------------------- run


def test_run_writes_one_output_line_per_input_line_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", [json.dumps({"x": i}) for i in range(7)])
    assert main(["run", "demo", "--input", "in.jsonl", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == [{"y": 2 * i} for i in range(7)]


@pytest.fixture(scope="module")
def doubler_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = create_project("doubler", tmp_path_factory.mktemp("projects"))
    (folder / "inference.py").write_text(textwrap.dedent(DOUBLER))
    return folder


@given(
    lines=st.lists(
        st.one_of(
            st.integers(-1000, 1000).map(lambda x: json.dumps({"x": x})),
            st.integers(-1000, 1000).map(lambda x: json.dumps({"z": x})),
            st.sampled_from(["{", "[1]", '"text"', "{'x': 1}", "null", "", '{"x": NaN}']),
        ),
        max_size=12,
    ),
    batch_size=st.integers(1, 5),
)
@settings(max_examples=30, deadline=None)
def test_run_output_line_n_belongs_to_input_line_n_for_any_batch_size(
    doubler_project: Path, lines: list[str], batch_size: int
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        source = write_lines(Path(scratch) / "in.jsonl", lines)
        target = Path(scratch) / "out.jsonl"
        files = ["--input", str(source), "--output", str(target)]
        code = main(["run", str(doubler_project), *files, "--batch-size", str(batch_size)])
        outputs = target.read_text().splitlines()
    assert len(outputs) == len(lines)
    for number, (line, output) in enumerate(zip(lines, outputs, strict=True), 1):
        if not line:
            assert output == ""
        elif line.startswith('{"x": ') and "NaN" not in line:
            assert json.loads(output) == {"y": 2 * json.loads(line)["x"]}
        else:
            assert json.loads(output)["error"]["line"] == number
    ok = all(not line or (line.startswith('{"x": ') and "NaN" not in line) for line in lines)
    assert code == (0 if ok else 1)


def test_run_reads_stdin_and_writes_a_file(tmp_path: Path) -> None:
    write_project(tmp_path, DOUBLER)
    done = packflow_cmd(
        "run", "demo", "--input", "-", "--output", "out.jsonl", stdin='{"x": 1}\n{"x": 2}\n'
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_text() == '{"y": 2}\n{"y": 4}\n'


def test_run_reports_a_bad_json_line_by_number_and_runs_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", ['{"x": 1}', '{"x": ', "", "[1, 2]", '{"x": 3}'])
    assert main(["run", "demo", "--input", "in.jsonl"]) == 1
    captured = capsys.readouterr()
    outputs = captured.out.splitlines()
    assert [outputs[0], outputs[2], outputs[4]] == ['{"y": 2}', "", '{"y": 6}']
    assert json.loads(outputs[1])["error"]["line"] == 2
    assert json.loads(outputs[3])["error"] == {
        "type": "InvalidLine",
        "message": "expected a JSON object, got list",
        "stage": "input",
        "index": 2,  # counting the non-blank lines
        "line": 4,
    }
    assert "line 2: input: InvalidLine: not valid JSON" in captured.err
    assert "line 4: input: InvalidLine: expected a JSON object, got list" in captured.err
    assert "2 of 5 lines failed (lines 2, 4)" in captured.err


def test_run_puts_an_error_row_where_a_record_made_the_pipeline_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", ['{"x": 1}', '{"z": 2}', '{"x": 3}'])
    assert main(["run", "demo", "--input", "in.jsonl", "--batch-size", "10"]) == 1
    captured = capsys.readouterr()
    first, error_row, last = captured.out.splitlines()
    assert (first, last) == ('{"y": 2}', '{"y": 6}')
    assert json.loads(error_row) == {
        "error": {"type": "KeyError", "message": "'x'", "stage": "execute", "index": 1, "line": 2}
    }
    assert "line 2: record 1, execute: KeyError: 'x'" in captured.err


def test_run_reports_a_line_that_is_not_utf8_by_number_and_runs_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    (tmp_path / "in.jsonl").write_bytes(b'{"x": 1}\n{"x": "\xff"}\n{"x": 3}\n')
    assert main(["run", "demo", "--input", "in.jsonl"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[::2] == ['{"y": 2}', '{"y": 6}']
    assert "line 2: input: InvalidLine: not valid UTF-8 at byte 8" in captured.err


def test_run_reads_a_file_that_starts_with_a_byte_order_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    (tmp_path / "in.jsonl").write_bytes(b'\xef\xbb\xbf{"x": 1}\n')
    assert main(["run", "demo", "--input", "in.jsonl"]) == 0
    assert capsys.readouterr().out == '{"y": 2}\n'


def test_run_refuses_nan_in_the_input_as_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", ['{"x": NaN}'])
    assert main(["run", "demo", "--input", "in.jsonl"]) == 1
    assert "line 1: input: InvalidLine: not valid JSON: NaN is not JSON" in capsys.readouterr().err


def test_run_names_an_output_file_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    code = main(["run", "x", "--input", "sample.jsonl", "--output", "no/such/dir/out.jsonl"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "packflow run: error: --output no/such/dir/out.jsonl: No such file or directory"
    ]


def test_run_refuses_to_write_its_output_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", ['{"x": 1}'])
    assert main(["run", "demo", "--input", "in.jsonl", "--output", "./in.jsonl"]) == 1
    assert "--output ./in.jsonl is the input file" in capsys.readouterr().err
    assert (tmp_path / "in.jsonl").read_text() == '{"x": 1}\n'


def test_run_says_when_the_input_is_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    assert main(["run", "x", "--input", "x"]) == 1
    assert "--input x: is a folder, not a JSON Lines file" in capsys.readouterr().err


def test_run_keeps_what_the_users_code_prints_out_of_the_output(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        from packflow import Pipeline, Records

        print("importing")
        pipe = Pipeline("talker")

        @pipe.initialize
        def model(config) -> int:
            print("loading weights")
            return 2

        @pipe.execute
        def double(records: Records, model: int) -> Records:
            print("scoring")
            return [{"y": record["x"] * model} for record in records]
        """,
    )
    done = packflow_cmd("run", "demo", "--input", "-", stdin='{"x": 1}\n{"x": 2}\n')
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"y": 2}\n{"y": 4}\n'
    assert "loading weights" in done.stderr


def test_run_leaves_the_output_file_alone_when_the_backend_does_not_load(
    tmp_path: Path,
) -> None:
    write_project(tmp_path, "raise RuntimeError('broken')\n")
    (tmp_path / "out.jsonl").write_text("earlier results\n")
    write_lines(tmp_path / "in.jsonl", ['{"x": 1}'])
    assert main(["run", "demo", "--input", "in.jsonl", "--output", "out.jsonl"]) == 1
    assert (tmp_path / "out.jsonl").read_text() == "earlier results\n"


def test_run_prints_progress_on_stderr_for_long_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, DOUBLER)
    write_lines(tmp_path / "in.jsonl", [json.dumps({"x": i}) for i in range(1500)])
    assert main(["run", "demo", "--input", "in.jsonl", "--batch-size", "500"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1500
    # Progress is shown after a batch once 1000 lines are written; where the batches end
    # depends on how fast the source is read (a slow read flushes a batch early).
    shown = re.findall(r"packflow: (\d+) lines written \(\d+/s\)", captured.err)
    assert shown and all(1000 <= int(done) <= 1500 for done in shown)
    assert "packflow: done, 1500 lines" in captured.err


def test_run_finds_the_input_file_in_the_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_project("x", tmp_path)
    assert main(["run", "x", "--input", "sample.jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_run_refuses_a_batch_size_below_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    assert main(["run", "x", "--input", "sample.jsonl", "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err


def test_run_with_a_missing_input_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    assert main(["run", "x", "--input", "missing.jsonl"]) == 1
    assert "--input missing.jsonl: no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------- create into a folder


def test_create_into_an_existing_empty_folder_exits_1_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").mkdir()
    assert main(["create", "x"]) == 1
    assert "x already exists and is empty (pass --force" in capsys.readouterr().err
    assert list((tmp_path / "x").iterdir()) == []
    assert main(["create", "x", "--force"]) == 0
    assert (tmp_path / "x" / "packflow.yaml").is_file()


def test_the_scaffold_packflow_yaml_names_what_its_inference_py_defines(tmp_path: Path) -> None:
    import ast

    from packflow.project import read_project_config

    assert main(["create", "x"]) == 0
    spec = read_project_config(tmp_path / "x").runtime.inference_backend
    module, attribute = spec.split(":")
    tree = ast.parse((tmp_path / "x" / f"{module}.py").read_text(encoding="utf-8"))
    defined = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    } | {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    assert attribute in defined


CLASS_BACKEND = """\
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"value": r["value"], "positive": r["value"] > 0.5} for r in inputs]
"""


def test_inference_backend_the_originals_convention_works_for_a_class_project(
    tmp_path: Path,
) -> None:
    assert main(["create", "x"]) == 0
    (tmp_path / "x" / "inference.py").write_text(CLASS_BACKEND, encoding="utf-8")
    yaml_file = tmp_path / "x" / "packflow.yaml"
    yaml_file.write_text(
        yaml_file.read_text(encoding="utf-8").replace("inference:pipe", "inference:Backend"),
        encoding="utf-8",
    )
    for command in (["check", "x"], ["validate", "x"], ["export", "x"]):
        assert main(command) == 0, command
    done = packflow_cmd("run", "x", "--input", "x/sample.jsonl")
    assert done.returncode == 0, done.stderr
    assert '{"value": 0.9, "positive": true}' in done.stdout.splitlines()


def test_a_spec_the_module_does_not_define_points_at_packflow_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "x"]) == 0
    (tmp_path / "x" / "inference.py").write_text(CLASS_BACKEND, encoding="utf-8")
    assert main(["check", "x"]) == 1
    err = capsys.readouterr().err
    assert "has no attribute 'pipe'; it defines Backend" in err
    assert "runtime.inference_backend in x/packflow.yaml" in err


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "args",
    [
        ["check", "nowhere"],
        ["graph", "nowhere"],
        ["validate", "nowhere"],
        ["export", "nowhere"],
        ["run", "nowhere", "--input", "x.jsonl"],
        ["check", "inference:pipe"],
        ["create", "9lives"],
    ],
)
def test_a_user_mistake_exits_1_in_every_command(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_file_given_for_a_project_folder_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert main(["check", "notes.txt"]) == 1
    assert "notes.txt is a file; give the project folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["check", "--bogus"], ["create"], ["graph", ".", "--format", "svg"], ["nope"]]
)
def test_only_a_command_line_usage_error_exits_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert "usage: packflow" in capsys.readouterr().err


# --------------------------------------------------------------------------- templates


def test_check_and_graph_of_a_composed_project_render_each_part(
    capsys: pytest.CaptureFixture[str],
) -> None:
    iris = Path(__file__).resolve().parent.parent / "examples" / "iris"
    assert main(["check", str(iris)]) == 0
    out = capsys.readouterr().out
    assert "composition 'iris >> species_names': 2 parts (iris, species_names)" in out
    assert "type-checks (2 parts, 2 stages, 1 initializer)" in out
    assert main(["graph", str(iris), "--format", "mermaid"]) == 0
    assert "subgraph" in capsys.readouterr().out


@pytest.mark.parametrize("template", ["blank", "onnx", "sklearn"])
def test_every_template_checks_validates_runs_exports_and_passes_its_tests(
    tmp_path: Path, template: str
) -> None:
    assert main(["create", "x", "--template", template]) == 0
    for command in (["check", "x"], ["validate", "x", "--strict"]):
        # --strict fails on warnings; the scaffold's are LICENSE, description, maintainers.
        expected = 1 if "--strict" in command else 0
        assert main(command) == expected, command
    assert main(["validate", "x"]) == 0
    done = packflow_cmd("run", "x", "--input", "x/sample.jsonl")
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout.splitlines()[0])
    if template == "blank":
        assert first == {"value": 0.2, "positive": False}
    else:
        assert first["label"] == "setosa"
        assert set(first["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert main(["export", "x"]) == 0
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "x",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout


def test_an_unknown_template_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "x", "--template", "torch"]) == 2
    assert "invalid choice: 'torch'" in capsys.readouterr().err
