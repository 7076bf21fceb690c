"""OpenTelemetry spans of built pipelines (``pip install 'packflow[otel]'``).

:func:`enable_tracing` makes, for every call of a built pipeline, one span named
``packflow <pipeline>`` with a child span per stage (``packflow <pipeline> <stage>``),
attributes ``packflow.pipeline``, ``packflow.stage``, ``packflow.records`` and
``packflow.errors``, and one ``packflow.error_row`` event per error row. The call span is
a child of the span current in the calling thread (a server's request span, say).

The spans are made after the call from the timings packflow takes anyway, so the call
itself runs as before; they are recorded only when a tracer provider is configured
(``opentelemetry.trace.set_tracer_provider``, or ``tracer_provider=``); with none, the
API's default provider makes non-recording spans and nothing more is done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from packflow.metrics import RawMetrics
from packflow.observe import built_instance
from packflow.prebuilt.extras import import_extra
from packflow.runtime.built import BuiltPipeline
from packflow.runtime.isolation import ErrorRow

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["Tracing", "enable_tracing"]

_ERROR_ROW = "packflow.error_row"


def _otel() -> Any:
    return import_extra("opentelemetry.trace", "otel", "packflow.observe.enable_tracing")


def _error_of(output: Any, index: int) -> ErrorRow | None:
    row = ErrorRow.recognize(output)
    if row is not None:
        return row
    # A batcher with on_error="raise" keeps a failed event's exception in its place.
    error = getattr(output, "error", None)
    if isinstance(error, BaseException) and type(output) is not dict:
        return ErrorRow.from_exception(error, index)
    return None


class Tracing:
    """Makes the spans of every call of one built pipeline.

    Made by :func:`enable_tracing`; a :class:`packflow.metrics.CallObserver`.
    ``disable()`` stops it.
    """

    def __init__(self, built: BuiltPipeline, tracer_provider: TracerProvider | None) -> None:
        from packflow._version import package_version

        trace = _otel()
        self.built = built
        self.tracer_provider = tracer_provider
        self._trace = trace
        self._status = trace.Status
        self._error_code = trace.StatusCode.ERROR
        self._tracer = trace.get_tracer("packflow", package_version(), tracer_provider)
        self._name = f"packflow {built.name}"
        self._stages = tuple(
            (label, f"packflow {built.name} {label}") for label in built.step_labels
        )
        self._enabled = False

    def called(
        self, raw: RawMetrics, outputs: Sequence[Any], waits: Sequence[float] | None
    ) -> None:
        """Make the spans of a call that returned (error rows as events)."""
        self._spans(raw, outputs, None)

    def failed(self, raw: RawMetrics, error: BaseException, waits: Sequence[float] | None) -> None:
        """Make the spans of a call that raised (the error recorded on the call span)."""
        self._spans(raw, (), error)

    def _spans(self, raw: RawMetrics, outputs: Sequence[Any], error: BaseException | None) -> None:
        size, durations, total, errors = raw
        end = time.time_ns()
        start = end - int(total * 1e9)
        pipeline = self.built.name
        span: Span = self._tracer.start_span(
            self._name,
            start_time=start,
            attributes={
                "packflow.pipeline": pipeline,
                "packflow.records": size,
                "packflow.errors": errors,
            },
        )
        if not span.is_recording():  # no tracer provider: nothing more to do
            span.end(end_time=end)
            return
        context = self._trace.set_span_in_context(span)
        at = start
        for (label, name), seconds in zip(self._stages, durations, strict=False):
            stop = at + int(seconds * 1e9)
            self._stage(name, label, context, at, size).end(end_time=min(stop, end))
            at = stop
        if error is not None:
            done = len(durations)
            running = self._stages[done] if done < len(self._stages) else None
            # A span for the step that raised, when the error names the one that was
            # running (not an output that failed the check between two parts, say).
            if running is not None and getattr(error, "stage", None) in (None, running[0]):
                label, name = running
                stage = self._stage(name, label, context, min(at, end), size)
                stage.set_status(self._status(self._error_code, f"{type(error).__name__}"))
                stage.end(end_time=end)
            span.record_exception(error)
            span.set_status(self._status(self._error_code, f"{type(error).__name__}: {error}"))
        elif errors:
            for index, output in enumerate(outputs):
                row = _error_of(output, index)
                if row is not None:
                    span.add_event(
                        _ERROR_ROW,
                        {
                            "packflow.index": index if row.index is None else row.index,
                            "packflow.stage": row.stage,
                            "exception.type": row.type,
                            "exception.message": row.message,
                        },
                        timestamp=end,
                    )
        span.end(end_time=end)

    def _stage(self, name: str, label: str, context: Any, start: int, size: int) -> Span:
        span: Span = self._tracer.start_span(
            name,
            context=context,
            start_time=start,
            attributes={
                "packflow.pipeline": self.built.name,
                "packflow.stage": label,
                "packflow.records": size,
            },
        )
        return span

    @property
    def enabled(self) -> bool:
        """Whether calls are being traced."""
        return self._enabled

    def enable(self) -> Tracing:
        """Start (again) tracing the pipeline's calls."""
        if not self._enabled:
            self._enabled = True
            self.built.add_observer(self)
        return self

    def disable(self) -> None:
        """Stop tracing the pipeline's calls."""
        if self._enabled:
            self._enabled = False
            self.built.remove_observer(self)

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "disabled"
        return f"<Tracing {self.built.name!r} ({state})>"


def enable_tracing(built: Any, *, tracer_provider: TracerProvider | None = None) -> Tracing:
    """Turn OpenTelemetry spans on for a built pipeline; return its tracer.

    Every call of ``built`` from now on gets a span, with a child span per stage (see the
    module docstring). Calling it again for the same pipeline and provider returns the
    same :class:`Tracing`.

    Parameters
    ----------
    built
        A built pipeline (``pipe.build()``, ``packflow.load(...)``), a built
        composition, or a class backend instance.
    tracer_provider
        Where the spans go: the global provider unless given
        (``opentelemetry.trace.set_tracer_provider``); until one is set, spans are not
        recorded.

    Raises
    ------
    TypeError
        When ``built`` is not a built pipeline (an unbuilt ``Pipeline`` included).
    MissingExtraError
        When opentelemetry-api is not installed (``pip install 'packflow[otel]'``).
    """
    instance = built_instance(built, "enable_tracing")
    for observer in instance.observers:
        if isinstance(observer, Tracing) and observer.tracer_provider is tracer_provider:
            return observer
    return Tracing(instance, tracer_provider).enable()
