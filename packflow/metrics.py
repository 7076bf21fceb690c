"""Per-call metrics: what the caller's last call took, stage by stage.

Metrics follow the *caller*, not the thread: they are kept in a
:class:`contextvars.ContextVar` of each built instance. A call made directly records
its metrics in the caller's own context (each thread has its own, and each asyncio task
works on a copy of its creator's), so concurrent callers never see each other's figures.
When a batch is run on someone else's behalf (by a batcher's worker thread, say), the
batcher hands the batch's raw metrics back to every caller whose event was in it
(:meth:`MetricsRecorder.put`), in that caller's context, so ``get_metrics()`` after
``future.result()`` or ``await submit(...)`` describes the batch that served the caller.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Sequence
from typing import Any

import attrs

from packflow.exceptions import InferenceBackendRuntimeError

__all__ = ["Metrics", "MetricsRecorder", "RawMetrics"]

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
