"""The call surface, written once: what every runnable packflow object answers to.

A :class:`~packflow.runtime.BuiltPipeline` implements the calls. Everything else that
can be called delegates them to a built instance:

- :class:`Runtime` (this module's base) delegates ``__call__``, ``run_batch``,
  ``stream``, ``batcher``, ``async_batcher``, ``validate`` (and its 0.4.1 name
  ``check_io``), ``get_metrics`` and ``ready`` to whatever ``_runtime()`` returns:
  the class front end's ``InferenceBackend`` returns the instance it built at
  construction;
- :class:`LazyDefault` adds the lazily built default instance that ``Pipeline`` and a
  composed pipeline use: built on first use, thread-safely, and dropped whenever the
  definition changes, so ``pipe(...)`` always runs the current definition. Instances
  already handed out by ``build()`` are never affected.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from packflow.exceptions import InferenceBackendRuntimeError

if TYPE_CHECKING:
    from packflow.metrics import Metrics
    from packflow.runtime.built import BuiltPipeline
    from packflow.runtime.isolation import OnError
    from packflow.runtime.streaming import AsyncBatcher, Batcher, Stream

__all__ = ["LazyDefault", "Runtime"]


class Runtime(abc.ABC):
    """Delegates the call surface to ``self._runtime()``, a built instance."""

    __slots__ = ()

    @abc.abstractmethod
    def _runtime(self) -> BuiltPipeline:
        """The built instance that serves the calls."""

    def _built_runtime(self) -> BuiltPipeline | None:
        """The built instance if there is one already, without building it."""
        return self._runtime()

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run one record (a dict, returns a dict) or a batch (a list, returns a list).

        See :meth:`packflow.BuiltPipeline.__call__`.
        """
        return self._runtime()(inputs, on_error=on_error)

    def run_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        """Run a list of records; see :meth:`packflow.BuiltPipeline.run_batch`."""
        return self._runtime().run_batch(records, on_error=on_error)

    def stream(self, events: Iterable[Any], **options: Any) -> Stream:
        """Run single events in micro-batches; see :meth:`packflow.BuiltPipeline.stream`."""
        return self._runtime().stream(events, **options)

    def batcher(self, **options: Any) -> Batcher:
        """A thread-safe batcher; see :meth:`packflow.BuiltPipeline.batcher`."""
        return self._runtime().batcher(**options)

    def async_batcher(self, **options: Any) -> AsyncBatcher:
        """An asyncio batcher; see :meth:`packflow.BuiltPipeline.async_batcher`."""
        return self._runtime().async_batcher(**options)

    def validate(self, sample: Any, *, on_error: OnError = "raise") -> Any:
        """Run ``sample`` and check that the outputs are JSON-ready records.

        See :meth:`packflow.BuiltPipeline.validate`.
        """
        return self._runtime().validate(sample, on_error=on_error)

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


class LazyDefault(Runtime):
    """A default instance built on first use (``pipe(...)``), rebuilt after changes.

    Subclasses define ``build()``; they call ``_init_default()`` in ``__init__`` and
    ``_invalidate()`` whenever their definition changes.
    """

    _default: BuiltPipeline | None
    _lock: threading.Lock

    def _init_default(self) -> None:
        self._default = None
        self._lock = threading.Lock()

    @abc.abstractmethod
    def build(self, **overrides: Any) -> BuiltPipeline:
        """A new, ready instance (config resolved, graph checked, initializers run)."""

    def _invalidate(self) -> None:
        with self._lock:
            self._default = None

    def _runtime(self) -> BuiltPipeline:
        instance = self._default
        if instance is None:
            with self._lock:
                instance = self._default
                if instance is None:
                    instance = self._default = self.build()
        return instance

    def _built_runtime(self) -> BuiltPipeline | None:
        return self._default

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run ``inputs`` through the default instance (built on first use).

        See :meth:`packflow.BuiltPipeline.__call__`.
        """
        instance = self._default
        if instance is None:
            instance = self._runtime()
        return instance(inputs, on_error=on_error)


def _name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return f"pipeline {name!r}" if isinstance(name, str) else type(obj).__name__
