"""Async stages: ``async def`` anywhere, awaited by ``acall``, run to completion by plain calls."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import (
    InferenceBackend,
    InferenceBackendInitializationError,
    Pipeline,
    PipelineTypeError,
    Records,
    StageError,
    run_inline,
)
from packflow.exceptions import InferenceBackendRuntimeError, RunningLoopError, RuntimeTypeError
from packflow.testing import records

pytestmark = pytest.mark.timeout(60)


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


class Scorer(Protocol):
    async def score(self, x: int) -> int: ...


class Doubler:
    """An async client, as a model server's or an LLM API's would be."""

    def __init__(self) -> None:
        self.calls = 0

    async def score(self, x: int) -> int:
        self.calls += 1
        await asyncio.sleep(0)
        return 2 * x


def async_pipe(name: str = "scored") -> Pipeline:
    """Plain transform_inputs, async execute with an async initializer, plain outputs."""
    pipe = Pipeline(name)

    @pipe.initialize
    async def client() -> Scorer:
        await asyncio.sleep(0)
        return Doubler()

    @pipe.transform_inputs
    def pick(records: Records) -> list[int]:
        return [r["x"] for r in records]

    @pipe.execute
    async def score(xs: list[int], client: Scorer) -> list[int]:
        return list(await asyncio.gather(*(client.score(x) for x in xs)))

    @pipe.transform_outputs
    def wrap(ys: list[int]) -> Records:
        return [{"y": y} for y in ys]

    return pipe


# -- running: plain calls and acall -----------------------------------------------------


def test_a_plain_call_runs_async_stages_to_completion_when_no_loop_runs() -> None:
    built = async_pipe().build()
    assert built({"x": 2}) == {"y": 4}
    assert built([{"x": 1}, {"x": 3}]) == [{"y": 2}, {"y": 6}]
    assert built.is_async


def test_acall_awaits_async_stages_and_returns_what_a_plain_call_returns() -> None:
    built = async_pipe().build()
    assert run(built.acall({"x": 5})) == {"y": 10}
    assert run(built.acall([{"x": 1}, {"x": 2}])) == [{"y": 2}, {"y": 4}]


def test_an_async_initializer_runs_once_when_the_pipeline_is_built() -> None:
    built = async_pipe().build()
    client = built.resources["client"]
    assert isinstance(client, Doubler)
    built([{"x": 1}, {"x": 2}])
    assert client.calls == 2


def test_a_failing_async_initializer_is_an_initialization_error_naming_it() -> None:
    pipe = Pipeline("broken")

    @pipe.initialize
    async def client() -> int:
        raise ConnectionError("no server")

    @pipe.execute
    def echo(records: Records, client: int) -> Records:
        return records

    with pytest.raises(InferenceBackendInitializationError, match=r"`client`.*ConnectionError"):
        pipe.build()


def test_a_plain_call_inside_a_running_loop_raises_pointing_to_acall_before_any_stage_runs() -> (
    None
):
    ran: list[str] = []
    pipe = Pipeline("looped")

    @pipe.transform_inputs
    def first(records: Records) -> Records:
        ran.append("first")
        return records

    @pipe.execute
    async def echo(records: Records) -> Records:
        return records

    built = pipe.build()

    async def main() -> None:
        built({"x": 1})

    with pytest.raises(RunningLoopError, match=r"acall") as caught:
        asyncio.run(main())
    assert caught.value.function == "echo"
    assert ran == []


def test_async_stages_run_on_the_callers_loop_and_plain_ones_in_a_worker_thread() -> None:
    seen: dict[str, int] = {}
    pipe = Pipeline("threads")

    @pipe.transform_inputs
    def plain(records: Records) -> Records:
        seen["plain"] = threading.get_ident()
        return records

    @pipe.execute
    async def awaited(records: Records) -> Records:
        seen["async"] = threading.get_ident()
        return records

    built = pipe.build()

    async def main() -> int:
        await built.acall({"x": 1})
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert seen["async"] == loop_thread
    assert seen["plain"] != loop_thread


def test_a_plain_stage_marked_run_inline_runs_on_the_loop() -> None:
    seen: dict[str, int] = {}
    pipe = Pipeline("inline")

    @pipe.transform_outputs
    @run_inline
    def rename(outputs: Records) -> Records:
        seen["inline"] = threading.get_ident()
        return [{"z": o["x"]} for o in outputs]

    @pipe.execute
    async def echo(records: Records) -> Records:
        return records

    built = pipe.build()

    async def main() -> tuple[Any, int]:
        return await built.acall({"x": 1}), threading.get_ident()

    output, loop_thread = asyncio.run(main())
    assert output == {"z": 1}
    assert seen["inline"] == loop_thread
    assert rename([{"x": 2}]) == [{"z": 2}]  # still the plain function


def test_acall_runs_a_pipeline_without_async_stages_off_the_loop() -> None:
    seen: list[int] = []
    pipe = Pipeline("plain")

    @pipe.execute
    def echo(records: Records) -> Records:
        seen.append(threading.get_ident())
        return records

    async def main() -> tuple[Any, int]:
        return await pipe.acall({"x": 1}), threading.get_ident()

    output, loop_thread = asyncio.run(main())
    assert output == {"x": 1}
    assert seen and seen[0] != loop_thread
    assert not pipe.build().is_async


def test_acall_refuses_what_is_neither_a_dict_nor_a_list() -> None:
    with pytest.raises(InferenceBackendRuntimeError, match="got str"):
        run(async_pipe().build().acall("x"))


def test_runtime_checks_apply_to_async_stages() -> None:
    pipe = Pipeline("checked", runtime_checks=True)

    @pipe.execute
    async def lie(records: Records) -> list[dict[str, int]]:
        return [{"y": "not an int"} for _ in records]

    with pytest.raises(RuntimeTypeError, match="return value should be"):
        run(pipe.acall({"x": 1}))


# -- check() ---------------------------------------------------------------------------


def test_check_reads_async_def_returning_t_as_producing_t() -> None:
    pipe = Pipeline("mismatch")

    @pipe.transform_inputs
    async def numbers(records: Records) -> list[int]:
        return [1]

    @pipe.execute
    def needs_text(texts: list[str]) -> Records:
        return [{"t": t} for t in texts]

    with pytest.raises(PipelineTypeError) as caught:
        pipe.check()
    [problem] = caught.value.problems
    assert problem.function == "needs_text"
    assert "list[int]" in problem.actual


def test_check_reads_an_async_initializer_as_providing_its_declared_type() -> None:
    pipe = Pipeline("resource")

    @pipe.initialize
    async def model() -> int:
        return 1

    @pipe.execute
    def predict(records: Records, model: str) -> Records:
        return records

    with pytest.raises(PipelineTypeError) as caught:
        pipe.check()
    [problem] = caught.value.problems
    assert (problem.parameter, problem.actual) == ("model", "int")


def test_check_reports_an_async_generator_stage() -> None:
    pipe = Pipeline("yields")

    @pipe.execute
    async def one_by_one(records: Records) -> Any:
        for r in records:
            yield r

    with pytest.raises(PipelineTypeError, match="async generator") as caught:
        pipe.check()
    assert "return the values as a list" in caught.value.problems[0].hint


def test_check_reports_a_coroutine_declared_to_return_an_awaitable() -> None:
    pipe = Pipeline("twice")

    @pipe.execute
    async def nested(records: Records) -> Awaitable[Records]:
        raise AssertionError("not called")

    with pytest.raises(PipelineTypeError, match="awaitable") as caught:
        pipe.check()
    assert "return await" in caught.value.problems[0].hint


# -- composition, replace, fakes, the class front end -----------------------------------


def test_an_async_part_composes_with_a_plain_part() -> None:
    tail = Pipeline("tail")

    @tail.execute
    def plus_one(records: Records) -> Records:
        return [{"y": r["y"] + 1} for r in records]

    composed = async_pipe("head") >> tail
    assert composed({"x": 2}) == {"y": 5}
    assert run(composed.acall([{"x": 1}])) == [{"y": 3}]
    assert "head.execute" in composed.get_metrics().execution_times


def test_replace_swaps_in_an_async_stage_and_back() -> None:
    pipe = Pipeline("swap")

    @pipe.execute
    def plain(records: Records) -> Records:
        return [{"v": "plain"} for _ in records]

    async def awaited(records: Records) -> Records:
        return [{"v": "async"} for _ in records]

    swapped = pipe.replace(execute=awaited)
    assert swapped({"x": 1}) == {"v": "async"}
    assert run(swapped.acall({"x": 1})) == {"v": "async"}
    assert swapped.replace(execute=plain)({"x": 1}) == {"v": "plain"}


def test_a_fake_stands_in_for_an_async_initializer_which_does_not_run() -> None:
    pipe = Pipeline("faked")

    @pipe.initialize
    async def client() -> Scorer:
        raise AssertionError("the fake stands in for me")

    @pipe.execute
    async def score(records: Records, client: Scorer) -> Records:
        return [{"y": await client.score(r["x"])} for r in records]

    built = pipe.build(resources={"client": Doubler()})
    assert run(built.acall({"x": 4})) == {"y": 8}


def test_a_fake_that_does_not_fit_an_async_initializers_type_is_refused() -> None:
    pipe = Pipeline("faked")

    @pipe.initialize
    async def limit() -> int:
        return 1

    @pipe.execute
    def echo(records: Records, limit: int) -> Records:
        return records

    with pytest.raises(InferenceBackendInitializationError, match="resource 'limit'"):
        pipe.build(resources={"limit": "one"})


class AsyncBackend(InferenceBackend):
    async def initialize(self) -> None:
        await asyncio.sleep(0)
        self.offset = 10

    def transform_inputs(self, inputs: Records) -> list[int]:
        return [r["x"] for r in inputs]

    async def execute(self, inputs: list[int]) -> Records:
        await asyncio.sleep(0)
        return [{"y": x + self.offset} for x in inputs]


def test_a_class_backend_may_define_async_execute_and_initialize() -> None:
    backend = AsyncBackend()
    assert backend({"x": 1}) == {"y": 11}
    assert run(backend.acall([{"x": 2}])) == [{"y": 12}]


# -- packflow.testing ------------------------------------------------------------------


class Reading(TypedDict):
    sensor: str
    celsius: float


def reading_pipe() -> Pipeline:
    pipe = Pipeline("readings")

    @pipe.execute
    async def to_kelvin(readings: list[Reading]) -> Records:
        await asyncio.sleep(0)
        return [{"kelvin": r["celsius"] + 273.15} for r in readings]

    return pipe


@settings(max_examples=25)
@given(records(reading_pipe()))
def test_records_strategy_reads_an_async_first_stage(record: dict[str, Any]) -> None:
    assert isinstance(record["sensor"], str) and isinstance(record["celsius"], float)
    assert set(reading_pipe().build()(record)) == {"kelvin"}


def test_packflow_build_fixture_builds_an_async_pipeline_with_a_fake(
    packflow_build: Any,
) -> None:
    fake = Doubler()
    built = packflow_build(async_pipe(), resources={"client": fake})
    assert run(built.acall({"x": 3})) == {"y": 6}
    assert fake.calls == 1


# -- metrics per caller ------------------------------------------------------------------


def test_concurrent_acalls_never_mix_their_metrics() -> None:
    pipe = Pipeline("sizes")
    started = 0
    all_started = asyncio.Event()

    @pipe.execute
    async def wait_for_everyone(records: Records) -> Records:
        nonlocal started
        started += 1
        if started == 5:
            all_started.set()
        await all_started.wait()  # every call is in flight at once
        return records

    built = pipe.build()

    async def caller(size: int) -> int:
        await built.acall([{"x": i} for i in range(size)])
        await asyncio.sleep(0)
        return built.get_metrics().batch_size

    async def main() -> list[int]:
        return list(await asyncio.gather(*(caller(size) for size in (1, 2, 3, 4, 5))))

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_a_plain_call_credits_its_metrics_to_the_calling_thread() -> None:
    built = async_pipe().build()
    built([{"x": 1}, {"x": 2}, {"x": 3}])
    metrics = built.get_metrics()
    assert metrics.batch_size == 3
    assert set(metrics.execution_times) == {
        "preprocess",
        "transform_inputs",
        "execute",
        "transform_outputs",
    }


# -- on_error="row" ----------------------------------------------------------------------


def failing_pipe(attempts: list[int]) -> Pipeline:
    pipe = Pipeline("fails")

    @pipe.execute
    async def needs_x(records: Records) -> Records:
        attempts.append(len(records))
        await asyncio.sleep(0)
        return [{"y": r["x"]} for r in records]

    return pipe


def test_on_error_row_awaits_the_retries_that_isolate_a_bad_record() -> None:
    attempts: list[int] = []
    built = failing_pipe(attempts).build()
    batch: list[dict[str, Any]] = [{"x": i} for i in range(8)]
    batch[5] = {"z": 0}
    outputs = run(built.acall(batch, on_error="row"))
    assert [o.get("y") for o in outputs] == [0, 1, 2, 3, 4, None, 6, 7]
    assert outputs[5]["error"] == {
        "type": "KeyError",
        "message": "'x'",
        "stage": "execute",
        "index": 5,
    }
    assert attempts[0] == 8 and len(attempts) > 1
    with pytest.raises(InferenceBackendRuntimeError, match="no call has completed"):
        built.get_metrics()  # the metrics went to the awaiting task, not to this thread


FAILING = failing_pipe([]).build()


@settings(max_examples=40)
@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"x": st.integers()}),
            st.fixed_dictionaries({"z": st.integers()}),
            st.integers(),
        ),
        max_size=24,
    )
)
def test_acall_and_a_plain_call_give_the_same_outputs_and_error_rows(batch: list[Any]) -> None:
    expected = FAILING(batch, on_error="row")
    assert run(FAILING.acall(batch, on_error="row")) == expected
    assert len(expected) == len(batch)


def test_on_error_row_from_a_plain_call_of_an_async_pipeline() -> None:
    built = failing_pipe([]).build()
    outputs = built([{"x": 1}, "not a dict", {"z": 1}], on_error="row")
    assert outputs[0] == {"y": 1}
    assert [o["error"]["stage"] for o in outputs[1:]] == ["input", "execute"]
    assert built.get_metrics().errors == 2


# -- stream, the batchers, packflow run --------------------------------------------------


def test_stream_runs_an_async_pipeline() -> None:
    built = async_pipe().build()
    events = ({"x": i} for i in range(50))
    assert list(built.stream(events, max_batch_size=8)) == [{"y": 2 * i} for i in range(50)]


def test_the_thread_batcher_runs_an_async_pipeline_for_many_threads() -> None:
    built = async_pipe().build()
    results: dict[int, Any] = {}

    def submit(i: int) -> None:
        results[i] = batcher.submit({"x": i}).result(timeout=30)

    with built.batcher(max_batch_size=4, max_latency_ms=5) as batcher:
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == {i: {"y": 2 * i} for i in range(20)}


def test_the_async_batcher_awaits_an_async_pipeline_on_the_loop_without_a_thread_hop() -> None:
    threads: set[int] = set()
    pipe = Pipeline("on-loop")

    @pipe.execute
    async def echo(records: Records) -> Records:
        threads.add(threading.get_ident())
        return [{"y": r["x"]} for r in records]

    built = pipe.build()

    async def main() -> tuple[list[Any], int]:
        async with built.async_batcher(max_batch_size=16, max_latency_ms=5) as batcher:
            outputs = await asyncio.gather(*(batcher.submit({"x": i}) for i in range(100)))
        return list(outputs), threading.get_ident()

    outputs, loop_thread = asyncio.run(main())
    assert outputs == [{"y": i} for i in range(100)]
    assert threads == {loop_thread}


def test_the_async_batcher_gives_each_caller_its_own_error_or_error_row() -> None:
    built = failing_pipe([]).build()

    async def main(on_error: Any) -> list[Any]:
        async with built.async_batcher(max_batch_size=4, on_error=on_error) as batcher:
            calls = [batcher.submit({"x": 1}), batcher.submit({"z": 2}), batcher.submit({"x": 3})]
            return list(await asyncio.gather(*calls, return_exceptions=True))

    one, bad, three = asyncio.run(main("raise"))
    assert (one, three) == ({"y": 1}, {"y": 3})
    assert isinstance(bad, StageError)
    rows = asyncio.run(main("row"))
    assert rows[1]["error"]["type"] == "KeyError"


def test_the_async_batcher_credits_each_task_with_its_batch_metrics() -> None:
    built = async_pipe().build()

    async def main() -> list[int]:
        async with built.async_batcher(max_batch_size=3, max_latency_ms=50) as batcher:

            async def caller(i: int) -> int:
                await batcher.submit({"x": i})
                return built.get_metrics().batch_size

            return list(await asyncio.gather(*(caller(i) for i in range(3))))

    assert asyncio.run(main()) == [3, 3, 3]


def test_packflow_run_runs_an_async_pipeline(tmp_path: Path, isolated_cwd: Path) -> None:
    from packflow.cli import main
    from packflow.project import create_project

    folder = create_project("demo", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "inference.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            from packflow import Pipeline, Records

            pipe = Pipeline("demo")

            @pipe.execute
            async def double(records: Records) -> Records:
                await asyncio.sleep(0)
                return [{"y": r["x"] * 2} for r in records]
            """
        )
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"x": i}) + "\n" for i in range(5)))
    assert main(["run", "demo", "--input", "in.jsonl", "-o", "out.jsonl"]) == 0
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"y": 2 * i} for i in range(5)]


# -- cancellation --------------------------------------------------------------------------


def test_a_cancelled_acall_cancels_its_own_stage_call_and_nobody_elses() -> None:
    pipe = Pipeline("slow")
    cancelled: list[int] = []
    release = asyncio.Event()

    @pipe.execute
    async def wait(records: Records) -> Records:
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(records[0]["x"])
            raise
        return records

    built = pipe.build()

    async def main() -> list[Any]:
        tasks = [asyncio.create_task(built.acall({"x": i})) for i in range(3)]
        await asyncio.sleep(0.01)  # every call is waiting in its stage
        tasks[1].cancel()
        await asyncio.sleep(0)
        release.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    first, second, third = asyncio.run(main())
    assert (first, third) == ({"x": 0}, {"x": 2})
    assert isinstance(second, asyncio.CancelledError)
    assert cancelled == [1]


def cancelling_pipe(*, plain: bool) -> Pipeline:
    pipe = Pipeline("cancels")
    if plain:

        @pipe.execute
        def gives_up(records: Records) -> Records:
            raise asyncio.CancelledError("the client gave up")

    else:

        @pipe.execute
        async def gives_up_async(records: Records) -> Records:
            raise asyncio.CancelledError("the client gave up")

    return pipe


def test_a_stage_that_raises_cancelled_error_gives_acall_a_stage_error() -> None:
    with pytest.raises(StageError, match="CancelledError"):
        run(cancelling_pipe(plain=False).build().acall({"x": 1}))


@pytest.mark.parametrize("plain", [False, True], ids=["async-stage", "plain-stage"])
def test_a_stage_that_raises_cancelled_error_gives_the_async_batchers_callers_an_error(
    plain: bool,
) -> None:
    built = cancelling_pipe(plain=plain).build()

    async def main() -> list[Any]:
        async with built.async_batcher(max_batch_size=2, max_latency_ms=1) as batcher:
            calls = [batcher.submit({"x": i}) for i in range(2)]
            # A hang fails the test here rather than at the global timeout.
            return list(await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 20))

    errors = asyncio.run(main())
    assert len(errors) == 2
    for error in errors:
        assert isinstance(error, InferenceBackendRuntimeError)
        assert "CancelledError" in str(error)


def test_cancelling_one_caller_of_the_async_batcher_leaves_the_batch_running() -> None:
    pipe = Pipeline("shared")
    release = asyncio.Event()
    finished: list[int] = []

    @pipe.execute
    async def wait(records: Records) -> Records:
        await release.wait()
        finished.append(len(records))
        return records

    built = pipe.build()

    async def main() -> list[Any]:
        async with built.async_batcher(max_batch_size=3, max_latency_ms=1000) as batcher:
            tasks = [asyncio.create_task(batcher.submit({"x": i})) for i in range(3)]
            await asyncio.sleep(0.01)  # the batch of 3 is running
            tasks[0].cancel()
            await asyncio.sleep(0)
            release.set()
            return list(await asyncio.gather(*tasks, return_exceptions=True))

    first, second, third = asyncio.run(main())
    assert isinstance(first, asyncio.CancelledError)
    assert (second, third) == ({"x": 1}, {"x": 2})
    assert finished == [3]
