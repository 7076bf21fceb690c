"""Micro-batching: single events in, one pipeline call per batch.

Three ways to feed single events to a built pipeline, all flushing a batch when it is
full (``max_batch_size``) or when its oldest event has waited ``max_latency_ms``, so a
trickle of events is never held back waiting for a full batch:

- :func:`stream` (``built.stream(events)``): one iterable of events in, one output per
  event out, in order. A source that may block (stdin, a socket, a generator that
  sleeps) is read by a background thread into a bounded buffer, so memory stays bounded
  on an unbounded source and the latency bound holds while the source is silent.
- :class:`Batcher` (``built.batcher()``): many threads ``submit(event)`` and each gets a
  :class:`concurrent.futures.Future` of its own output; one worker thread runs the
  batches.
- :class:`AsyncBatcher` (``built.async_batcher()``): ``await submit(event)`` from many
  asyncio tasks; the pipeline call runs in a worker thread, off the event loop.

The batchers always isolate failures per event (each caller gets its own output or its
own exception, see :mod:`packflow.runtime.isolation`): with ``on_error="raise"`` the
caller whose event failed gets the exception, with ``on_error="row"`` an error row.
After ``future.result()`` or ``await submit(...)``, ``get_metrics()`` in the caller's
thread or task describes the batch that served it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from packflow.runtime.isolation import OnError, check_on_error, error_row

if TYPE_CHECKING:
    # asyncio (with ssl and selectors) costs a fifth of `import packflow`: imported by the
    # async batcher when it starts, not by every import.
    import asyncio

    from packflow.metrics import RawMetrics
    from packflow.runtime.built import BuiltPipeline

__all__ = ["AsyncBatcher", "Batcher", "Stream", "check_batching"]

#: How many events a stream's reader may hold ahead of the pipeline, in batches.
_READ_AHEAD = 4
#: How many batches an async batcher may have handed to its worker at once.
_IN_FLIGHT = 2


def check_batching(max_batch_size: Any, max_latency_ms: Any) -> tuple[int, float]:
    """The batching options, checked; ``max_latency_ms`` in seconds.

    Raises
    ------
    ValueError
        When ``max_batch_size`` is not an integer of at least 1 or ``max_latency_ms`` is
        not a finite number of at least 0.
    """
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
    if (
        isinstance(max_latency_ms, bool)
        or not isinstance(max_latency_ms, (int, float))
        or not math.isfinite(max_latency_ms)
        or max_latency_ms < 0
    ):
        raise ValueError(f"max_latency_ms must be a number >= 0, got {max_latency_ms!r}")
    return max_batch_size, float(max_latency_ms) / 1000.0


class _BatchQueue:
    """Events waiting for a batch, shared by producers and the one consumer.

    ``take()`` returns the next batch: it waits for a first event, then until the batch
    is full, the oldest event has waited ``latency`` seconds, or the queue is closed.
    """

    def __init__(self, size: int, latency: float, capacity: int | None = None) -> None:
        self._size = size
        self._latency = latency
        self._capacity = capacity
        self._items: deque[tuple[float, Any]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False

    def put(self, item: Any) -> bool:
        """Add an item (waiting while the queue is at capacity); ``False`` once closed.

        Safe for any number of producers.
        """
        with self._cond:
            if self._capacity is not None:
                while len(self._items) >= self._capacity and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append((monotonic(), item))
            waiting = len(self._items)
            if waiting == 1 or waiting >= self._size:
                self._cond.notify_all()
            return True

    def put_alone(self, item: Any) -> bool:
        """:meth:`put` for a queue with one producer, taking the lock only when needed.

        ``deque.append`` is atomic, so the append takes no lock; the lock is taken to
        wake the consumer when the item is the first one or fills a batch (the only
        moments it may be waiting for, since with one producer the length grows one by
        one while the consumer waits), and to wait for room. The consumer checks the
        queue under the lock before it waits, so no wake-up is missed.
        """
        items = self._items
        if self._capacity is not None and len(items) >= self._capacity:
            with self._cond:
                while len(items) >= self._capacity and not self._closed:
                    self._cond.wait()
        if self._closed:
            return False
        items.append((monotonic(), item))
        waiting = len(items)
        if waiting == 1 or waiting == self._size:
            with self._cond:
                self._cond.notify_all()
        return True

    def close(self) -> None:
        """No more items; ``take()`` hands out what is left, then ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> list[Any] | None:
        """The next batch, or ``None`` when the queue is closed and empty."""
        with self._cond:
            items = self._items
            while not items:
                if self._closed:
                    return None
                self._cond.wait()
            if len(items) < self._size and not self._closed:
                deadline = items[0][0] + self._latency
                while len(items) < self._size and not self._closed:
                    remaining = deadline - monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            count = min(self._size, len(items))
            batch = [items.popleft()[1] for _ in range(count)]
            if self._capacity is not None:
                self._cond.notify_all()  # a producer may be waiting for room
            return batch


class Stream(Iterator[Any]):
    """The outputs of ``built.stream(events)``, one per event, in order.

    Iterate over it; ``received`` and ``answered`` count the events read from the source
    and the outputs handed out so far (after an interruption they say what was lost).
    ``close()`` (or leaving a ``with`` block) stops reading the source.

    A source that raises ends the stream: the events read before are answered first,
    then the source's exception is raised.
    """

    def __init__(
        self,
        built: BuiltPipeline,
        events: Iterable[Any],
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 10.0,
        on_error: OnError = "raise",
        passthrough: type | None = None,
    ) -> None:
        size, latency = check_batching(max_batch_size, max_latency_ms)
        self._on_error = check_on_error(on_error)
        self._built = built
        # Events of this type are handed back unchanged, in their place, without running
        # (``packflow run`` passes blank and bad lines through so that lines stay aligned);
        # error rows still count their position from the start of the stream.
        self._passthrough = passthrough
        self.received = 0
        self.answered = 0
        self._source_error: BaseException | None = None
        self._queue: _BatchQueue | None = None
        self._outputs: Iterator[Any]
        if isinstance(events, (list, tuple)):
            # In memory already: nothing can block, so no reader thread is needed.
            self._outputs = self._from_sequence(events, size)
        else:
            self._queue = _BatchQueue(size, latency, capacity=size * _READ_AHEAD)
            reader = threading.Thread(
                target=self._read, args=(iter(events), self._queue), daemon=True
            )
            reader.name = f"packflow-stream-{built.name}"
            reader.start()
            self._outputs = self._from_queue(self._queue)

    def _run(self, batch: list[Any], first: int) -> list[Any]:
        if self._passthrough is not None:
            return self._run_around(batch, first)
        return self._run_records(batch, first)

    def _run_around(self, batch: list[Any], first: int) -> list[Any]:
        """Run the events that are not passed through; the others stay as they are.

        Error rows keep counting from the start of the stream, passed events included.
        """
        kind = self._passthrough
        keep = [i for i, event in enumerate(batch) if type(event) is not kind]
        if len(keep) == len(batch):
            return self._run_records(batch, first)
        outputs = list(batch)
        if not keep:
            return outputs
        records = [batch[i] for i in keep]
        if self._on_error == "row":
            where = [first + i for i in keep]

            def mark(exc: BaseException, index: int, attempted: int | None) -> Any:
                # ``index`` counts within ``records``; report the stream position.
                return error_row(exc, where[index], attempted_index=attempted)

            results = self._built._run_rows(records, mark=mark)
        else:
            results = self._built.run_batch(records)
        for i, result in zip(keep, results, strict=True):
            outputs[i] = result
        return outputs

    def _run_records(self, batch: list[Any], first: int) -> list[Any]:
        if self._on_error == "row":
            return self._built._run_rows(batch, first_index=first)
        return self._built.run_batch(batch)

    def _from_sequence(self, events: list[Any] | tuple[Any, ...], size: int) -> Iterator[Any]:
        for start in range(0, len(events), size):
            batch = list(events[start : start + size])
            self.received += len(batch)
            yield from self._hand_out(self._run(batch, start))

    def _read(self, events: Iterator[Any], queue: _BatchQueue) -> None:
        try:
            put = queue.put_alone  # this thread is the only producer
            for event in events:
                if not put(event):
                    return
        except BaseException as exc:  # reported to the consumer after what was read
            self._source_error = exc
        finally:
            queue.close()

    def _from_queue(self, queue: _BatchQueue) -> Iterator[Any]:
        try:
            while True:
                batch = queue.take()
                if batch is None:
                    break
                first = self.received
                self.received += len(batch)
                yield from self._hand_out(self._run(batch, first))
        finally:
            queue.close()
        if self._source_error is not None:
            error = self._source_error
            self._source_error = None
            if hasattr(error, "add_note"):
                error.add_note(
                    f"packflow: the event source raised after {self.received} event(s); "
                    "every one of them was answered"
                )
            raise error

    def _hand_out(self, outputs: list[Any]) -> Iterator[Any]:
        for output in outputs:
            self.answered += 1
            yield output

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        return next(self._outputs)

    def close(self) -> None:
        """Stop reading the source (events still in the buffer are dropped)."""
        if self._queue is not None:
            self._queue.close()
        close = getattr(self._outputs, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Failed:
    """Stands in a batch's outputs for an event whose run raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _keep_error(exc: BaseException, index: int, attempted_index: int | None) -> Any:
    return _Failed(exc)


def _run_for_callers(built: BuiltPipeline, events: list[Any], on_error: OnError) -> list[Any]:
    """One call for a batch of callers' events: an output, error row or _Failed each."""
    if on_error == "row":
        return built._run_rows(events)
    return built._run_rows(events, mark=_keep_error)


class _Answer(Future[Any]):
    """A caller's future: its ``result()`` also credits the batch's metrics to the caller."""

    _built: BuiltPipeline
    _raw: RawMetrics | None = None

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        finally:
            raw = self._raw
            if raw is not None and self.done():
                self._built._credit_metrics(raw)


class Batcher:
    """Batches events submitted by many threads into one pipeline call per batch.

    Made by ``built.batcher(...)``. ``submit(event)`` returns a
    :class:`concurrent.futures.Future` of the event's own output (or its own exception,
    or its error row with ``on_error="row"``); ``close()``, or leaving a ``with`` block,
    runs what is pending and stops the worker thread. A cancelled future's event is not
    run; the other events of its batch are not affected.
    """

    def __init__(
        self,
        built: BuiltPipeline,
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 10.0,
        on_error: OnError = "raise",
    ) -> None:
        size, latency = check_batching(max_batch_size, max_latency_ms)
        self._on_error = check_on_error(on_error)
        self._built = built
        self._queue = _BatchQueue(size, latency)
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.name = f"packflow-batcher-{built.name}"
        self._worker.start()

    def submit(self, event: Any) -> Future[Any]:
        """Queue one event; the future resolves to its output.

        Raises
        ------
        RuntimeError
            When the batcher is closed.
        """
        answer = _Answer()
        answer._built = self._built
        if not self._queue.put((event, answer)):
            raise RuntimeError(f"batcher of pipeline {self._built.name!r} is closed")
        return answer

    def _work(self) -> None:
        while True:
            taken = self._queue.take()
            if taken is None:
                return
            live = [(e, answer) for e, answer in taken if answer.set_running_or_notify_cancel()]
            if live:
                self._serve(live)

    def _serve(self, live: list[tuple[Any, _Answer]]) -> None:
        try:
            outputs = _run_for_callers(self._built, [event for event, _ in live], self._on_error)
        except BaseException as exc:  # about the whole batch: every caller gets it
            for _, answer in live:
                answer.set_exception(exc)
            return
        raw = self._built._raw_metrics()
        for (_, answer), output in zip(live, outputs, strict=True):
            answer._raw = raw
            if type(output) is _Failed:
                answer.set_exception(output.error)
            else:
                answer.set_result(output)

    def close(self) -> None:
        """Run what is pending, then stop; later ``submit`` calls raise ``RuntimeError``."""
        self._queue.close()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncBatcher:
    """Batches events awaited by many asyncio tasks into one pipeline call per batch.

    Made by ``built.async_batcher(...)``. ``await submit(event)`` returns the event's
    own output (or raises its own exception; an error row with ``on_error="row"``). The
    pipeline runs in a worker thread, never on the event loop. Cancelling one caller
    drops its event if its batch has not started, and never affects the other callers.
    ``await aclose()``, or leaving an ``async with`` block, runs what is pending.
    """

    def __init__(
        self,
        built: BuiltPipeline,
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 10.0,
        on_error: OnError = "raise",
    ) -> None:
        self._size, self._latency = check_batching(max_batch_size, max_latency_ms)
        self._on_error = check_on_error(on_error)
        self._built = built
        self._pending: deque[tuple[float, Any, asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def _start(self) -> asyncio.AbstractEventLoop:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._wake = asyncio.Event()
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"packflow-async-{self._built.name}"
            )
            self._task = loop.create_task(self._collect())
        elif self._loop is not loop:
            raise RuntimeError(
                f"async batcher of pipeline {self._built.name!r} is bound to another event "
                "loop; make one batcher per loop"
            )
        return loop

    async def submit(self, event: Any) -> Any:
        """Queue one event and wait for its output.

        Raises
        ------
        RuntimeError
            When the batcher is closed, or used from another event loop than the first.
        Exception
            The event's own error, with ``on_error="raise"``.
        """
        if self._closed:
            raise RuntimeError(f"async batcher of pipeline {self._built.name!r} is closed")
        loop = self._start()
        answer: asyncio.Future[Any] = loop.create_future()
        pending = self._pending
        pending.append((loop.time(), event, answer))
        if len(pending) == 1 or len(pending) >= self._size:
            assert self._wake is not None
            self._wake.set()
        output, raw = await answer
        if raw is not None:
            self._built._credit_metrics(raw)
        if type(output) is _Failed:
            raise output.error
        return output

    async def _collect(self) -> None:
        import asyncio

        assert self._loop is not None and self._wake is not None
        loop, wake, pending = self._loop, self._wake, self._pending
        # Batches handed to the worker and not answered yet. Two may be in flight: while
        # the worker runs one, the loop answers the callers of the one before and
        # collects the next (the single worker thread keeps them in order).
        in_flight: deque[asyncio.Task[None]] = deque()
        while True:
            while not pending:
                if self._closed:
                    for task in in_flight:
                        await task
                    return
                wake.clear()
                await wake.wait()
            if len(pending) < self._size and not self._closed:
                deadline = pending[0][0] + self._latency
                while len(pending) < self._size and not self._closed:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wake.clear()
                    try:
                        await asyncio.wait_for(wake.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            count = min(self._size, len(pending))
            taken = [pending.popleft() for _ in range(count)]
            live = [(event, answer) for _, event, answer in taken if not answer.done()]
            if live:
                in_flight.append(loop.create_task(self._serve(loop, live)))
                if len(in_flight) >= _IN_FLIGHT:
                    await in_flight.popleft()
                while in_flight and in_flight[0].done():
                    in_flight.popleft()

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, live: list[tuple[Any, asyncio.Future[Any]]]
    ) -> None:
        events = [event for event, _ in live]

        def run() -> tuple[list[Any], RawMetrics | None]:
            outputs = _run_for_callers(self._built, events, self._on_error)
            return outputs, self._built._raw_metrics()

        try:
            outputs, raw = await loop.run_in_executor(self._executor, run)
        except Exception as exc:  # about the whole batch: every caller gets it
            for _, answer in live:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_, answer), output in zip(live, outputs, strict=True):
            if not answer.done():  # its caller may have been cancelled meanwhile
                answer.set_result((output, raw))

    async def aclose(self) -> None:
        """Run what is pending, then stop; later ``submit`` calls raise ``RuntimeError``."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncBatcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
