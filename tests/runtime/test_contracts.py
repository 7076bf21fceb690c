"""The public run-time seams: the error row, the batching options, the Runner contract,
and the JSON Lines engine contract, each used the way a new engine or server would."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from packflow import Pipeline, Records
from packflow.exceptions import PreprocessorRuntimeError, StageError
from packflow.metrics import RawMetrics
from packflow.runtime.contracts import BatchOptions, Instance, Runner, check_positive_int
from packflow.runtime.isolation import ERROR_KEY, ErrorRow, Mark, error_row, is_error_row
from packflow.runtime.jsonl import BadLine, Engine, LocalEngine, run_around, run_lines
from packflow.runtime.streaming import AsyncBatcher, Batcher, Stream

pytestmark = pytest.mark.timeout(60)


def doubler() -> Pipeline:
    pipe = Pipeline("doubler")

    @pipe.execute
    def score(records: Records) -> Records:
        for record in records:
            if record.get("bad"):
                raise ValueError(f"cannot score x={record['x']}")
        return [{"y": 2 * record["x"]} for record in records]

    return pipe


# -- the error row -------------------------------------------------------------------------


def test_an_error_row_names_the_users_exception_for_a_failing_stage() -> None:
    cause = ValueError("boom")
    stage_error = StageError("raised", stage="execute", function="f", location="m.py:1")
    stage_error.__cause__ = cause
    row = ErrorRow.from_exception(stage_error, 3)
    assert row == ErrorRow("ValueError", "boom", "execute", 3)
    assert row.as_row() == {
        ERROR_KEY: {"type": "ValueError", "message": "boom", "stage": "execute", "index": 3}
    }


def test_an_error_row_counts_records_in_the_callers_numbering() -> None:
    exc = PreprocessorRuntimeError("record 0 has no field 'score'", index=0)
    row = ErrorRow.from_exception(exc, 7, attempted_index=0)
    assert row.message == "record 7 has no field 'score'"
    assert row.stage == "preprocess"


def test_an_error_row_with_a_line_number_keeps_it_and_is_recognised() -> None:
    row = ErrorRow("InvalidLine", "not valid JSON", "input", 2).with_line(3)
    as_dict = row.as_row()
    assert as_dict[ERROR_KEY]["line"] == 3
    assert ErrorRow.recognize(as_dict) == row
    assert is_error_row(as_dict)


@pytest.mark.parametrize(
    "output",
    [
        {"error": "a field the model returns"},
        {"error": {"type": "X", "message": "m", "stage": "s"}},
        {"error": {"type": "X", "message": "m", "stage": "s", "index": 0}, "y": 1},
        {"error": {"type": "X", "message": "m", "stage": "s", "index": 0, "extra": 1}},
        [],
        None,
    ],
)
def test_an_ordinary_output_is_never_taken_for_an_error_row(output: Any) -> None:
    assert ErrorRow.recognize(output) is None
    assert not is_error_row(output)


@given(
    type_=st.text(max_size=8),
    message=st.text(max_size=20),
    stage=st.text(max_size=8),
    index=st.none() | st.integers(0, 10**6),
    line=st.none() | st.integers(1, 10**6),
)
def test_recognising_an_error_row_inverts_making_it(
    type_: str, message: str, stage: str, index: int | None, line: int | None
) -> None:
    row = ErrorRow(type_, message, stage, index, line)
    assert ErrorRow.recognize(row.as_row()) == row
    assert ErrorRow.recognize(json.loads(json.dumps(row.as_row()))) == row


def test_error_row_the_function_is_the_values_row() -> None:
    exc = ValueError("x")
    assert error_row(exc, 1) == ErrorRow.from_exception(exc, 1).as_row()


# -- the batching options ------------------------------------------------------------------


def test_batch_options_have_one_set_of_defaults() -> None:
    options = BatchOptions()
    assert (options.max_batch_size, options.max_latency_ms, options.on_error) == (
        64,
        10.0,
        "raise",
    )
    assert BatchOptions(max_latency_ms=5).latency_s == 0.005


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch_size": True}, "max_batch_size must be an integer >= 1, got True"),
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1, got 0"),
        ({"max_latency_ms": float("inf")}, "max_latency_ms must be a number >= 0"),
        ({"max_latency_ms": "5"}, "max_latency_ms must be a number >= 0"),
        ({"on_error": "skip"}, "on_error must be 'raise' or 'row'"),
    ],
)
def test_bad_batch_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchOptions(**options)


def test_a_positive_integer_check_refuses_a_bool_and_names_the_option() -> None:
    assert check_positive_int("max_errors", 3) == 3
    with pytest.raises(ValueError, match="max_errors must be an integer >= 1, got False"):
        check_positive_int("max_errors", False)


# -- the Runner contract -------------------------------------------------------------------


class PlainRunner:
    """A Runner that is not a pipeline: the batchers must run over it unchanged."""

    name = "plain"

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self._last = threading.local()

    def run_batch(self, records: list[Any], *, on_error: str = "raise") -> list[Any]:
        self.batches.append(list(records))
        self._last.raw = (len(records), [], 0.0, 0)
        return [{"n": r["n"] + 1} for r in records]

    def run_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        outputs = []
        for i, record in enumerate(records):
            if record.get("bad"):
                exc = ValueError(f"bad {record['n']}")
                at = first_index + i
                outputs.append(error_row(exc, at) if mark is None else mark(exc, at, None))
            else:
                outputs.append({"n": record["n"] + 1})
        self.batches.append(list(records))
        self._last.raw = (len(records), [], 0.0, 0)
        return outputs

    def last_metrics(self) -> RawMetrics | None:
        return getattr(self._last, "raw", None)

    def credit_metrics(self, raw: RawMetrics) -> None:
        self._last.raw = raw


def test_built_pipelines_and_front_ends_are_runners() -> None:
    pipe = doubler()
    built = pipe.build()
    assert isinstance(built, Runner)
    assert isinstance(built, Instance)
    assert isinstance(pipe, Runner)
    assert isinstance(PlainRunner(), Runner)


def test_a_stream_runs_over_any_runner() -> None:
    runner = PlainRunner()
    events = iter([{"n": i} for i in range(10)])
    outputs = list(Stream(runner, events, BatchOptions(max_batch_size=4, on_error="row")))
    assert outputs == [{"n": i + 1} for i in range(10)]
    assert sum(map(len, runner.batches)) == 10


def test_a_stream_hands_out_whole_batches_when_asked() -> None:
    built = doubler().build()
    stream = Stream(built, [{"x": i} for i in range(5)], BatchOptions(max_batch_size=2))
    assert list(stream.batches()) == [[{"y": 0}, {"y": 2}], [{"y": 4}, {"y": 6}], [{"y": 8}]]
    assert stream.answered == stream.received == 5


def test_the_thread_batcher_runs_over_any_runner_and_credits_its_metrics() -> None:
    runner = PlainRunner()
    with Batcher(runner, BatchOptions(max_batch_size=8, max_latency_ms=1)) as batcher:
        futures = [batcher.submit({"n": i}) for i in range(5)]
        assert [f.result(timeout=10) for f in futures] == [{"n": i + 1} for i in range(5)]
    assert runner.last_metrics() is not None  # credited to this thread by result()


def test_the_async_batcher_runs_over_any_runner() -> None:
    runner = PlainRunner()

    async def main() -> list[Any]:
        async with AsyncBatcher(runner, BatchOptions(max_latency_ms=1, on_error="row")) as b:
            return list(
                await asyncio.gather(*(b.submit({"n": i, "bad": i == 2}) for i in range(4)))
            )

    outputs = asyncio.run(main())
    assert outputs[0] == {"n": 1}
    assert is_error_row(outputs[2])
    assert outputs[3] == {"n": 4}


# -- abandoned streams (issue 24, item 6) ----------------------------------------------------


def live_threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix) and t.is_alive() for t in threading.enumerate())


def test_an_abandoned_stream_stops_its_reader_and_closes_its_source() -> None:
    built = doubler().build()
    closed = threading.Event()

    def endless() -> Iterator[dict[str, Any]]:
        try:
            i = 0
            while True:
                yield {"x": i}
                i += 1
        finally:
            closed.set()

    for _ in range(5):
        for output in built.stream(endless(), max_batch_size=4):
            assert output == {"y": 0}
            break
    gc.collect()
    assert closed.wait(10), "the abandoned source was never closed"
    for _ in range(100):
        if live_threads("packflow-stream-doubler") == 0:
            break
        threading.Event().wait(0.05)
    assert live_threads("packflow-stream-doubler") == 0


def test_a_stream_cut_short_by_islice_is_closed_when_dropped() -> None:
    import itertools

    built = doubler().build()
    closed = threading.Event()

    def endless() -> Iterator[dict[str, Any]]:
        try:
            i = 0
            while True:
                yield {"x": i}
                i += 1
        finally:
            closed.set()

    assert list(itertools.islice(built.stream(endless()), 3)) == [{"y": 0}, {"y": 2}, {"y": 4}]
    gc.collect()
    assert closed.wait(10)


# -- the JSON Lines engine contract ------------------------------------------------------------


@attrs.frozen
class ListEngine:
    """An engine that runs each batch of events in a list, in process: the smallest engine."""

    runner: Runner
    seen: list[int] = attrs.field(factory=list)

    def batches(self, events: Iterator[Any], options: BatchOptions) -> Iterator[list[Any]]:
        first = 0
        batch: list[Any] = []
        for event in events:
            batch.append(event)
            if len(batch) == options.max_batch_size:
                self.seen.append(len(batch))
                yield run_around(self.runner, batch, first_index=first)
                first += len(batch)
                batch = []
        if batch:
            self.seen.append(len(batch))
            yield run_around(self.runner, batch, first_index=first)


LINES = ['{"x": 1}', "", "not json", '{"x": 2, "bad": true}', '{"x": 3}']


def run(target: Any, **options: Any) -> tuple[list[str], Any]:
    out: list[str] = []
    summary = run_lines(target, LINES, out.append, **options)
    return out, summary


def test_run_lines_writes_the_same_lines_through_any_engine() -> None:
    built = doubler().build()
    engine = ListEngine(built)
    assert isinstance(engine, Engine)
    local, local_summary = run(built, max_batch_size=2)
    other, other_summary = run(engine, max_batch_size=2)
    assert local == other
    assert local_summary == other_summary
    assert engine.seen == [2, 2]
    rows = [json.loads(line) if line else None for line in local]
    assert rows[0] == {"y": 2}
    assert rows[1] is None
    assert rows[2][ERROR_KEY]["type"] == "InvalidLine"
    assert rows[2][ERROR_KEY]["index"] == 1  # its position among the non-blank lines
    assert rows[3][ERROR_KEY] == {
        "type": "ValueError",
        "message": "cannot score x=2",
        "stage": "execute",
        "index": 2,
        "line": 4,
    }
    assert rows[4] == {"y": 6}
    assert local_summary.failed == 2


def test_the_local_engine_is_what_a_runner_gets() -> None:
    built = doubler().build()
    assert run(LocalEngine(built)) == run(built)


def test_run_around_passes_bad_lines_through_in_place() -> None:
    built = doubler().build()
    bad = BadLine(3, "not valid JSON", 1)
    outputs = run_around(built, [{"x": 1}, bad, {"x": 2, "bad": True}], first_index=10)
    assert outputs[0] == {"y": 2}
    assert outputs[1] is bad
    assert ErrorRow.recognize(outputs[2]) == ErrorRow(
        "ValueError", "cannot score x=2", "execute", 12
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nested too deeply"),
        ('{"x": 1e400}', "too large"),
        ('{"x": -1E+999}', "too large"),
        ('{"x": ' + "9" * 400 + ".5}", "too large"),
    ],
)
def test_a_line_the_parser_cannot_hold_is_an_invalid_line_and_the_rest_run(
    line: str, problem: str
) -> None:
    built = doubler().build()
    out: list[str] = []
    summary = run_lines(built, io.StringIO(f'{{"x": 1}}\n{line}\n{{"x": 2}}\n'), out.append)
    assert json.loads(out[0]) == {"y": 2}
    error = json.loads(out[1])[ERROR_KEY]
    assert (error["type"], error["stage"], error["line"]) == ("InvalidLine", "input", 2)
    assert problem in error["message"]
    assert json.loads(out[2]) == {"y": 4}
    assert summary.failed == 1


def test_a_large_but_finite_number_is_kept() -> None:
    pipe = Pipeline("echo")

    @pipe.execute
    def echo(records: Records) -> Records:
        return records

    out: list[str] = []
    run_lines(pipe.build(), ['{"x": 1e300, "n": ' + "9" * 400 + "}"], out.append)
    assert json.loads(out[0])["x"] == 1e300
    assert json.loads(out[0])["n"] == int("9" * 400)
