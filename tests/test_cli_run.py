"""``packflow run`` on the library's stream: stopping rules, error rows, live stdin, Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO

import pytest

from packflow import Pipeline, Records
from packflow.cli import main
from packflow.project import create_project
from packflow.runtime.jsonl import Interrupted, parse_line, run_lines, serialize

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("isolated_cwd")]


def write_project(tmp_path: Path, inference: str, name: str = "demo") -> Path:
    folder = create_project(name, tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "inference.py").write_text(textwrap.dedent(inference))
    return folder


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


#: Fails on a record without "x"; appends each record it runs to calls.txt.
COUNTING = """
    from pathlib import Path
    from packflow import Pipeline, Records

    pipe = Pipeline("counting")
    CALLS = Path(__file__).parent / "calls.txt"

    @pipe.execute
    def double(records: Records) -> Records:
        with CALLS.open("a") as calls:
            calls.write("".join(f"{r}\\n" for r in records))
        return [{"y": record["x"] * 2} for record in records]
"""


def lines_of(x_values: list[int | None]) -> list[str]:
    return [json.dumps({"x": x} if x is not None else {"z": 0}) for x in x_values]


def test_max_errors_stops_after_that_many_failed_lines_with_their_rows_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, COUNTING)
    values = [1, None, 2, None, 3, None, 4, None, 5]
    write_lines(tmp_path / "in.jsonl", lines_of(values))
    code = main(["run", "demo", "--input", "in.jsonl", "--max-errors", "2", "-b", "2"])
    captured = capsys.readouterr()
    assert code == 1
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert rows[:3] == [{"y": 2}, rows[1], {"y": 4}]
    assert [row["error"]["line"] for row in rows if "error" in row] == [2, 4]
    assert len(rows) == 4  # up to and including the second failed line
    assert "stopped after 2 failed lines (max_errors=2); 4 lines written" in captured.err


@pytest.mark.parametrize("flag", [["--fail-fast"], ["--on-error", "raise"]])
def test_fail_fast_stops_at_the_first_failed_line_without_writing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([1, 2, None, 3]))
    assert main(["run", "demo", "--input", "in.jsonl", "-b", "1", *flag]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ['{"y": 2}', '{"y": 4}']
    assert "line 3: record 2, execute: KeyError: 'x'" in captured.err
    assert "stopped after line 3 failed" in captured.err


def test_a_sub_batch_that_succeeded_is_never_run_again(tmp_path: Path) -> None:
    folder = write_project(tmp_path, COUNTING)
    values: list[int | None] = list(range(16))
    values[11] = None
    write_lines(tmp_path / "in.jsonl", lines_of(values))
    assert main(["run", "demo", "--input", "in.jsonl", "-b", "16", "-o", "out.jsonl"]) == 1
    calls = (folder / "calls.txt").read_text().splitlines()
    runs = {x: sum(line == repr({"x": x}) for line in calls) for x in range(16) if x != 11}
    # The failing batch of 16 is split in halves; the half without the bad record runs
    # once more and is answered, only the bad half is split further.
    assert all(count <= 1 + 4 for count in runs.values())
    assert runs[0] == 2  # in the full batch, then in its good half, never again
    assert len(calls) <= 16 + 2 * 1 * 4 * 8  # far below one retry per record per level
    outputs = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(o) for o in outputs[:11]] == [{"y": 2 * x} for x in range(11)]


def test_an_output_that_is_not_json_gets_an_error_row_naming_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(
        tmp_path,
        """
        from packflow import Pipeline, Records

        pipe = Pipeline("nan")

        @pipe.execute
        def score(records: Records) -> Records:
            return [{"scores": [1.0, float("nan") if r["x"] == 2 else 0.5]} for r in records]
        """,
    )
    write_lines(tmp_path / "in.jsonl", lines_of([1, 2, 3]))
    assert main(["run", "demo", "--input", "in.jsonl"]) == 1
    captured = capsys.readouterr()
    first, bad, last = (json.loads(line) for line in captured.out.splitlines())
    assert first == last == {"scores": [1.0, 0.5]}
    assert bad["error"]["stage"] == "output"
    assert bad["error"]["index"] == 1
    assert bad["error"]["message"].startswith("at scores[1]: nan is not valid JSON")


def test_serialize_names_the_key_path_of_a_value_it_cannot_convert() -> None:
    with pytest.raises(TypeError, match=r"at a\.b\[0\]: object .* is not JSON-serializable"):
        serialize({"a": {"b": [object()]}})
    assert serialize({"a": (1, 2)}) == '{"a": [1, 2]}'


def test_parse_line_tells_blank_bad_and_good_lines_apart() -> None:
    # The column is counted on the line itself, its line end left out.
    assert parse_line(b'{"x": \n', 1) == "not valid JSON: Expecting value (column 7)"
    assert parse_line(b"  \n", 1) is None
    assert parse_line(b'\xef\xbb\xbf{"a": 1}', 1) == {"a": 1}
    # A byte order mark is allowed at the start of the file only.
    assert str(parse_line(b'\xef\xbb\xbf{"a": 1}', 2)).startswith("not valid JSON")
    assert parse_line('{"a": Infinity}', 3) == "not valid JSON: Infinity is not JSON"


def test_run_lines_reports_an_interrupt_with_what_was_written() -> None:
    pipe = Pipeline("echo")

    @pipe.execute
    def echo(records: Records) -> Records:
        return records

    def source() -> object:
        yield '{"a": 1}'
        yield '{"a": 2}'
        raise KeyboardInterrupt

    written: list[str] = []
    with pytest.raises(Interrupted) as caught:
        run_lines(pipe.build(), source(), written.append)  # type: ignore[arg-type]
    assert written == ['{"a": 1}', '{"a": 2}']
    assert (caught.value.summary.read, caught.value.summary.written) == (2, 2)


def read_line(stream: IO[str], timeout: float = 20.0) -> str:
    """One line from ``stream``, or fail after ``timeout`` seconds (never hangs the suite)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, f"no output line within {timeout} s"
    return got[0]


def start_run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    write_project(tmp_path, COUNTING)
    return subprocess.Popen(
        [sys.executable, "-m", "packflow", "run", "demo", "--input", "-", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # Without PYTHONUNBUFFERED: the lines must reach the reader by packflow's own flushes.
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
    )


def test_run_answers_each_line_of_a_live_stdin_before_the_next_arrives(tmp_path: Path) -> None:
    # A batch size of 64 would hold these back forever if only full batches were run.
    with start_run(tmp_path, "--max-latency-ms", "5") as run:
        assert run.stdin is not None and run.stdout is not None
        try:
            for x in range(3):
                run.stdin.write(json.dumps({"x": x}) + "\n")
                run.stdin.flush()
                assert json.loads(read_line(run.stdout)) == {"y": 2 * x}
            run.stdin.close()
            assert run.wait(timeout=30) == 0
        finally:
            run.kill()


def test_ctrl_c_reports_how_many_lines_were_written(tmp_path: Path) -> None:
    with start_run(tmp_path, "--max-latency-ms", "1") as run:
        assert run.stdin is not None and run.stdout is not None and run.stderr is not None
        try:
            for x in range(2):
                run.stdin.write(json.dumps({"x": x}) + "\n")
                run.stdin.flush()
                read_line(run.stdout)
            run.send_signal(signal.SIGINT)
            assert run.wait(timeout=30) == 130
            assert "interrupted; 2 lines written of 2 read" in run.stderr.read()
        finally:
            run.kill()


def test_a_run_of_blank_lines_is_kept_as_one_count_and_written_back_in_place() -> None:
    from packflow.runtime.jsonl import _Lines

    source = ["\n"] * 10_000 + ['{"a": 1}\n'] + ["\n"] * 3
    reader = _Lines(source)
    assert list(reader) == [{"a": 1}]
    assert list(reader.numbers) == [-10_000, 10_001, -3]  # bounded, whatever the input

    pipe = Pipeline("echo_blanks")

    @pipe.execute
    def echo(records: Records) -> Records:
        return records

    written: list[str] = []
    summary = run_lines(pipe.build(), source, written.append)
    assert written == [""] * 10_000 + ['{"a": 1}'] + [""] * 3
    assert (summary.read, summary.written, summary.failed) == (10_004, 10_004, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--max-latency-ms", "-1"], "--max-latency-ms must be a number >= 0, got -1.0"),
        (["--max-latency-ms", "nan"], "--max-latency-ms must be a number >= 0, got nan"),
        (["--max-errors", "0"], "--max-errors must be at least 1, got 0"),
        (["--concurrency", "2"], "--concurrency is for --engine ray"),
        (["--engine", "ray", "--concurrency", "0"], "--concurrency must be at least 1, got 0"),
        (["--engine", "ray", "--input", "-"], "--engine ray reads a file: give --input FILE"),
        (["--on-error", "skip"], "invalid choice: 'skip'"),
    ],
)
def test_bad_run_options_are_usage_errors_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([1]))
    assert main(["run", "demo", "--input", "in.jsonl", *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo" / "calls.txt").exists()  # nothing ran


def test_a_line_error_is_reported_on_one_line_and_kept_whole_in_its_row() -> None:
    from packflow.runtime.jsonl import LineError

    problem = LineError(3, "ValueError", "bad value\n  detail on a second line", "execute", 2)
    assert str(problem) == "line 3: record 2, execute: ValueError: bad value"
    assert problem.row()["error"]["message"] == "bad value\n  detail on a second line"
    assert problem.row()["error"]["line"] == 3


def test_the_documented_bad_line_example_runs_as_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = Path(__file__).parent.parent / "docs" / "projects-and-cli.md"
    text = page.read_text(encoding="utf-8")
    block = text.split("$ cat mixed.jsonl\n", 1)[1].split("```", 1)[0]
    given, shown = block.split("$ packflow run fraud-scorer --input mixed.jsonl\n")
    create_project("fraud-scorer", tmp_path, description="d", maintainers=["a@b.c"])
    (tmp_path / "mixed.jsonl").write_text(given, encoding="utf-8")
    assert main(["run", "fraud-scorer", "--input", "mixed.jsonl"]) == 1
    captured = capsys.readouterr()
    expected_out = [line for line in shown.splitlines() if line.startswith("{")]
    expected_err = [line for line in shown.splitlines() if not line.startswith("{")]
    assert [json.loads(line) for line in captured.out.splitlines()] == [
        json.loads(line) for line in expected_out
    ]
    assert captured.err.splitlines() == expected_err
    assert json.loads(expected_out[1])["error"]["index"] == 1  # not null: its position


def test_sigterm_reports_how_many_lines_were_written_like_ctrl_c(tmp_path: Path) -> None:
    with start_run(tmp_path, "--max-latency-ms", "1") as run:
        assert run.stdin is not None and run.stdout is not None and run.stderr is not None
        try:
            for x in range(2):
                run.stdin.write(json.dumps({"x": x}) + "\n")
                run.stdin.flush()
                read_line(run.stdout)
            run.send_signal(signal.SIGTERM)
            assert run.wait(timeout=30) == 143
            err = run.stderr.read()
            assert "packflow: terminated; 2 lines written of 2 read" in err
            assert "Traceback" not in err
        finally:
            run.kill()


def test_a_full_disk_names_the_output_and_the_lines_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([1, 2, 3]))
    assert main(["run", "demo", "--input", "in.jsonl", "--output", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert "packflow run: error: cannot write to /dev/full: No space left on device" in err
    assert "0 lines written" in err


class FillingFile:
    """A real file that runs out of space after ``room`` characters, mid-line."""

    def __init__(self, path: Path, room: int) -> None:
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.room = room

    def write(self, text: str) -> int:
        if len(text) > self.room:
            self.file.write(text[: self.room])  # part of the line reaches the disk
            self.file.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return self.file.fileno()

    def __enter__(self) -> FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def test_a_full_disk_never_leaves_a_partial_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import packflow.cli

    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([1, 2, 3, 4]))
    opened = packflow.cli._open

    def open_filling(path: Path, mode: str, option: str) -> object:
        if option == "--output":
            return FillingFile(path, room=len('{"y": 2}\n{"y": 4}\n{"y"'))
        return opened(path, mode, option)

    monkeypatch.setattr(packflow.cli, "_open", open_filling)
    code = main(["run", "demo", "--input", "in.jsonl", "--output", "out.jsonl", "-b", "1"])
    assert code == 1
    assert (tmp_path / "out.jsonl").read_text() == '{"y": 2}\n{"y": 4}\n'
    err = capsys.readouterr().err
    assert "cannot write to out.jsonl: No space left on device; 2 lines written" in err


ECHO = """
    from packflow import Pipeline, Records

    pipe = Pipeline("echo")

    @pipe.execute
    def echo(records: Records) -> Records:
        return records
"""


def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path: Path) -> None:
    write_project(tmp_path, ECHO)
    write_lines(tmp_path / "in.jsonl", [json.dumps({"x": n}) for n in range(50_000)])
    with subprocess.Popen(
        [sys.executable, "-m", "packflow", "run", "demo", "--input", "in.jsonl", "-b", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    ) as run:
        assert run.stdout is not None and run.stderr is not None
        try:
            assert json.loads(run.stdout.readline()) == {"x": 0}
            run.stdout.close()  # `| head -1`
            assert run.wait(timeout=60) == 1
            assert run.stderr.read() == b""  # no traceback, no "Exception ignored"
        finally:
            run.kill()


def test_a_systematic_failure_stops_after_the_first_records_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([None] * 400))
    assert main(["run", "demo", "--input", "in.jsonl", "-b", "10"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 50
    assert (
        "packflow: stopped after the first 50 records all failed with KeyError at stage "
        "'execute', a systematic failure (max_leading_errors=50); 50 lines written"
    ) in captured.err
    calls = (tmp_path / "demo" / "calls.txt").read_text().splitlines()
    # Isolating a failing batch costs a few calls per record; not for all 400 records.
    assert len(calls) < 400


def test_max_leading_errors_zero_runs_a_systematic_failure_to_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([None] * 60))
    assert main(["run", "demo", "--input", "in.jsonl", "--max-leading-errors", "0"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 60


def test_one_answered_record_first_means_failures_are_not_systematic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, COUNTING)
    write_lines(tmp_path / "in.jsonl", lines_of([1, *[None] * 60]))
    assert main(["run", "demo", "--input", "in.jsonl", "--max-leading-errors", "3"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 61
    assert "60 of 61 lines failed" in captured.err


def test_failures_of_different_kinds_are_not_systematic() -> None:
    pipe = Pipeline("mixed_failures")

    @pipe.execute
    def pick(records: Records) -> Records:
        for record in records:
            if record["kind"] == "key":
                raise KeyError("missing")
        return [{"ok": 1 / record["n"]} for record in records]

    lines = [json.dumps({"kind": "key" if n % 2 else "div", "n": 0}) for n in range(10)]
    written: list[str] = []
    summary = run_lines(pipe.build(), lines, written.append, max_leading_errors=3)
    assert (summary.written, summary.failed, summary.stopped) == (10, 10, None)


def test_the_command_line_default_is_the_library_default() -> None:
    import packflow.cli
    from packflow.runtime.jsonl import DEFAULT_MAX_LEADING_ERRORS

    assert packflow.cli.DEFAULT_MAX_LEADING_ERRORS == DEFAULT_MAX_LEADING_ERRORS
