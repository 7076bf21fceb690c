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
  asyncio tasks; a pipeline with ``async def`` stages is awaited on the loop, any other
  runs in a worker thread, off the event loop.

The batchers always isolate failures per event (each caller gets its own output or its
own exception, see :mod:`packflow.runtime.isolation`): with ``on_error="raise"`` the
caller whose event failed gets the exception, with ``on_error="row"`` an error row.
After ``future.result()`` or ``await submit(...)``, ``get_metrics()`` in the caller's
thread or task describes the batch that served it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from packflow.exceptions import InferenceBackendRuntimeError
from packflow.metrics import QUEUE_WAITS, queue_waits_wanted, run_waited
from packflow.runtime.contracts import AsyncRunner, BatchOptions, Runner, runner_name
from packflow.runtime.isolation import OnError

if TYPE_CHECKING:
    # asyncio (with ssl and selectors) costs a fifth of `import packflow`: imported by the
    # async batcher when it starts, not by every import.
    import asyncio

    from packflow.metrics import RawMetrics

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
    options = BatchOptions(max_batch_size, max_latency_ms)
    return options.max_batch_size, options.latency_s


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

    def take(self, waits: list[float] | None = None) -> list[Any] | None:
        """The next batch, or ``None`` when the queue is closed and empty.

        ``waits``, when given, receives the seconds each item of the batch waited.
        """
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
            if waits is None:
                batch = [items.popleft()[1] for _ in range(count)]
            else:
                now = monotonic()
                taken = [items.popleft() for _ in range(count)]
                waits.extend(now - since for since, _ in taken)
                batch = [item for _, item in taken]
            if self._capacity is not None:
                self._cond.notify_all()  # a producer may be waiting for room
            return batch


class _Progress:
    """What a stream's consumer and its generators share (never the stream itself).

    The generators hold this, not the :class:`Stream`, so that a stream its consumer
    drops is freed at once and its finalizer stops the reader.
    """

    __slots__ = ("answered", "received", "source_error")

    def __init__(self) -> None:
        self.received = 0
        self.answered = 0
        self.source_error: BaseException | None = None


def _read(events: Iterator[Any], queue: _BatchQueue, progress: _Progress) -> None:
    """The reader thread: events into ``queue`` until the source ends or the queue closes.

    A source that is abandoned (the queue closed while it has more) is closed here, in
    the thread that iterates it, so that a generator's ``finally`` and ``with`` blocks
    run and its files are closed.
    """
    try:
        put = queue.put_alone  # this thread is the only producer
        for event in events:
            if not put(event):
                break
    except BaseException as exc:  # reported to the consumer after what was read
        progress.source_error = exc
    finally:
        queue.close()
        close = getattr(events, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # closing loses nothing if it fails
                close()


def _run(runner: Runner, on_error: OnError, batch: list[Any], first: int) -> list[Any]:
    if on_error == "row":
        return runner.run_rows(batch, first_index=first)
    return runner.run_batch(batch)


def _batches_of_sequence(
    runner: Runner, options: BatchOptions, events: list[Any] | tuple[Any, ...], progress: _Progress
) -> Iterator[list[Any]]:
    size, on_error = options.max_batch_size, options.on_error
    for start in range(0, len(events), size):
        batch = list(events[start : start + size])
        progress.received += len(batch)
        yield _run(runner, on_error, batch, start)


def _batches_of_queue(
    runner: Runner, options: BatchOptions, queue: _BatchQueue, progress: _Progress
) -> Iterator[list[Any]]:
    on_error = options.on_error
    try:
        while True:
            waits: list[float] | None = [] if queue_waits_wanted() else None
            batch = queue.take(waits)
            if batch is None:
                break
            first = progress.received
            progress.received += len(batch)
            if waits is None:
                yield _run(runner, on_error, batch, first)
            else:
                run = functools.partial(_run, runner, on_error, batch, first)
                yield run_waited(waits, run)
    finally:
        queue.close()
    if progress.source_error is not None:
        error = progress.source_error
        progress.source_error = None
        if hasattr(error, "add_note"):
            error.add_note(
                f"packflow: the event source raised after {progress.received} event(s); "
                "every one of them was answered"
            )
        raise error


def _outputs_of(batches: Iterator[list[Any]], progress: _Progress) -> Iterator[Any]:
    for outputs in batches:
        for output in outputs:
            progress.answered += 1
            yield output


class Stream(Iterator[Any]):
    """The outputs of ``built.stream(events)``, one per event, in order.

    Iterate over it (one output at a time), or over :meth:`batches` (one list of outputs
    per pipeline call); ``received`` and ``answered`` count the events read from the
    source and the outputs handed out so far (after an interruption they say what was
    lost). ``close()``, leaving a ``with`` block, or dropping the stream stops reading the
    source and closes it.

    A source that raises ends the stream: the events read before are answered first,
    then the source's exception is raised.
    """

    def __init__(
        self, runner: Runner, events: Iterable[Any], options: BatchOptions | None = None
    ) -> None:
        options = BatchOptions() if options is None else options
        self._progress = progress = _Progress()
        self._queue: _BatchQueue | None = None
        self._batches: Iterator[list[Any]]
        if isinstance(events, (list, tuple)):
            # In memory already: nothing can block, so no reader thread is needed.
            self._batches = _batches_of_sequence(runner, options, events, progress)
        else:
            size = options.max_batch_size
            self._queue = queue = _BatchQueue(size, options.latency_s, capacity=size * _READ_AHEAD)
            reader = threading.Thread(
                target=_read, args=(iter(events), queue, progress), daemon=True
            )
            reader.name = f"packflow-stream-{runner_name(runner)}"
            reader.start()
            # A stream its consumer drops (``break``, ``islice``) stops its reader.
            weakref.finalize(self, queue.close)
            self._batches = _batches_of_queue(runner, options, queue, progress)
        self._outputs: Iterator[Any] | None = None

    @property
    def received(self) -> int:
        """Events read from the source and handed to the pipeline so far."""
        return self._progress.received

    @property
    def answered(self) -> int:
        """Outputs handed out so far (by :meth:`batches`, every output of a batch)."""
        return self._progress.answered

    def batches(self) -> Iterator[list[Any]]:
        """The outputs one batch (one pipeline call) at a time, in order.

        Use either this or iteration over the stream, not both.
        """
        progress = self._progress
        for outputs in self._batches:
            progress.answered += len(outputs)
            yield outputs

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        outputs = self._outputs
        if outputs is None:
            outputs = self._outputs = _outputs_of(self._batches, self._progress)
        return next(outputs)

    def close(self) -> None:
        """Stop reading the source and close it (events still buffered are dropped)."""
        if self._queue is not None:
            self._queue.close()
        for generator in (self._outputs, self._batches):
            close = getattr(generator, "close", None)
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


def _run_for_callers(runner: Runner, events: list[Any], on_error: OnError) -> list[Any]:
    """One call for a batch of callers' events: an output, error row or _Failed each."""
    if on_error == "row":
        return runner.run_rows(events)
    return runner.run_rows(events, mark=_keep_error)


class _Answer(Future[Any]):
    """A caller's future: its ``result()`` also credits the batch's metrics to the caller."""

    _runner: Runner
    _raw: RawMetrics | None = None

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        finally:
            raw = self._raw
            if raw is not None and self.done():
                self._runner.credit_metrics(raw)


class Batcher:
    """Batches events submitted by many threads into one pipeline call per batch.

    Made by ``built.batcher(...)``. ``submit(event)`` returns a
    :class:`concurrent.futures.Future` of the event's own output (or its own exception,
    or its error row with ``on_error="row"``); ``close()``, or leaving a ``with`` block,
    runs what is pending and stops the worker thread. A cancelled future's event is not
    run; the other events of its batch are not affected.
    """

    def __init__(self, runner: Runner, options: BatchOptions | None = None) -> None:
        options = BatchOptions() if options is None else options
        self._on_error = options.on_error
        self._runner = runner
        self._name = runner_name(runner)
        self._queue = _BatchQueue(options.max_batch_size, options.latency_s)
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.name = f"packflow-batcher-{runner_name(runner)}"
        self._worker.start()

    def submit(self, event: Any) -> Future[Any]:
        """Queue one event; the future resolves to its output.

        Raises
        ------
        RuntimeError
            When the batcher is closed.
        """
        answer = _Answer()
        answer._runner = self._runner
        if not self._queue.put((event, answer)):
            raise RuntimeError(f"batcher of pipeline {self._name!r} is closed")
        return answer

    def _work(self) -> None:
        while True:
            waits: list[float] | None = [] if queue_waits_wanted() else None
            taken = self._queue.take(waits)
            if taken is None:
                return
            live = [(e, answer) for e, answer in taken if answer.set_running_or_notify_cancel()]
            if live:
                self._serve(live, waits)

    def _serve(self, live: list[tuple[Any, _Answer]], waits: list[float] | None = None) -> None:
        run = functools.partial(
            _run_for_callers, self._runner, [event for event, _ in live], self._on_error
        )
        try:
            outputs: list[Any] = run_waited(waits, run)
        except BaseException as exc:  # about the whole batch: every caller gets it
            for _, answer in live:
                answer.set_exception(exc)
            return
        raw = self._runner.last_metrics()
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
    own output (or raises its own exception; an error row with ``on_error="row"``). A
    runner with ``async def`` steps (``is_async``) is awaited on the event loop, with no
    thread hop (its plain stages run in worker threads, see :meth:`BuiltPipeline.acall`);
    any other runs in a worker thread, never on the event loop. Cancelling one caller
    drops its event if its batch has not started, and never affects the other callers:
    the batch's pipeline call is not cancelled. ``await aclose()``, or leaving an
    ``async with`` block, runs what is pending.
    """

    def __init__(self, runner: Runner, options: BatchOptions | None = None) -> None:
        options = BatchOptions() if options is None else options
        self._size, self._latency = options.max_batch_size, options.latency_s
        self._on_error = options.on_error
        self._runner = runner
        self._credit = runner.credit_metrics
        self._name = runner_name(runner)
        self._on_loop: AsyncRunner | None = (
            runner if isinstance(runner, AsyncRunner) and runner.is_async is True else None
        )
        # A list: the collector takes a batch as one slice (one loop thread, no lock).
        self._pending: list[_Pending] = []
        # What submit compares, once per event: the loop it runs on, as returned by
        # ``self._running()``, against the loop the batcher is bound to. Before the first
        # submit and after aclose() they differ whatever the loop, so that _start runs.
        self._running: Callable[[], object] = _unstarted
        self._loop: asyncio.AbstractEventLoop | None = None
        self._create_future: Callable[[], asyncio.Future[Any]] = _unstarted_future
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: How many submits ended without an output (see submit).
        self._given_up = 0

    def _start(self) -> None:
        """Bind to the running loop on first use; refuse a closed batcher or another loop."""
        import asyncio

        if self._closed:
            raise RuntimeError(f"async batcher of pipeline {self._name!r} is closed")
        loop = asyncio.get_running_loop()
        if self._task is not None:
            raise RuntimeError(
                f"async batcher of pipeline {self._name!r} is bound to another event "
                "loop; make one batcher per loop"
            )
        self._loop = loop
        self._running = asyncio.get_running_loop
        self._create_future = loop.create_future
        if self._on_loop is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"packflow-async-{self._name}"
            )
        self._task = loop.create_task(self._collect(loop))

    async def submit(self, event: Any) -> Any:
        """Queue one event and wait for its output.

        Raises
        ------
        RuntimeError
            When the batcher is closed, or used from another event loop than the first.
        Exception
            The event's own error, with ``on_error="raise"``.
        """
        if self._running() is not self._loop:
            self._start()
        answer = self._create_future()
        pending = self._pending
        pending.append((monotonic(), event, answer))
        waiting = len(pending)
        # The collector waits only while fewer than a batch are pending, and the list
        # grows one by one: the first event and the one that fills a batch wake it.
        if waiting == 1 or waiting == self._size:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        try:
            output, raw = await answer
        except BaseException:
            # Cancelled, or the whole batch failed: the collector then looks for
            # answers already given up on (it need not look otherwise).
            self._given_up += 1
            raise
        self._credit(raw)
        if type(output) is _Failed:
            raise output.error
        return output

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        """Until submit or aclose wakes the collector, or ``deadline`` (monotonic) passes."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = None
        if deadline is not None:
            # loop.time() is time.monotonic(), the clock of the arrival times.
            timer = loop.call_at(loop.time() + (deadline - monotonic()), _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> None:
        pending, size, latency = self._pending, self._size, self._latency
        # Batches being run and not answered yet. With a worker thread, two: while it
        # runs one, the loop answers the callers of the one before and collects the next
        # (the single thread keeps them in order). On the loop, more may await their I/O
        # together.
        limit = _IN_FLIGHT if self._on_loop is None else _IN_FLIGHT_ON_LOOP
        serve = self._serve_in_thread if self._on_loop is None else self._serve_on_loop
        in_flight: deque[asyncio.Task[None]] = deque()
        seen = 0
        while True:
            if not pending:
                if self._closed:
                    for task in in_flight:
                        await task
                    return
                await self._wait(loop, None)
                continue
            if len(pending) < size and not self._closed:
                deadline = pending[0][0] + latency
                if monotonic() < deadline:
                    await self._wait(loop, deadline)
                    if len(pending) < size and not self._closed and monotonic() < deadline:
                        continue  # woken by an event that did not fill the batch
            live = pending[:size]
            del pending[:size]
            waits = None
            if queue_waits_wanted():  # how long each event waited, for the metrics
                now = monotonic()  # the clock of the arrival times
                waits = [now - since for since, _, _ in live]
            if self._given_up != seen:
                # A cancelled caller's event is not run, if its batch has not started.
                seen = self._given_up
                live = [item for item in live if not item[2].done()]
            if live:
                in_flight.append(loop.create_task(serve(live, waits)))
                if len(in_flight) >= limit:
                    await in_flight.popleft()
                while in_flight and in_flight[0].done():
                    in_flight.popleft()

    async def _serve_on_loop(self, live: list[_Pending], waits: list[float] | None) -> None:
        runner = self._on_loop
        assert runner is not None
        events = [event for _, event, _ in live]
        if waits is not None:
            QUEUE_WAITS.set(waits)  # this task's own context: the call below reads it
        try:
            if self._on_error == "row":
                outputs = await runner.arun_rows(events)
            else:
                outputs = await runner.arun_rows(events, mark=_keep_error)
        except BaseException as exc:  # about the whole batch: every caller gets it
            _fail_all(live, exc, self._name)
            if _propagates(exc):
                raise
            return
        _answer_all(live, outputs, runner.last_metrics())

    async def _serve_in_thread(self, live: list[_Pending], waits: list[float] | None) -> None:
        import asyncio

        events = [event for _, event, _ in live]
        runner, on_error = self._runner, self._on_error

        def run() -> tuple[list[Any], RawMetrics | None]:
            call = functools.partial(_run_for_callers, runner, events, on_error)
            outputs: list[Any] = run_waited(waits, call)
            return outputs, runner.last_metrics()

        try:
            outputs, raw = await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except BaseException as exc:  # about the whole batch: every caller gets it
            _fail_all(live, exc, self._name)
            if _propagates(exc):
                raise
            return
        _answer_all(live, outputs, raw)

    async def aclose(self) -> None:
        """Run what is pending, then stop; later ``submit`` calls raise ``RuntimeError``."""
        self._closed = True
        self._loop = None  # the next submit goes through _start, which refuses it
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
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


#: An event waiting in the async batcher: when it arrived, the event, its caller's answer.
_Pending = tuple[float, Any, "asyncio.Future[Any]"]

#: How many batches an async batcher may run at once on the loop (an async pipeline).
_IN_FLIGHT_ON_LOOP = 16


def _unstarted() -> object:
    return _UNSTARTED


def _unstarted_future() -> asyncio.Future[Any]:
    raise AssertionError("unreachable: submit starts the batcher first")  # pragma: no cover


_UNSTARTED = object()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _propagates(exc: BaseException) -> bool:
    """Whether a batch's error must also end the batcher's own task: a cancellation of
    that task, ``KeyboardInterrupt``, ``SystemExit``; not a stage's own
    ``CancelledError``, which its callers got as an error."""
    if isinstance(exc, Exception):
        return False
    from packflow.runtime.aio import CancelledError, own_cancellation

    return not isinstance(exc, CancelledError) or own_cancellation()


def _answer_all(live: list[_Pending], outputs: list[Any], raw: RawMetrics | None) -> None:
    from asyncio import InvalidStateError

    for (_, _, answer), output in zip(live, outputs, strict=True):
        # A try costs nothing until it catches; contextlib.suppress would, per event.
        try:  # noqa: SIM105
            answer.set_result((output, raw))
        except InvalidStateError:  # its caller was cancelled meanwhile
            pass


def _fail_all(live: list[_Pending], exc: BaseException, name: str) -> None:
    """Give every caller of a batch the error about the whole batch.

    A ``CancelledError`` (a stage run in the worker thread raised one, or the batcher's
    own task was cancelled) would read as if each caller had been cancelled: they get an
    error that says what happened instead, never silence.
    """
    error: BaseException = exc
    if not isinstance(exc, Exception):
        error = InferenceBackendRuntimeError(
            f"async batcher of pipeline {name!r}: the batch was interrupted by "
            f"{type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
    for _, _, answer in live:
        if not answer.done():
            answer.set_exception(error)
