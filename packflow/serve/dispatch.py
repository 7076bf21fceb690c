"""Records of all requests into shared batches, run by one worker thread.

The server's batcher works on requests rather than single events: a request hands over
its whole list of records at once (one future per request, however many records), the
collector cuts batches of at most ``max_batch_size`` records across the requests in
arrival order (a large request is spread over several batches, small ones share one),
and each request's future resolves when all of its records are answered, with exactly
its own outputs in order.

A batch starts as soon as the pipeline is free: a lone request at low load runs at once,
and under load the records that arrive while a batch runs make up the next one, so the
pipeline never idles while records wait and batches grow with the load. Nothing waits
for a batch to fill while the pipeline could be running it, so ``max_latency_ms`` is
never reached with one worker thread (it bounds the wait; the wait here is zero).

It runs over the :class:`~packflow.runtime.contracts.Runner` contract: ``run_rows``
with a mark that keeps each failed record's exception, so that the server makes the
error row numbered from the start of the record's own request.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from packflow.metrics import QUEUE_WAITS, queue_waits_wanted, run_waited
from packflow.runtime.contracts import AsyncRunner, BatchOptions, Runner, runner_name
from packflow.runtime.isolation import ErrorRow

__all__ = ["Dispatcher", "Failed"]


class Failed:
    """Stands in a request's outputs for a record whose run raised ``error``."""

    __slots__ = ("attempted", "error")

    def __init__(self, error: BaseException, attempted: int | None) -> None:
        self.error = error
        #: The record's index in the batch that was attempted, when the error counts from
        #: there.
        self.attempted = attempted

    def row(self, index: int) -> ErrorRow:
        """The error row of the record at ``index`` of its request."""
        return ErrorRow.from_exception(self.error, index, attempted_index=self.attempted)


def _keep(exc: BaseException, index: int, attempted: int | None) -> Any:
    return Failed(exc, attempted)


class _Request:
    __slots__ = ("future", "left", "records", "results", "since", "taken")

    def __init__(
        self, records: list[Any], future: asyncio.Future[list[Any]], since: float
    ) -> None:
        self.since = since  # when it was queued (the event loop's clock)
        self.records = records
        self.future = future
        self.results: list[Any] = [None] * len(records)
        self.taken = 0  # records handed to a batch so far
        self.left = len(records)  # records not answered yet


class Dispatcher:
    """Runs the records of concurrent requests in shared batches, one batch at a time.

    ``await submit(records)`` returns one output per record, in order; a record that
    failed is a :class:`Failed` in its place. An error about a whole batch (the pipeline
    broke its contract) is a :class:`Failed` for every record of that batch.
    """

    def __init__(self, runner: Runner, options: BatchOptions) -> None:
        self._runner = runner
        self._size = options.max_batch_size
        self._name = runner_name(runner)
        self._pending: deque[_Request] = deque()
        #: Records submitted and not answered yet (what a bounded queue counts).
        self.queued = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, records: list[Any]) -> asyncio.Future[list[Any]]:
        """Queue ``records`` (a non-empty list of dicts); the future of their outputs.

        Raises
        ------
        RuntimeError
            When the dispatcher is closed.
        """
        if self._closed:
            raise RuntimeError(f"the server's batcher of {self._name!r} is closed")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"packflow-serve-{self._name}"
            )
            self._task = loop.create_task(self._collect())
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append(_Request(records, future, loop.time()))
        self.queued += len(records)
        assert self._wake is not None
        self._wake.set()
        return future

    def _take(self) -> tuple[list[Any], list[tuple[_Request, int, int]]]:
        """The next batch, and which records of which requests it holds."""
        batch: list[Any] = []
        parts: list[tuple[_Request, int, int]] = []
        pending, size = self._pending, self._size
        while pending and len(batch) < size:
            request = pending[0]
            if request.future.done():  # its caller went away: its records are not run
                pending.popleft()
                self.queued -= len(request.records) - request.taken
                continue
            start = request.taken
            count = min(size - len(batch), len(request.records) - start)
            if start == 0 and count == len(request.records):
                batch += request.records
            else:
                batch += request.records[start : start + count]
            parts.append((request, start, count))
            request.taken += count
            if request.taken == len(request.records):
                pending.popleft()
        return batch, parts

    def _run(self, batch: list[Any], waits: list[float] | None = None) -> list[Any]:
        try:
            run = functools.partial(self._runner.run_rows, batch, mark=_keep)
            outputs: list[Any] = run_waited(waits, run)
            return outputs
        except BaseException as exc:  # about the whole batch: every record gets it
            # BaseException too: a stage's CancelledError or SystemExit must not end the
            # collector and leave every waiting request unanswered.
            return [Failed(exc, None)] * len(batch)

    async def _arun(
        self, runner: AsyncRunner, batch: list[Any], waits: list[float] | None = None
    ) -> list[Any]:
        """An async pipeline, awaited on the loop: no thread hop."""
        # A stage's own CancelledError comes back as a StageError; one that reaches here
        # cancels the collector itself (the server is being torn down) and goes on up.
        token = QUEUE_WAITS.set(waits) if waits is not None else None
        try:
            return await runner.arun_rows(batch, mark=_keep)
        except Exception as exc:  # about the whole batch: every record gets it
            return [Failed(exc, None)] * len(batch)
        finally:
            if token is not None:
                QUEUE_WAITS.reset(token)

    async def _collect(self) -> None:
        assert self._wake is not None and self._executor is not None
        loop, wake, pending = asyncio.get_running_loop(), self._wake, self._pending
        while True:
            while not pending:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
            batch, parts = self._take()
            if not batch:
                continue
            waits = None
            if queue_waits_wanted():  # how long each record waited, for the metrics
                now = loop.time()
                waits = [now - r.since for r, _, count in parts for _ in range(count)]
            runner = self._runner
            if isinstance(runner, AsyncRunner) and runner.is_async:
                outputs = await self._arun(runner, batch, waits)
            else:
                outputs = await loop.run_in_executor(self._executor, self._run, batch, waits)
            position = 0
            for request, start, count in parts:
                request.results[start : start + count] = outputs[position : position + count]
                position += count
                request.left -= count
                self.queued -= count
                if request.left == 0 and not request.future.done():
                    request.future.set_result(request.results)

    async def aclose(self) -> None:
        """Answer what is queued, then stop; later ``submit`` calls raise ``RuntimeError``."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False)
