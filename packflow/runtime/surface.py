"""The call surface, written once: what every runnable packflow object answers to.

:class:`Runtime` is the surface: ``__call__``, ``run_batch``, ``stream``, ``batcher``,
``async_batcher``, ``validate`` (and its 0.4.1 name ``check_io``), ``get_metrics``,
``ready`` and ``acall``, each written here once over ``self._runtime()``, the ready
instance that serves the calls, so that every runtime object is also a
:class:`~packflow.runtime.contracts.Runner`:

- a :class:`~packflow.runtime.BuiltPipeline` is its own ready instance, and overrides
  only the calls it implements (``__call__``, ``run_batch``, ``get_metrics``);
- the class front end's ``InferenceBackend`` returns the instance it built at
  construction;
- :class:`LazyDefault` adds the lazily built default instance that ``Pipeline`` and a
  composed pipeline use: built on first use, thread-safely, and dropped whenever the
  definition changes, so ``pipe(...)`` always runs the current definition. Instances
  already handed out by ``build()`` are never affected.

Nothing here knows how a batch is run: the streaming and batching classes run over the
:class:`~packflow.runtime.contracts.Runner` contract.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from packflow.exceptions import InferenceBackendRuntimeError, InferenceBackendValidationError
from packflow.outputs import find_invalid_value
from packflow.runtime.contracts import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS, BatchOptions
from packflow.runtime.isolation import is_not_a_record

if TYPE_CHECKING:
    from packflow.metrics import Metrics, RawMetrics
    from packflow.runtime.contracts import Instance
    from packflow.runtime.isolation import Mark, OnError
    from packflow.runtime.streaming import AsyncBatcher, Batcher, Stream

__all__ = ["LazyDefault", "Runtime"]

#: The kind of ready instance a :class:`LazyDefault` builds.
InstanceT = TypeVar("InstanceT", bound="Instance")


class Runtime(abc.ABC):
    """The call surface, delegated to ``self._runtime()``, a ready instance."""

    __slots__ = ()

    @abc.abstractmethod
    def _runtime(self) -> Instance:
        """The ready instance that serves the calls."""

    def _built_runtime(self) -> Instance | None:
        """The ready instance if there is one already, without building it."""
        return self._runtime()

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run one record (a dict, returns a dict) or a batch (a list, returns a list).

        See :meth:`packflow.BuiltPipeline.__call__`.
        """
        return self._runtime()(inputs, on_error=on_error)

    async def acall(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """``await pipe.acall(inputs)``: a call from async code.

        ``async def`` stages are awaited on the running loop, plain ones run in a worker
        thread; see :meth:`packflow.BuiltPipeline.acall`.
        """
        return await self._runtime().acall(inputs, on_error=on_error)

    def run_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        """Run a list of records; see :meth:`packflow.BuiltPipeline.run_batch`."""
        return self._runtime().run_batch(records, on_error=on_error)

    def run_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        """Run records isolating failures; see :meth:`packflow.BuiltPipeline.run_rows`."""
        return self._runtime().run_rows(records, first_index=first_index, mark=mark)

    def last_metrics(self) -> RawMetrics | None:
        """The raw metrics of this caller's last run (the :class:`Runner` contract)."""
        runtime = self._built_runtime()
        return None if runtime is None else runtime.last_metrics()

    def credit_metrics(self, raw: RawMetrics) -> None:
        """Make ``raw`` the current caller's last metrics (the :class:`Runner` contract)."""
        self._runtime().credit_metrics(raw)

    def stream(
        self,
        events: Iterable[Any],
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
        on_error: OnError = "raise",
    ) -> Stream:
        """Run single events in micro-batches; yield one output per event, in order.

        A batch is run when it holds ``max_batch_size`` events or when its oldest event
        has waited ``max_latency_ms``, so a slow source is never held back waiting for a
        full batch. A source that may block (anything but a list or tuple) is read by a
        background thread, at most a few batches ahead; a stream that is dropped before
        its end (``break``, ``itertools.islice``) stops that thread and closes the
        source.

        Parameters
        ----------
        events
            Any iterable of dicts: a list, a generator, lines parsed from stdin.
        max_batch_size
            The most events per pipeline call.
        max_latency_ms
            The longest an event waits for its batch to fill.
        on_error
            ``"raise"``: the first failure ends the stream by raising. ``"row"``: an
            event that fails gets an error row whose ``index`` is its position in the
            stream.

        Raises
        ------
        ValueError
            For a batch size below 1, a negative latency, or an unknown ``on_error``.

        Examples
        --------
        >>> for output in built.stream(events, max_batch_size=32):  # doctest: +SKIP
        ...     print(output)
        """
        from packflow.runtime.streaming import Stream

        options = BatchOptions(max_batch_size, max_latency_ms, on_error)
        return Stream(self._runtime(), events, options)

    def batcher(
        self,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
        on_error: OnError = "raise",
    ) -> Batcher:
        """A thread-safe batcher: ``submit(event)`` returns a future of its output.

        Events submitted by many threads are run together, one pipeline call per batch
        (flushed when full or after ``max_latency_ms``). Each caller gets its own output,
        or its own exception (``on_error="raise"``) or error row (``"row"``). Use it in a
        ``with`` block, or call ``close()``, so that pending events are run.
        """
        from packflow.runtime.streaming import Batcher

        return Batcher(self._runtime(), BatchOptions(max_batch_size, max_latency_ms, on_error))

    def async_batcher(
        self,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
        on_error: OnError = "raise",
    ) -> AsyncBatcher:
        """An asyncio batcher: ``await submit(event)`` returns the event's output.

        Like :meth:`batcher`, for coroutines: a pipeline with ``async def`` stages is
        awaited on the loop (plain stages in a worker thread); one without runs in a
        worker thread, off the event loop. Cancelling one caller does not affect the
        others. Use it in an ``async with`` block, or ``await aclose()``.
        """
        from packflow.runtime.streaming import AsyncBatcher

        options = BatchOptions(max_batch_size, max_latency_ms, on_error)
        return AsyncBatcher(self._runtime(), options)

    def validate(self, sample: Any, *, on_error: OnError = "raise") -> Any:
        """Run ``sample`` and check that the outputs are JSON-ready records.

        Returns the outputs, like a call.

        Raises
        ------
        InferenceBackendValidationError
            When an output row is not a dict, or holds a value JSON cannot represent; the
            message names the record index and the key path.
        """
        runtime = self._runtime()
        try:
            outputs = runtime(sample, on_error=on_error)
        except InferenceBackendRuntimeError as exc:
            if not is_not_a_record(exc):
                raise
            # As the original Packflow's validate(): an output row that is not a dict is a
            # validation failure (a plain call raises the InferenceBackendRuntimeError).
            raise InferenceBackendValidationError(str(exc), index=exc.index) from exc
        rows = [outputs] if isinstance(sample, dict) else outputs
        problem = find_invalid_value(rows)
        if problem is not None:
            index, path, reason = problem
            where = f" at {path}" if path else ""
            raise InferenceBackendValidationError(
                f"pipeline {runtime.name!r}: output record {index}{where}: {reason}",
                index=index,
                path=path,
            )
        return outputs

    def check_io(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """packflow 0.4.1's name for :meth:`validate` (which stays): same checks, same result.

        Calls ``self.validate``, so a class backend that overrides ``validate`` is
        honoured by both names.
        """
        return self.validate(inputs, on_error=on_error)

    def ready(self) -> bool:
        """Whether calls can be served (building the default instance if needed)."""
        return self._runtime().ready()

    def get_metrics(self) -> Metrics:
        """The metrics of the current caller's last call (batch size, ms per stage).

        Raises
        ------
        InferenceBackendRuntimeError
            When this caller has not completed a call yet.
        """
        runtime = self._built_runtime()
        if runtime is None:
            raise InferenceBackendRuntimeError(
                f"{_name(self)}: get_metrics(): no call has completed yet; call the pipeline first"
            )
        return runtime.get_metrics()


class LazyDefault(Runtime, Generic[InstanceT]):
    """A default instance built on first use (``pipe(...)``), rebuilt after changes.

    Subclasses define ``build()``; they call ``_init_default()`` in ``__init__`` and
    ``_invalidate()`` whenever their definition changes.
    """

    _default: InstanceT | None
    _lock: threading.Lock

    def _init_default(self) -> None:
        self._default = None
        self._lock = threading.Lock()

    @abc.abstractmethod
    def build(self, **overrides: Any) -> InstanceT:
        """A new, ready instance (config resolved, graph checked, initializers run)."""

    def _invalidate(self) -> None:
        with self._lock:
            self._default = None

    def _runtime(self) -> InstanceT:
        instance = self._default
        if instance is None:
            with self._lock:
                instance = self._default
                if instance is None:
                    instance = self._default = self.build()
        return instance

    def _built_runtime(self) -> InstanceT | None:
        return self._default

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run ``inputs`` through the default instance (built on first use).

        See :meth:`packflow.BuiltPipeline.__call__`.
        """
        instance = self._default
        if instance is None:
            instance = self._runtime()
        # Straight to run_batch for the common calls: as many frames as a call of the
        # built instance itself (whose __call__ does this dispatch).
        if on_error == "raise":
            kind = type(inputs)
            if kind is dict:
                return instance.run_batch([inputs])[0]
            if kind is list:
                return instance.run_batch(inputs)
        return instance(inputs, on_error=on_error)


def _name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return f"pipeline {name!r}" if isinstance(name, str) else type(obj).__name__
