"""The consumer loop: read a batch, run it, write outputs and dead letters, acknowledge.

:func:`run_stream` is what ``packflow run --source`` does, as a library function. Each
batch goes through four steps, in this order, so that an input is acknowledged only
once what stands for it is written (at-least-once):

1. read up to ``max_batch_size`` messages (waiting at most ``max_latency_ms`` for the
   batch to fill once a first message arrived);
2. decode each payload as one JSON object and run the records through the pipeline in
   one call with ``on_error="row"`` semantics (a failing batch is split to find the
   records that fail);
3. write the outputs to the sink and the failures (a record that failed, a payload that
   is not a JSON object or is too large, an output that is not JSON) to the dead-letter
   destination, with the original payload and the error row; wait until the broker has
   them;
4. acknowledge the batch.

A crash between 3 and 4 means the batch is delivered again (to this consumer when it
restarts with the same name, or to whoever claims it): at most one batch of duplicates
per consumer. A broker that cannot be reached is retried with backoff, each outage
reported; a sink that refuses a write stops the loop with the batch unacknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from json import dumps as _dumps
from typing import Any, TypeVar

import attrs

from packflow.exceptions import StreamError, StreamUnavailableError
from packflow.runtime.contracts import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_LATENCY_MS,
    BatchOptions,
    Runner,
    check_positive_int,
)
from packflow.runtime.isolation import ErrorRow, OnError
from packflow.runtime.jsonl import parse_line, serialize
from packflow.streams.messages import DEFAULT_MAX_MESSAGE_BYTES, Message, Outgoing, Sink, Source

__all__ = ["DeadLetter", "StreamSummary", "run_stream"]

_T = TypeVar("_T")

#: How long a read blocks for a first message before the loop looks at its stop flag.
_POLL = 0.2
#: Backoff between attempts to reach a broker: first, factor, longest (seconds).
_BACKOFF = (0.1, 2.0, 5.0)
#: How many failures a summary keeps (the count is always exact).
KEPT_FAILURES = 10

_log = logging.getLogger("packflow.streams")


@attrs.frozen
class DeadLetter:
    """A message that was dead-lettered: its id and the error row written for it."""

    message_id: str
    error: ErrorRow

    def __str__(self) -> str:
        error = self.error
        first = error.message.strip().split("\n", 1)[0]
        return f"message {self.message_id}: {error.stage}: {error.type}: {first}"


@attrs.frozen
class StreamSummary:
    """What a stream run did so far, or in all once :func:`run_stream` returned."""

    #: Messages read from the source (redeliveries included).
    read: int = 0
    #: Outputs written to the sink.
    written: int = 0
    #: Messages written to the dead-letter destination.
    dead_lettered: int = 0
    #: Messages acknowledged (their outputs or dead letters written first).
    acknowledged: int = 0
    #: Why the run stopped (``"SIGTERM"``, ``"idle for 2s"``, ...); ``None`` while it runs.
    stopped: str | None = None
    #: Whether it stopped because of a failure (a refused write, ``max_errors``,
    #: ``on_error="raise"``): what makes ``packflow run`` exit with 1.
    failed: bool = False
    #: The first :data:`KEPT_FAILURES` dead letters, in order.
    first_failures: tuple[DeadLetter, ...] = ()


class _Abandoned(Exception):
    """Asked to stop while a broker could not be reached."""


def _decode(message: Message, max_bytes: int) -> dict[str, Any] | str:
    """The record a message holds, or why it holds none."""
    if message.problem is not None:
        return message.problem
    payload = message.payload
    if payload is None:
        return "the message has no payload"
    if len(payload) > max_bytes:
        return f"payload of {len(payload)} bytes is over the limit of {max_bytes} bytes"
    # Numbered past line 1: a byte order mark is as wrong in a message as mid-file.
    parsed = parse_line(payload, 2)
    if parsed is None:
        return "payload is empty (expected a JSON object)"
    return parsed


def _to_json(output: Any) -> str:
    """:func:`~packflow.runtime.jsonl.serialize`, with a fast path for native values.

    ``json.dumps`` succeeds only on values that ``serialize`` would hand it unchanged
    (builtins, and subclasses that JSON writes as their base), so the text is the same;
    anything else (numpy values, NaN, ...) goes through ``serialize``, which converts it
    or names the key path that cannot be written.
    """
    try:
        return _dumps(output, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return serialize(output)


class _Run:
    """The state of one :func:`run_stream` call."""

    def __init__(
        self,
        runner: Runner,
        source: Source,
        sink: Sink,
        dead_letter: Sink,
        *,
        size: int,
        latency: float,
        on_error: OnError,
        max_errors: int | None,
        max_message_bytes: int,
        idle_timeout: float | None,
        stop: threading.Event,
        report: Callable[[DeadLetter], None] | None,
        progress: Callable[[StreamSummary], None] | None,
        notify: Callable[[str], None],
    ) -> None:
        self.runner = runner
        self.source = source
        self.sink = sink
        self.dead_letter = dead_letter
        self.size = size
        self.latency = latency
        self.on_error = on_error
        self.max_errors = max_errors
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.stop = stop
        self.report = report
        self.progress = progress
        self.notify = notify
        self.summary = StreamSummary()
        self.failures: list[DeadLetter] = []

    def count(self, **changes: int) -> None:
        current = self.summary
        added = {name: getattr(current, name) + value for name, value in changes.items()}
        self.summary = attrs.evolve(current, **added)

    def retry(self, what: str, operation: Callable[[], _T]) -> _T:
        """``operation()``, retried with backoff while the broker cannot be reached."""
        delay, factor, longest = _BACKOFF
        down_since: float | None = None
        while True:
            try:
                result = operation()
            except StreamUnavailableError as exc:
                if self.stop.is_set():
                    raise _Abandoned(what) from exc
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                self.notify(
                    f"packflow: {what}: {exc}; retrying in {delay:.1f}s "
                    f"(unreachable for {now - down_since:.1f}s)"
                )
                self.stop.wait(delay)
                delay = min(delay * factor, longest)
                continue
            if down_since is not None:
                self.notify(
                    f"packflow: {what}: reachable again after {time.monotonic() - down_since:.1f}s"
                )
            return result

    def loop(self) -> None:
        idle_since = time.monotonic()
        while not self.stop.is_set():
            wait = _POLL
            if self.idle_timeout is not None:
                if not getattr(self.source, "assigned", True):
                    idle_since = time.monotonic()  # not consuming yet: not idle either
                idle = time.monotonic() - idle_since
                if idle >= self.idle_timeout:
                    self.summary = attrs.evolve(
                        self.summary, stopped=f"idle for {self.idle_timeout:g}s"
                    )
                    return
                wait = max(0.0, min(wait, self.idle_timeout - idle))
            try:
                batch = self.retry(
                    f"reading {self.source.url}",
                    lambda wait=wait: self.source.read(self.size, self.latency, wait),  # type: ignore[misc]
                )
            except _Abandoned:
                return
            if not batch:
                continue
            self.count(read=len(batch))
            if self.handle(batch):
                return
            idle_since = time.monotonic()  # idle counts from the end of the last batch

    def handle(self, batch: list[Message]) -> bool:
        """Run, write and acknowledge one batch; whether the run must stop."""
        first = self.summary.read - len(batch)
        items, failed = self.run(batch, first)
        keep = len(batch)
        stopped: str | None = None
        if failed and self.on_error == "raise":
            keep = failed[0][0]
            failed = failed[:1]
            stopped = f"message {batch[keep].id} failed (on_error='raise'); not acknowledged"
        elif failed and self.max_errors is not None:
            allowed = self.max_errors - self.summary.dead_lettered
            if len(failed) >= allowed:
                failed = failed[:allowed]
                keep = failed[-1][0] + 1
                stopped = (
                    f"{self.max_errors} dead-lettered messages (max_errors={self.max_errors})"
                )
        for at, error in failed:
            self.note_failure(batch[at].id, error)
        items = items[:keep]
        done = batch[:keep]
        try:
            self.write(items)
            if done:
                self.retry(f"acknowledging on {self.source.url}", lambda: self.source.ack(done))
        except _Abandoned as exc:
            self.summary = attrs.evolve(
                self.summary,
                stopped=f"asked to stop while {exc} failed; {len(done)} messages not "
                "acknowledged (they will be delivered again)",
            )
            return True
        self.count(acknowledged=len(done))
        if self.progress is not None:
            self.progress(self.summary)
        if stopped is not None:
            self.summary = attrs.evolve(self.summary, stopped=stopped, failed=True)
            return True
        return False

    def run(
        self, batch: list[Message], first: int
    ) -> tuple[list[Outgoing], list[tuple[int, ErrorRow]]]:
        """One outgoing item per message, in order, and the failures by position."""
        items: list[Outgoing | None] = [None] * len(batch)
        failed: list[tuple[int, ErrorRow]] = []
        records: list[dict[str, Any]] = []
        where: list[int] = []

        def dead(i: int, error: ErrorRow) -> None:
            items[i] = Outgoing(serialize(error.as_row()), batch[i], dead=True)
            failed.append((i, error))

        for i, message in enumerate(batch):
            decoded = _decode(message, self.max_message_bytes)
            if isinstance(decoded, str):
                dead(i, ErrorRow("InvalidMessage", decoded, "input", first + i))
            else:
                records.append(decoded)
                where.append(i)
        outputs = self.runner.run_rows(records) if records else []
        for i, output in zip(where, outputs, strict=True):
            error = ErrorRow.recognize(output)
            if error is not None:
                dead(i, attrs.evolve(error, index=first + i))  # counted in the run
                continue
            try:
                items[i] = Outgoing(_to_json(output), batch[i])
            except (TypeError, ValueError) as exc:
                dead(i, ErrorRow(type(exc).__name__, str(exc), "output", first + i))
        failed.sort(key=lambda failure: failure[0])
        return [item for item in items if item is not None], failed

    def note_failure(self, message_id: str, error: ErrorRow) -> None:
        failure = DeadLetter(message_id, error)
        if len(self.failures) < KEPT_FAILURES:
            self.failures.append(failure)
        if self.report is not None:
            self.report(failure)

    def write(self, items: Sequence[Outgoing]) -> None:
        if not items:
            return
        if self.dead_letter is self.sink:
            self.retry(f"writing to {self.sink.url}", lambda: self.sink.write(items))
            outputs = sum(1 for item in items if not item.dead)
        else:
            good = [item for item in items if not item.dead]
            bad = [item for item in items if item.dead]
            if good:
                self.retry(f"writing to {self.sink.url}", lambda: self.sink.write(good))
            if bad:
                self.retry(
                    f"writing to {self.dead_letter.url}", lambda: self.dead_letter.write(bad)
                )
            outputs = len(good)
        self.count(written=outputs, dead_lettered=len(items) - outputs)


def run_stream(
    runner: Runner,
    source: Source | str,
    sink: Sink | str,
    *,
    dead_letter: Sink | str | None = None,
    group: str = "packflow",
    consumer: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
    on_error: OnError = "row",
    max_errors: int | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
    report: Callable[[DeadLetter], None] | None = None,
    progress: Callable[[StreamSummary], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> StreamSummary:
    """Consume ``source`` through ``built`` into ``sink``, at least once, until stopped.

    Parameters
    ----------
    runner
        A built pipeline, or any :class:`~packflow.runtime.contracts.Runner` (a
        ``Pipeline``, a class backend).
    source, sink, dead_letter
        URLs (``redis://host:port/STREAM``, ``kafka://host:port[,host:port]/TOPIC``) or
        :class:`~packflow.streams.messages.Source` / ``Sink`` objects. Failures go to
        ``dead_letter``, by default the sink. What is opened from a URL is closed on
        return.
    group, consumer
        The consumer group, and this consumer's name in it (Redis: the consumer whose
        pending entries a restart takes back; Kafka: the ``client.id``). By default the
        host name and the process id.
    max_batch_size, max_latency_ms
        At most this many messages per pipeline call; once a first message arrived, the
        batch waits at most this long to fill.
    on_error
        ``"row"``: a failed message is dead-lettered and the run goes on. ``"raise"``:
        the first failed message stops the run, unacknowledged (the messages before it
        are written and acknowledged).
    max_errors
        Stop after this many dead-lettered messages (written and acknowledged).
    max_message_bytes
        A larger payload is dead-lettered without being decoded.
    idle_timeout
        Stop once no message came for this many seconds (``None``: run until stopped).
    stop
        Set it (from another thread, a signal handler) to finish and acknowledge the
        batch in flight, then return.
    report
        Called with each dead-lettered message.
    progress
        Called after each batch with the summary so far.
    notify
        Called with each line about a broker outage (default: the ``packflow.streams``
        logger, at warning level).

    Returns
    -------
    StreamSummary
        Counts, and why the run stopped.

    Raises
    ------
    SinkRefusedError
        When a sink refused a write (the batch is not acknowledged).
    StreamError
        When a URL is malformed or names no stream the broker knows.
    MissingExtraError
        When the broker's client library is not installed.
    InferenceBackendRuntimeError
        When the pipeline fails for a whole batch (an output that does not line up with
        its input), the batch unacknowledged.
    """
    options = BatchOptions(max_batch_size, max_latency_ms, on_error)
    if max_errors is not None:
        check_positive_int("max_errors", max_errors)
    check_positive_int("max_message_bytes", max_message_bytes)
    if idle_timeout is not None and not (
        isinstance(idle_timeout, (int, float)) and 0 <= idle_timeout < float("inf")
    ):
        raise ValueError(f"idle_timeout must be a number >= 0 or None, got {idle_timeout!r}")
    if not isinstance(runner, Runner):
        raise TypeError(
            f"run_stream runs a built pipeline (or a Runner), got {type(runner).__name__}"
        )
    from packflow.streams.connect import open_sink, open_source

    opened: list[Source | Sink] = []
    try:
        if isinstance(source, str):
            source = open_source(source, group=group, consumer=consumer)
            opened.append(source)
        if isinstance(sink, str):
            sink = open_sink(sink)
            opened.append(sink)
        if dead_letter is None:
            dead_letter = sink
        elif isinstance(dead_letter, str):
            dead_letter = open_sink(dead_letter)
            opened.append(dead_letter)
        run = _Run(
            runner,
            source,
            sink,
            dead_letter,
            size=options.max_batch_size,
            latency=options.latency_s,
            on_error=options.on_error,
            max_errors=max_errors,
            max_message_bytes=max_message_bytes,
            idle_timeout=idle_timeout,
            stop=stop if stop is not None else threading.Event(),
            report=report,
            progress=progress,
            notify=notify if notify is not None else _log.warning,
        )
        run.loop()
        summary = run.summary
        if summary.stopped is None:
            summary = attrs.evolve(summary, stopped="asked to stop")
        return attrs.evolve(summary, first_failures=tuple(run.failures))
    finally:
        for each in reversed(opened):
            _close(each)


def _close(closable: Source | Sink) -> None:
    try:
        closable.close()
    except StreamError as exc:
        _log.warning("closing %s: %s", closable.url, exc)
