"""Per-call metrics: what the caller's last call took, stage by stage.

Metrics follow the *caller*, not the thread: they are kept in a
:class:`contextvars.ContextVar` of each built instance. A call made directly records
its metrics in the caller's own context (each thread has its own, and each asyncio task
works on a copy of its creator's), so concurrent callers never see each other's figures.
When a batch is run on someone else's behalf (by a batcher's worker thread, say), the
batcher hands the batch's raw metrics back to every caller whose event was in it
(:meth:`MetricsRecorder.put`), in that caller's context, so ``get_metrics()`` after
``future.result()`` or ``await submit(...)`` describes the batch that served the caller.

Observers (the Prometheus and OpenTelemetry exporters of :mod:`packflow.observe`, or your
own :class:`CallObserver`) are told about every call of a built pipeline they watch,
after it: ``built.add_observer(observer)``. A pipeline nobody watches pays one ``is not
None`` check per call for all of this (the same check its ``verbose`` log needs).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from packflow.exceptions import InferenceBackendRuntimeError

__all__ = [
    "QUEUE_WAITS",
    "CallObserver",
    "Metrics",
    "MetricsRecorder",
    "Observers",
    "RawMetrics",
    "queue_waits_wanted",
    "run_waited",
    "watch_queue_waits",
]

#: What the hot path stores: (batch size, seconds per step, total seconds, error rows).
RawMetrics = tuple[int, Sequence[float], float, int]

_FIELDS = ("batch_size", "execution_times", "total_execution_time", "errors")
_ids = itertools.count()


@attrs.frozen
class Metrics:
    """The metrics of one call.

    ``execution_times`` maps each step that exists (``preprocess``,
    ``transform_inputs``, ``execute``, ``transform_outputs``; prefixed by the part's name
    in a composition, e.g. ``"a.execute"``) to its duration in milliseconds;
    ``total_execution_time`` is the whole call in milliseconds. ``errors`` counts the
    error rows the call returned (``on_error="row"``); it is 0 otherwise. When a failing
    batch was split to isolate its bad records, ``execution_times`` add up the time of
    every attempt.
    """

    batch_size: int
    execution_times: dict[str, float]
    total_execution_time: float
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The metrics as plain JSON-ready data."""
        return {
            "batch_size": self.batch_size,
            "execution_times": dict(self.execution_times),
            "total_execution_time": self.total_execution_time,
            "errors": self.errors,
        }

    def __getitem__(self, key: str) -> Any:
        # The original Packflow returned a dict; keep ``metrics["batch_size"]`` working.
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)


class MetricsRecorder:
    """Keeps the raw timings of the caller's last call (see the module docstring).

    The hot path stores a plain tuple (cheap); the ``Metrics`` value is made only when
    someone asks for it.
    """

    __slots__ = ("_labels", "_var")

    def __init__(self, labels: Sequence[str]) -> None:
        self._labels = tuple(labels)
        self._var: contextvars.ContextVar[RawMetrics | None] = contextvars.ContextVar(
            f"packflow_metrics_{next(_ids)}", default=None
        )

    @property
    def var(self) -> contextvars.ContextVar[RawMetrics | None]:
        """The context variable holding the raw figures (set it to record a call)."""
        return self._var

    @property
    def labels(self) -> tuple[str, ...]:
        """The step labels, in the order the durations are given."""
        return self._labels

    def record(
        self, batch_size: int, durations: Sequence[float], total: float, errors: int = 0
    ) -> RawMetrics:
        """Store one call's figures in the current context; return them raw."""
        raw = (batch_size, durations, total, errors)
        self._var.set(raw)
        return raw

    def put(self, raw: RawMetrics) -> None:
        """Credit figures recorded elsewhere (another thread's run) to the current context."""
        self._var.set(raw)

    def raw(self) -> RawMetrics | None:
        """The current context's last figures, raw, or ``None`` when it made no call."""
        return self._var.get()

    def last(self) -> Metrics:
        """The metrics of the current caller's last completed call.

        Raises
        ------
        InferenceBackendRuntimeError
            When this caller (thread, or asyncio task) has not completed a call yet.
        """
        raw = self._var.get()
        if raw is None:
            raise InferenceBackendRuntimeError(
                "get_metrics(): no call has completed in this thread or task yet; "
                "call the pipeline first"
            )
        return self.to_metrics(raw)

    def to_metrics(self, raw: RawMetrics) -> Metrics:
        """Turn raw figures of this recorder's steps into a :class:`Metrics` value."""
        batch_size, durations, total, errors = raw
        times = {
            label: seconds * 1000.0
            for label, seconds in zip(self._labels, durations, strict=False)
        }
        return Metrics(
            batch_size=batch_size,
            execution_times=times,
            total_execution_time=total * 1000.0,
            errors=errors,
        )


#: The seconds each event of the batch about to run waited in a queue (a batcher's, a
#: stream's, a server's). Whoever runs a batch of queued events sets it around the call
#: (:func:`run_waited`); the observers of the pipeline that runs the batch receive it.
QUEUE_WAITS: contextvars.ContextVar[Sequence[float] | None] = contextvars.ContextVar(
    "packflow_queue_waits", default=None
)

# How many observers want queue waits: while none does, the batchers do not measure them.
_queue_watchers = 0


def watch_queue_waits(on: bool) -> None:
    """Count one more (``on``) or one fewer observer that wants queue waits measured."""
    global _queue_watchers
    _queue_watchers = max(0, _queue_watchers + (1 if on else -1))


def queue_waits_wanted() -> bool:
    """Whether some observer wants queue waits (the batchers measure them only then)."""
    return _queue_watchers > 0


def run_waited(waits: Sequence[float] | None, run: Callable[[], Any]) -> Any:
    """``run()`` with :data:`QUEUE_WAITS` set to ``waits`` (when it is not ``None``).

    For a batch of events that waited in a queue: the observers of the pipeline call
    made by ``run`` record how long each waited.
    """
    if waits is None:
        return run()
    token = QUEUE_WAITS.set(waits)
    try:
        return run()
    finally:
        QUEUE_WAITS.reset(token)


class CallObserver(Protocol):
    """Told about every call of the built pipelines it watches, after the call.

    Attach one with ``built.add_observer(observer)``; the observer is called in the
    thread that made the call, so it must be quick and thread-safe. ``raw`` holds the
    batch size, the seconds of each step (in the order of ``built.step_labels``), the
    seconds of the whole call and the number of error rows; ``waits`` the seconds each
    event waited in a queue before the call (``None`` for a direct call).
    """

    def called(
        self, raw: RawMetrics, outputs: Sequence[Any], waits: Sequence[float] | None
    ) -> None:
        """A call returned ``outputs`` (error rows among them when ``raw[3]`` > 0)."""

    def failed(self, raw: RawMetrics, error: BaseException, waits: Sequence[float] | None) -> None:
        """A call raised ``error``; ``raw`` has the steps that completed before it."""


class Observers:
    """What a built pipeline's hot path calls after a call: its observers and its log.

    Made again whenever an observer is added or removed, so the hot path reads one
    attribute and never a changing collection.
    """

    __slots__ = ("_log", "_observers", "_recorder")

    def __init__(
        self,
        observers: Sequence[CallObserver],
        recorder: MetricsRecorder,
        log: logging.Logger | None,
    ) -> None:
        self._observers = tuple(observers)
        self._recorder = recorder
        self._log = log

    def called(self, raw: RawMetrics, outputs: Sequence[Any]) -> None:
        """Tell the observers about a call that returned; log its metrics if verbose."""
        if self._log is not None:
            self._log.info("%s", self._recorder.to_metrics(raw).as_dict())
        if self._observers:
            waits = QUEUE_WAITS.get()
            if waits is not None:
                QUEUE_WAITS.set(None)  # a batch's waits are counted once
            for observer in self._observers:
                observer.called(raw, outputs, waits)

    def failed(self, raw: RawMetrics, error: BaseException) -> None:
        """Tell the observers about a call that raised."""
        if self._observers:
            waits = QUEUE_WAITS.get()
            if waits is not None:
                QUEUE_WAITS.set(None)
            for observer in self._observers:
                observer.failed(raw, error, waits)
