"""Streaming (micro-batching single events) and per-record error isolation.

No assertion here depends on how fast the machine is: where latency matters, the source
waits for an answer (with a generous timeout) instead of the test timing anything.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import Pipeline, Records
from packflow.exceptions import InferenceBackendRuntimeError, StageError
from packflow.runtime.isolation import is_error_row

pytestmark = pytest.mark.timeout(60)


class Model:
    """Doubles ``x``; a batch holding a record with ``bad`` raises, as a model would."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            self.calls.append([r.get("x") for r in records])
            self.threads.add(threading.current_thread().name)
        for record in records:
            if record.get("bad"):
                raise ValueError(f"cannot score x={record['x']}")
        return [{"y": 2 * record["x"]} for record in records]


def doubler(model: Model) -> Pipeline:
    pipe = Pipeline("doubler")

    @pipe.execute
    def score(records: Records) -> Records:
        return model(records)

    return pipe


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def built(model: Model) -> Any:
    return doubler(model).build()


def events(n: int, bad: set[int] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [{"x": i, "bad": i in bad} for i in range(n)]


# -- on_error="row" on calls ---------------------------------------------------------------


@given(
    n=st.integers(1, 40),
    data=st.data(),
)
@settings(max_examples=60)
def test_any_set_of_bad_records_gives_exactly_those_error_rows(n: int, data: Any) -> None:
    bad = data.draw(st.sets(st.integers(0, n - 1)))
    model = Model()
    built = doubler(model).build()
    outputs = built(events(n, bad), on_error="row")
    assert len(outputs) == n
    for i, output in enumerate(outputs):
        if i in bad:
            assert is_error_row(output)
            assert output["error"] == {
                "type": "ValueError",
                "message": f"cannot score x={i}",
                "stage": "execute",
                "index": i,
            }
        else:
            assert output == {"y": 2 * i}
    k = len(bad)
    # The split finds k bad records of n in about 2·k·log2(n) + 1 calls.
    assert len(model.calls) <= max(1, 2 * k * math.ceil(math.log2(n)) + 1) if n > 1 else 1
    assert built.get_metrics().errors == k
    assert built.get_metrics().batch_size == n


def test_a_good_part_of_a_failing_batch_is_answered_once(model: Model, built: Any) -> None:
    built(events(8, {7}), on_error="row")
    ran = [x for call in model.calls for x in call]
    # The first half succeeded at the second attempt and is never run again.
    assert ran.count(0) == 2 and ran.count(3) == 2
    assert ran.count(7) <= 4


def test_on_error_raise_is_the_default_and_names_the_stage(built: Any) -> None:
    with pytest.raises(StageError) as caught:
        built(events(3, {1}))
    assert isinstance(caught.value.__cause__, ValueError)
    assert "execute" in str(caught.value)


def test_a_record_that_is_not_a_dict_gets_an_input_error_row(built: Any) -> None:
    outputs = built([{"x": 1, "bad": False}, 5], on_error="row")
    assert outputs[0] == {"y": 2}
    assert is_error_row(outputs[1])
    assert outputs[1]["error"]["index"] == 1


def test_a_misaligned_output_of_the_whole_batch_still_raises_with_on_error_row() -> None:
    pipe = Pipeline("drops")

    @pipe.execute
    def drop(records: Records) -> Records:
        return records[:-1]

    with pytest.raises(InferenceBackendRuntimeError, match="drop"):
        pipe([{"x": 1}, {"x": 2}], on_error="row")


def test_an_unknown_on_error_is_refused(built: Any) -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'row'"):
        built(events(1), on_error="skip")


# -- stream -------------------------------------------------------------------------------


@given(
    n=st.integers(0, 60),
    size=st.integers(1, 9),
    as_generator=st.booleans(),
    bad=st.sets(st.integers(0, 59), max_size=5),
)
@settings(max_examples=40)
def test_stream_gives_one_output_per_event_in_order(
    n: int, size: int, as_generator: bool, bad: set[int]
) -> None:
    model = Model()
    built = doubler(model).build()
    items = events(n, bad)
    source = iter(items) if as_generator else items
    outputs = list(built.stream(source, max_batch_size=size, on_error="row"))
    assert len(outputs) == n
    for i, output in enumerate(outputs):
        if i in bad:
            assert output["error"]["index"] == i  # counted from the start of the stream
        else:
            assert output == {"y": 2 * i}
    assert all(len(call) <= size for call in model.calls)


def test_stream_does_not_hold_a_trickle_back_waiting_for_a_full_batch(built: Any) -> None:
    answered = threading.Event()
    waited: list[bool] = []

    def trickle() -> Iterator[dict[str, Any]]:
        yield {"x": 1}
        # The next event is produced only once the first one was answered: a stream that
        # waited for 64 events would make this wait time out.
        waited.append(answered.wait(timeout=20))
        yield {"x": 2}

    outputs = []
    for output in built.stream(trickle(), max_batch_size=64, max_latency_ms=5):
        outputs.append(output)
        answered.set()
    assert outputs == [{"y": 2}, {"y": 4}]
    assert waited == [True]


def test_a_source_that_raises_is_reraised_after_every_event_read_is_answered(
    built: Any,
) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield from events(5)
        raise OSError("connection reset")

    outputs = []
    stream = built.stream(broken(), max_batch_size=2)
    with pytest.raises(OSError, match="connection reset") as caught:
        for output in stream:
            outputs.append(output)
    assert outputs == [{"y": 2 * i} for i in range(5)]
    assert (stream.received, stream.answered) == (5, 5)
    assert "every one of them was answered" in "".join(getattr(caught.value, "__notes__", []))


def test_stream_with_on_error_raise_raises_at_the_failing_batch(built: Any) -> None:
    stream = built.stream(events(6, {4}), max_batch_size=2)
    got = [next(stream), next(stream), next(stream), next(stream)]
    assert got == [{"y": 0}, {"y": 2}, {"y": 4}, {"y": 6}]
    with pytest.raises(StageError):
        next(stream)


def test_closing_a_stream_stops_reading_its_source(built: Any) -> None:
    read = []

    def endless() -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            read.append(i)
            yield {"x": i}
            i += 1

    with built.stream(endless(), max_batch_size=4) as stream:
        assert next(stream) == {"y": 0}
    before = len(read)
    threading.Event().wait(0.2)  # the reader must be stopped, not racing on
    assert len(read) <= before + 1
    assert before <= 4 * 6  # read ahead is bounded


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1"),
        ({"max_batch_size": 2.5}, "max_batch_size must be an integer >= 1"),
        ({"max_latency_ms": -1}, "max_latency_ms must be a number >= 0"),
        ({"max_latency_ms": float("nan")}, "max_latency_ms must be a number >= 0"),
        ({"on_error": "ignore"}, "on_error must be 'raise' or 'row'"),
    ],
)
def test_bad_batching_options_are_refused_by_name(
    built: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        built.stream([], **options)
    with pytest.raises(ValueError, match=message):
        built.batcher(**options)


def test_a_pipeline_streams_through_its_default_instance(model: Model) -> None:
    pipe = doubler(model)
    assert list(pipe.stream(events(3))) == [{"y": 0}, {"y": 2}, {"y": 4}]


# -- thread batcher -----------------------------------------------------------------------


def test_batcher_gives_each_thread_its_own_output_in_few_calls(model: Model, built: Any) -> None:
    with (
        built.batcher(max_batch_size=16, max_latency_ms=20) as batcher,
        ThreadPoolExecutor(8) as pool,
    ):
        futures = [pool.submit(lambda i=i: batcher.submit({"x": i}).result()) for i in range(200)]
        results = [f.result(timeout=30) for f in futures]
    assert results == [{"y": 2 * i} for i in range(200)]
    assert all(len(call) <= 16 for call in model.calls)
    assert len(model.calls) < 200


def test_batcher_gives_the_failing_caller_its_own_exception(built: Any) -> None:
    with built.batcher(max_batch_size=8, max_latency_ms=50) as batcher:
        futures = [batcher.submit(event) for event in events(6, {2})]
    assert [f.result(timeout=10) for i, f in enumerate(futures) if i != 2] == [
        {"y": 0},
        {"y": 2},
        {"y": 6},
        {"y": 8},
        {"y": 10},
    ]
    with pytest.raises(StageError) as caught:
        futures[2].result(timeout=10)
    assert "cannot score x=2" in str(caught.value.__cause__)


def test_batcher_with_on_error_row_answers_the_failing_caller_with_a_row(built: Any) -> None:
    with built.batcher(on_error="row") as batcher:
        future = batcher.submit({"x": 3, "bad": True})
    assert future.result(timeout=10)["error"]["message"] == "cannot score x=3"


def test_a_cancelled_submission_is_not_run_and_the_others_are(model: Model) -> None:
    release = threading.Event()
    pipe = Pipeline("gated")

    @pipe.execute
    def score(records: Records) -> Records:
        release.wait(timeout=20)
        return model(records)

    with pipe.build().batcher(max_batch_size=1, max_latency_ms=0) as batcher:
        first = batcher.submit({"x": 1})  # holds the worker until released
        second = batcher.submit({"x": 2})
        third = batcher.submit({"x": 3})
        assert second.cancel()
        release.set()
        assert third.result(timeout=20) == {"y": 6}
        assert first.result(timeout=20) == {"y": 2}
    assert second.cancelled()
    assert [x for call in model.calls for x in call] == [1, 3]


def test_close_flushes_what_is_pending_and_later_submits_are_refused(built: Any) -> None:
    batcher = built.batcher(max_batch_size=100, max_latency_ms=60_000)
    futures = [batcher.submit({"x": i}) for i in range(3)]
    batcher.close()  # does not wait a minute for the batch to fill
    assert [f.result(timeout=10) for f in futures] == [{"y": 0}, {"y": 2}, {"y": 4}]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit({"x": 9})


def batch_of(model: Model, x: int) -> int:
    """The size of the pipeline call that ran ``x``."""
    (size,) = [len(call) for call in model.calls if x in call]
    return size


def test_metrics_follow_the_caller_not_the_worker_thread(model: Model, built: Any) -> None:
    sizes: dict[int, int] = {}

    def call(i: int) -> None:
        batcher.submit({"x": i}).result(timeout=20)
        sizes[i] = built.get_metrics().batch_size

    with built.batcher(max_batch_size=4, max_latency_ms=200) as batcher:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sizes == {i: batch_of(model, i) for i in range(4)}


# -- asyncio batcher ----------------------------------------------------------------------


def test_async_batcher_serves_a_thousand_concurrent_submitters(model: Model, built: Any) -> None:
    async def main() -> list[Any]:
        async with built.async_batcher(max_batch_size=64, max_latency_ms=5) as batcher:
            return await asyncio.gather(*(batcher.submit({"x": i}) for i in range(1000)))

    assert asyncio.run(main()) == [{"y": 2 * i} for i in range(1000)]
    assert len(model.calls) <= 1000 // 64 + 20
    loop_thread = threading.current_thread().name
    assert loop_thread not in model.threads  # the pipeline ran off the event loop


def test_async_batcher_cancelling_one_caller_leaves_the_others(model: Model, built: Any) -> None:
    async def main() -> tuple[list[Any], bool]:
        async with built.async_batcher(max_batch_size=10, max_latency_ms=50) as batcher:
            tasks = [asyncio.create_task(batcher.submit({"x": i})) for i in range(5)]
            await asyncio.sleep(0)
            tasks[1].cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return results, tasks[1].cancelled()

    results, cancelled = asyncio.run(main())
    assert cancelled
    assert [r for i, r in enumerate(results) if i != 1] == [{"y": 0}, {"y": 4}, {"y": 6}, {"y": 8}]


def test_async_batcher_gives_the_failing_caller_its_own_exception(built: Any) -> None:
    async def main() -> list[Any]:
        async with built.async_batcher(max_batch_size=8, max_latency_ms=20) as batcher:
            submits = (batcher.submit(event) for event in events(4, {3}))
            return await asyncio.gather(*submits, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:3] == [{"y": 0}, {"y": 2}, {"y": 4}]
    assert isinstance(results[3], StageError)


def test_async_batcher_metrics_belong_to_each_task(model: Model, built: Any) -> None:
    async def one(batcher: Any, i: int) -> int:
        await batcher.submit({"x": i})
        return int(built.get_metrics().batch_size)

    async def main() -> list[int]:
        async with built.async_batcher(max_batch_size=3, max_latency_ms=100) as batcher:
            return await asyncio.gather(*(one(batcher, i) for i in range(6)))

    sizes = asyncio.run(main())
    assert sizes == [batch_of(model, i) for i in range(6)]


def test_async_batcher_is_bound_to_one_event_loop(built: Any) -> None:
    batcher = built.async_batcher()

    async def submit() -> Any:
        return await batcher.submit({"x": 1})

    assert asyncio.run(submit()) == {"y": 2}
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(submit())
