"""The run-time contracts: what the batchers, the stream and the engines run over.

Everything that runs a pipeline somewhere other than a plain call (``stream``, the thread
and asyncio batchers, ``packflow run``, the Ray engine, the coming server and message
stream consumers) is written against two small values of this module, never against
``BuiltPipeline``'s insides:

- :class:`Runner`: run a batch, run rows with per-record isolation, the metrics of the
  last call, and crediting metrics to a caller. A built pipeline is a ``Runner``; a
  wrapper around one (that passes some events through, say) is one too. This is the
  shape of Ray Serve's batch queue, which runs any ``list -> list`` function.
- :class:`BatchOptions`: the micro-batching options and their defaults, checked once.

A third small contract, the JSON Lines *engine*, lives with the protocol in
:mod:`packflow.runtime.jsonl`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from packflow.runtime.isolation import Mark, OnError, check_on_error

if TYPE_CHECKING:
    from packflow.metrics import Metrics, RawMetrics

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_LATENCY_MS",
    "AsyncRunner",
    "BatchOptions",
    "Instance",
    "Runner",
    "check_positive_int",
    "runner_name",
]

#: The most records per pipeline call, unless told otherwise.
DEFAULT_MAX_BATCH_SIZE = 64
#: The longest a record waits for its batch to fill, in milliseconds, unless told otherwise.
DEFAULT_MAX_LATENCY_MS = 10.0


@runtime_checkable
class Runner(Protocol):
    """What runs batches of records: a built pipeline, or a wrapper around one.

    ``run_batch`` and ``run_rows`` credit the metrics of the run to the calling thread or
    task; a batcher that runs a batch on behalf of other callers reads them with
    ``last_metrics()`` (in the thread that ran it) and hands them to each caller with
    ``credit_metrics(raw)`` (in the caller's thread or task).
    """

    def run_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        """A list of records in, one output per record out, in order; raise on failure."""
        ...

    def run_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        """Run ``records`` isolating the ones that fail (``on_error="row"``).

        ``first_index`` is the position of ``records[0]`` in the caller's numbering (a
        stream counts from its start); ``mark`` makes what stands in the output for a
        failed record (an error row by default, see :mod:`packflow.runtime.isolation`).
        """
        ...

    def last_metrics(self) -> RawMetrics | None:
        """The raw metrics of this thread's or task's last run, ``None`` before one."""
        ...

    def credit_metrics(self, raw: RawMetrics) -> None:
        """Make ``raw`` the current caller's last metrics (a batch run on its behalf)."""
        ...


@runtime_checkable
class AsyncRunner(Runner, Protocol):
    """A :class:`Runner` that can also be awaited: what the async batcher runs on the loop.

    ``is_async`` says whether it has ``async def`` steps (else the async batcher runs
    it in a worker thread); ``arun_rows`` is ``run_rows`` for async code, crediting the
    metrics of the run to the awaiting task.
    """

    is_async: bool

    async def arun_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        """``run_rows`` awaited on the running loop."""
        ...


@runtime_checkable
class Instance(Runner, Protocol):
    """A ready instance: a :class:`Runner` that can also be called and asked about.

    What the call surface (:class:`packflow.runtime.surface.Runtime`) delegates to: a
    built pipeline is one.
    """

    #: The pipeline's name.
    name: str

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """One record (a dict) or a batch (a list) in, its output(s) out."""
        ...

    async def acall(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """``__call__`` for async code: async stages awaited on the running loop."""
        ...

    def ready(self) -> bool:
        """Whether calls can be served."""
        ...

    def get_metrics(self) -> Metrics:
        """The metrics of the current caller's last completed call."""
        ...


def runner_name(runner: Runner) -> str:
    """What to call ``runner`` in messages and thread names: its ``name``, or its class."""
    name = getattr(runner, "name", None)
    return name if isinstance(name, str) else type(runner).__name__


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an integer of at least 1 (a ``bool`` is not).

    Raises
    ------
    ValueError
        Naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _batch_size(instance: Any, attribute: Any, value: Any) -> None:
    check_positive_int("max_batch_size", value)


def _latency(instance: Any, attribute: Any, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"max_latency_ms must be a number >= 0, got {value!r}")


def _on_error(instance: Any, attribute: Any, value: Any) -> None:
    check_on_error(value)


@attrs.frozen
class BatchOptions:
    """How single events are gathered into batches, and what a failing record does.

    A batch is run when it holds ``max_batch_size`` events or when its oldest event has
    waited ``max_latency_ms``. ``on_error`` is ``"raise"`` or ``"row"`` (see
    :mod:`packflow.runtime.isolation`).

    Raises
    ------
    ValueError
        For a batch size below 1 (or not an integer), a negative or non-finite latency,
        or an unknown ``on_error``.
    """

    max_batch_size: int = attrs.field(default=DEFAULT_MAX_BATCH_SIZE, validator=_batch_size)
    max_latency_ms: float = attrs.field(default=DEFAULT_MAX_LATENCY_MS, validator=_latency)
    on_error: OnError = attrs.field(default="raise", validator=_on_error)

    @property
    def latency_s(self) -> float:
        """``max_latency_ms`` in seconds."""
        return float(self.max_latency_ms) / 1000.0
