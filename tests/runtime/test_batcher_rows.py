"""The batchers' error rows: each caller's row is that of a call with its event alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from packflow import Pipeline, Records
from packflow.exceptions import RecordFieldError

pytestmark = pytest.mark.timeout(60)


def build_half() -> Any:
    pipe = Pipeline("half")

    @pipe.execute
    def half(records: Records) -> Records:
        for index, record in enumerate(records):
            if "x" not in record:
                # A packflow error naming the record, counted in the batch it ran in.
                raise RecordFieldError(f"record {index} has no field 'x'", index=index, field="x")
        return [{"y": record["x"] / 2} for record in records]

    return pipe.build()


EVENTS = [{"x": 2}, {"x": 4}, {"z": 0}, {"x": 6}, {"z": 1}]


def test_a_thread_batchers_error_row_is_that_of_a_call_with_the_event_alone() -> None:
    built = build_half()
    alone = [built(event, on_error="row") for event in EVENTS]
    with built.batcher(max_batch_size=8, max_latency_ms=200, on_error="row") as batcher:
        futures = [batcher.submit(event) for event in EVENTS]
        rows = [future.result(timeout=30) for future in futures]
    assert rows == alone
    assert rows[2]["error"]["index"] == rows[4]["error"]["index"] == 0
    assert rows[4]["error"]["message"] == "record 0 has no field 'x'"


def test_an_async_batchers_error_row_is_that_of_a_call_with_the_event_alone() -> None:
    built = build_half()
    alone = [built(event, on_error="row") for event in EVENTS]

    async def submit_all() -> list[Any]:
        async with built.async_batcher(
            max_batch_size=8, max_latency_ms=200, on_error="row"
        ) as batcher:
            return list(await asyncio.gather(*(batcher.submit(e) for e in EVENTS)))

    rows = asyncio.run(submit_all())
    assert rows == alone
    assert rows[4]["error"]["index"] == 0  # not 4, its place in an internal batch
    assert rows[4]["error"]["message"] == "record 0 has no field 'x'"


def test_an_async_pipelines_batcher_rows_are_those_of_a_call_with_the_event_alone() -> None:
    pipe = Pipeline("async_half")

    @pipe.execute
    async def half(records: Records) -> Records:
        for index, record in enumerate(records):
            if "x" not in record:
                raise RecordFieldError(f"record {index} has no field 'x'", index=index, field="x")
        return [{"y": record["x"] / 2} for record in records]

    built = pipe.build()

    async def submit_all() -> list[Any]:
        async with built.async_batcher(
            max_batch_size=8, max_latency_ms=200, on_error="row"
        ) as batcher:
            return list(await asyncio.gather(*(batcher.submit(e) for e in EVENTS)))

    rows = asyncio.run(submit_all())
    assert rows[:2] == [{"y": 1.0}, {"y": 2.0}]
    assert rows[4]["error"]["index"] == 0
    assert rows[4]["error"]["message"] == "record 0 has no field 'x'"
