"""The built pipeline: config resolved, resources initialized, ready for calls.

A ``BuiltPipeline`` is what ``Pipeline.build()`` returns. It holds no global state: its
resources, metrics and config belong to it alone, so several instances (one per worker,
one per test) can live side by side.

Everything runs through one core, :meth:`BuiltPipeline.run_batch` (a list of records in,
a list of outputs out: the steps, the one-to-one length check, the row check, the
metrics); ``__call__`` only adds the dict-or-list dispatch, and ``validate``, streaming,
the batchers, ``packflow run`` and the Ray adapter all call ``run_batch``. A built
composition (``(a >> b).build()``) is the same class: its steps are the parts' steps one
after the other, labelled by part (``"a.execute"``), with the length and row checks at
every seam between parts.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from types import MappingProxyType
from typing import Any

from packflow.exceptions import (
    InferenceBackendLoadError,
    InferenceBackendRuntimeError,
    PackflowError,
    PreprocessorRuntimeError,
    RunningLoopError,
    RuntimeTypeError,
    StageError,
)
from packflow.graph import CheckedComposition, CheckedPipeline, Stage, StageGraph
from packflow.log import get_logger
from packflow.metrics import CallObserver, Metrics, MetricsRecorder, Observers, RawMetrics
from packflow.records import attrs_record_type, structure_records, unstructure_records
from packflow.runtime.isolation import (
    Mark,
    OnError,
    aisolate,
    check_on_error,
    error_row,
    is_error_row,
    is_record_error,
    isolate,
    mark_not_a_record,
)
from packflow.runtime.surface import Runtime

__all__ = ["BuiltPipeline"]

#: One step of a call: its metric label, the function, and the stage (``None`` for the
#: preprocessor).
Step = tuple[str, Callable[[Any], Any], Stage | None]

#: How the async path runs a step: on the loop, in a worker thread, or awaited.
_INLINE, _THREAD, _AWAIT = 0, 1, 2
#: One step of the async path: a :data:`Step` and how it runs.
AsyncStep = tuple[str, Callable[[Any], Any], Stage | None, int]

# Errors that already say where they happened (stage, or record and field); any other
# error a stage raises gets wrapped in a StageError. A plain call made inside a running
# loop is about the call, not about a stage.
_PASS_THROUGH = (StageError, RuntimeTypeError, PreprocessorRuntimeError, RunningLoopError)


def _bind(stage: Stage, available: Mapping[str, Any]) -> Callable[[Any], Any]:
    if not stage.injected:
        return stage.func
    return functools.partial(stage.func, **{name: available[name] for name in stage.injected})


class _Segment:
    """The steps of one part, and who answers for its output lining up with its input."""

    __slots__ = ("last", "part", "pipeline", "steps")

    def __init__(
        self, steps: tuple[Step, ...], last: Stage, pipeline: str, part: str | None
    ) -> None:
        self.steps = steps
        self.last = last
        self.pipeline = pipeline
        self.part = part

    def relabelled(self, part: str) -> _Segment:
        steps = tuple((f"{part}.{label}", fn, stage) for label, fn, stage in self.steps)
        return _Segment(steps, self.last, self.pipeline, part)

    @property
    def last_label(self) -> str:
        kind = self.last.kind.value
        return f"{self.part}.{kind}" if self.part else kind


class BuiltPipeline(Runtime):
    """A ready pipeline instance: call it with one record (a dict) or a list of them.

    Made by :meth:`packflow.Pipeline.build` (and by ``build()`` of a composition); not
    meant to be constructed by hand.

    Attributes
    ----------
    name
        The pipeline's name.
    config
        The resolved config; for a composition, a read-only mapping of each part's
        name to its config.
    resources
        What the initializers returned (or the fakes given to ``build(resources=...)``),
        by name; part-qualified (``"a.model"``) for a composition.
    graph
        The stage graph of a single pipeline; ``None`` for a composition (see
        ``parts``).
    parts
        For a composition, each part's own built instance by part name; empty otherwise.
    is_async
        Whether some stage is ``async def`` (see :meth:`acall`).
    """

    def __init__(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any],
        *,
        logger: logging.Logger | None = None,
        runtime_checks: bool = False,
    ) -> None:
        self._checked: CheckedPipeline | CheckedComposition = checked
        self.name: str = checked.graph.name
        self.graph: StageGraph | None = checked.graph
        self.config: Any = checked.config
        self.logger: logging.Logger = logger or get_logger(checked.graph.name)
        self.resources: Mapping[str, Any] = MappingProxyType(dict(resources))
        self.report: Any = checked.report
        self.parts: Mapping[str, BuiltPipeline] = MappingProxyType({})
        available = {"config": self.config, "logger": self.logger, **self.resources}
        steps: list[Step] = [("preprocess", checked.preprocessor, None)]
        stages = checked.graph.stages
        for position, stage in enumerate(stages):
            fn = _adapt(
                _bind(stage, available),
                stage,
                checked,
                first=position == 0,
                last=position == len(stages) - 1,
                runtime_checks=runtime_checks,
            )
            steps.append((stage.kind.value, fn, stage))
        self._set_segments((_Segment(tuple(steps), stages[-1], self.name, None),))
        self._verbose = bool(getattr(self.config, "verbose", False))
        self._output_keys: tuple[str, ...] = tuple(getattr(self.config, "output_keys", ()))
        self._observers_lock = threading.Lock()
        self._set_observers(())

    @classmethod
    def composed(
        cls,
        name: str,
        parts: Sequence[tuple[str, BuiltPipeline]],
        *,
        checked: CheckedComposition,
        logger: logging.Logger | None = None,
    ) -> BuiltPipeline:
        """A composition's instance: the parts' steps one after the other, by part.

        ``parts`` pairs each part's name with its own built instance; ``checked`` is the
        composition's check. What ``ComposedPipeline.build()`` returns.
        """
        self = cls.__new__(cls)
        self._checked = checked
        self.name = name
        self.graph = None
        self.parts = MappingProxyType(dict(parts))
        self.config = MappingProxyType({part: built.config for part, built in parts})
        self.resources = MappingProxyType(
            {
                f"{part}.{resource}": value
                for part, built in parts
                for resource, value in built.resources.items()
            }
        )
        self.report = None
        self.logger = logger or get_logger(name)
        # Compositions are flattened when they are defined, so every part is one pipeline.
        self._set_segments(
            tuple(s.relabelled(part) for part, built in parts for s in built._segments)
        )
        self._verbose = any(built._verbose for _, built in parts)
        # The outputs of a composition are its last part's: that part's declared keys.
        self._output_keys = parts[-1][1]._output_keys if parts else ()
        self._observers_lock = threading.Lock()
        self._set_observers(())
        return self

    def _set_segments(self, segments: tuple[_Segment, ...]) -> None:
        self._segments = segments
        self._metrics = MetricsRecorder([label for s in segments for label, _, _ in s.steps])
        self._last = self._metrics.var  # the hot path sets it directly
        # The batchers credit every caller: the context variable's own setter saves a
        # Python call per event (credit_metrics below says the same, for readers).
        self.credit_metrics = self._last.set  # type: ignore[method-assign,assignment]
        aplan = tuple((tuple(_async_step(step) for step in s.steps), s) for s in segments)
        self._aplan = aplan
        modes = [mode for steps, _ in aplan for _, _, stage, mode in steps if stage is not None]
        #: Whether some step is ``async def``.
        self.is_async: bool = _AWAIT in modes
        # A pipeline without async steps runs off the loop in one thread hop per call,
        # or on the loop when every stage is marked run_inline.
        self._all_inline = _THREAD not in modes
        if not self.is_async:
            self._plan = tuple((s.steps, s) for s in segments)
            return
        # Plain calls: each async step is run to completion on packflow's loop, and the
        # first step refuses a call made inside a running loop before any user code runs.
        first = next(
            (label, stage) for steps, _ in aplan for label, _, stage, m in steps if m == _AWAIT
        )
        plan = []
        for position, (steps, segment) in enumerate(aplan):
            blocking = tuple(
                (label, _blocking(fn) if mode == _AWAIT else fn, stage)
                for label, fn, stage, mode in steps
            )
            if position == 0:
                label, fn, stage = blocking[0]
                blocking = ((label, _refusing_loop(fn, self.name, *first), stage), *blocking[1:])
            plan.append((blocking, segment))
        self._plan = tuple(plan)

    def _set_observers(self, observers: tuple[CallObserver, ...]) -> None:
        # What the hot path calls after a call: None while nobody watches and the
        # verbose log is off, so that an unwatched call pays one check.
        self._observers = observers
        if not observers and not self._verbose:
            self._on_call: Callable[[RawMetrics, list[Any]], None] | None = None
            self._on_failure: Callable[[RawMetrics, BaseException], None] | None = None
            return
        fan = Observers(observers, self._metrics, self.logger if self._verbose else None)
        self._on_call, self._on_failure = fan.called, fan.failed

    def add_observer(self, observer: CallObserver) -> None:
        """Tell ``observer`` about every call of this instance from now on.

        See :class:`packflow.metrics.CallObserver`; :mod:`packflow.observe` attaches its
        Prometheus and OpenTelemetry exporters this way. Adding an observer twice adds
        it once.
        """
        with self._observers_lock:
            if observer not in self._observers:
                self._set_observers((*self._observers, observer))

    def remove_observer(self, observer: CallObserver) -> None:
        """Stop telling ``observer`` about calls (nothing happens if it was not added)."""
        with self._observers_lock:
            self._set_observers(tuple(o for o in self._observers if o is not observer))

    @property
    def observers(self) -> tuple[CallObserver, ...]:
        """The observers told about every call (see :meth:`add_observer`)."""
        return self._observers

    @property
    def checked(self) -> CheckedPipeline | CheckedComposition:
        """What ``check()`` returned when this instance was built."""
        return self._checked

    @property
    def output_keys(self) -> tuple[str, ...]:
        """The keys every output record should have (the config's ``output_keys``; a
        composition's last part's)."""
        return self._output_keys

    @property
    def step_labels(self) -> tuple[str, ...]:
        """The labels of the steps a call runs, in order (the keys of ``execution_times``)."""
        return self._metrics.labels

    def __repr__(self) -> str:
        return f"<BuiltPipeline {self.name!r}: {' -> '.join(self.step_labels)}>"

    def ready(self) -> bool:
        """Whether the instance can serve calls (initialized; always true once built)."""
        return True

    def _runtime(self) -> BuiltPipeline:
        return self

    # -- the part protocol (see packflow.parts): a built instance is a definition too ----

    def __packflow_check__(self, **config: Any) -> CheckedPipeline | CheckedComposition:
        self.__packflow_build__(**config)
        return self._checked

    def __packflow_build__(self, **config: Any) -> BuiltPipeline:
        if config:
            raise InferenceBackendLoadError(
                f"cannot apply config {sorted(config)} to pipeline {self.name!r}: it is an "
                "instance that is already built; build the Pipeline with it instead"
            )
        return self

    def _built_runtime(self) -> BuiltPipeline:
        return self

    # -- calls -------------------------------------------------------------------------

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run one record (a dict, returns a dict) or a batch (a list, returns a list).

        Parameters
        ----------
        inputs
            A dict (one event) or a list of dicts (a batch).
        on_error
            ``"raise"`` (default): the first failure raises. ``"row"``: a record that
            fails gets an error row ``{"error": {"type", "message", "stage",
            "index"}}`` in its place and every other record its real output.

        Raises
        ------
        InferenceBackendRuntimeError
            When the input is neither a dict nor a list of dicts, or the output is not a
            list with one dict per input.
        StageError
            When a stage raises; the original exception is chained.
        """
        kind = type(inputs)
        if kind is dict:
            return self.run_batch([inputs], on_error=on_error)[0]
        if kind is list or isinstance(inputs, list):
            return self.run_batch(inputs, on_error=on_error)
        if isinstance(inputs, dict):
            return self.run_batch([inputs], on_error=on_error)[0]
        raise _bad_input(inputs)

    async def acall(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """``await built.acall(inputs)``: :meth:`__call__` for async code.

        ``async def`` stages are awaited on the running loop; plain stages run in a
        worker thread (one hop per call for a pipeline without async stages), unless
        marked with :func:`packflow.run_inline`. The metrics go to the awaiting task:
        concurrent ``acall``\\ s never see each other's. Cancelling the awaiting task
        cancels its own stage call (a plain stage already running in a thread finishes
        there, its result dropped).

        Raises
        ------
        InferenceBackendRuntimeError, StageError
            As :meth:`__call__`; a stage that raises ``asyncio.CancelledError`` (when
            its caller was not cancelled) is a ``StageError`` too.
        """
        kind = type(inputs)
        if kind is dict or (kind is not list and isinstance(inputs, dict)):
            return (await self.arun_batch([inputs], on_error=on_error))[0]
        if kind is list or isinstance(inputs, list):
            return await self.arun_batch(inputs, on_error=on_error)
        raise _bad_input(inputs)

    async def arun_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        """:meth:`run_batch` for async code (see :meth:`acall`)."""
        if on_error != "raise":
            check_on_error(on_error)
            return await self.arun_rows(records)
        if not self.is_async:
            return await self._off_loop(self.run_batch, records)
        start = perf_counter()
        _check_batch(records)
        if not records:
            raw = self._metrics.record(0, (), perf_counter() - start)
            if self._on_call is not None:
                self._on_call(raw, [])
            return []
        durations: list[float] = []
        try:
            data = await self._aattempt(records, durations)
        except Exception as exc:
            self._failed(len(records), durations, start, exc)
            raise
        raw = (len(records), durations, perf_counter() - start, 0)
        self._last.set(raw)
        if self._on_call is not None:
            self._on_call(raw, data)
        return data

    async def arun_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        """:meth:`run_rows` for async code: the retries that isolate failed records are
        awaited in turn (see :meth:`acall`)."""
        if not self.is_async:
            run = functools.partial(self.run_rows, first_index=first_index, mark=mark)
            return await self._off_loop(run, records)
        start = perf_counter()
        if type(records) is not list and not isinstance(records, list):
            raise _bad_input(records)
        outputs, good, errors = _split_rows(records, first_index, mark)
        durations: list[float] = []
        if good:
            batch, indices = _good_batch(records, good, first_index)
            try:
                results, failed = await self._aattempt(batch, durations), 0
            except Exception as exc:
                if not is_record_error(exc):
                    self._failed(len(records), durations, start, exc)
                    raise
                attempt = functools.partial(self._aattempt, durations=durations)
                if mark is None:
                    results, failed = await aisolate(attempt, batch, indices, failed_with=exc)
                else:
                    results, failed = await aisolate(
                        attempt, batch, indices, mark=mark, failed_with=exc
                    )
            errors += failed
            outputs = _merged(outputs, good, results)
        raw = self._metrics.record(len(records), durations, perf_counter() - start, errors)
        if self._on_call is not None:
            self._on_call(raw, outputs)
        return outputs

    async def _off_loop(
        self, run: Callable[[list[Any]], list[Any]], records: list[Any]
    ) -> list[Any]:
        """A pipeline without async steps, for async code: one thread hop for the call."""
        if self._all_inline:
            return run(records)
        from packflow.runtime.aio import in_thread

        last = self._last

        def call(batch: list[Any]) -> tuple[list[Any], RawMetrics | None]:
            return run(batch), last.get()

        outputs, raw = await in_thread(call, records)
        last.set(raw)
        return outputs

    async def _aattempt(self, batch: list[Any], durations: list[float]) -> list[Any]:
        """:meth:`_attempt` on the async path: async steps awaited, plain ones in a thread."""
        from packflow.runtime.aio import CancelledError, in_thread, own_cancellation

        size = len(batch)
        data: Any = batch
        position = 0
        mark = perf_counter()
        for steps, segment in self._aplan:
            for label, fn, stage, mode in steps:
                try:
                    if mode == _AWAIT:
                        data = await fn(data)
                    elif mode == _THREAD:
                        data = await in_thread(fn, data)
                    else:
                        data = fn(data)
                except Exception as exc:
                    raise _failure(label, stage, exc) from exc
                except CancelledError as exc:
                    if own_cancellation():
                        raise
                    # A stage that raised CancelledError of its own accord failed: its
                    # callers get an error instead of a cancellation nobody asked for.
                    raise _failure(label, stage, exc) from exc
                now = perf_counter()
                if position < len(durations):
                    durations[position] += now - mark
                else:
                    durations.append(now - mark)
                position += 1
                mark = now
            if data is not batch:
                _check_outputs(segment, data, size)
        return data  # type: ignore[no-any-return]

    def run_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        """Run a batch: a list of records in, one output per record out, in order.

        This is the core every way of calling goes through (``__call__``, ``validate``,
        streaming and the batchers, ``packflow run``, the Ray adapter). The metrics of
        the run are credited to the current caller (see :mod:`packflow.metrics`).

        Parameters
        ----------
        records
            The batch: a list of dicts. An empty list returns ``[]``.
        on_error
            ``"raise"`` or ``"row"``, as for :meth:`__call__`.

        Raises
        ------
        InferenceBackendRuntimeError
            When ``records`` is not a list of dicts (with ``on_error="row"``, a record
            that is not a dict gets an error row instead), or an output is not a list
            with one dict per record.
        StageError, PreprocessorRuntimeError, RuntimeTypeError
            With ``on_error="raise"``, when a step fails.
        ValueError
            When ``on_error`` is neither ``"raise"`` nor ``"row"``.
        """
        if on_error != "raise":
            check_on_error(on_error)
            return self.run_rows(records)
        start = perf_counter()
        if type(records) is not list and not isinstance(records, list):
            raise _bad_input(records)
        size = len(records)
        if size < _SCAN_FROM:
            for row in records:
                if type(row) is not dict and not isinstance(row, dict):
                    raise _bad_row(records)
        elif set(map(type, records)) != _DICTS_ONLY and not _all_dicts(records):
            raise _bad_row(records)
        if not size:
            raw = self._metrics.record(0, (), perf_counter() - start)
            if self._on_call is not None:
                self._on_call(raw, [])
            return []
        # The same loop as _attempt, written out: this is the hot path of every call.
        data: Any = records
        durations: list[float] = []
        mark = start
        try:
            for steps, segment in self._plan:
                for label, fn, stage in steps:
                    try:
                        data = fn(data)
                    except Exception as exc:
                        raise _failure(label, stage, exc) from exc
                    now = perf_counter()
                    durations.append(now - mark)
                    mark = now
                if data is not records:
                    _check_outputs(segment, data, size)
        except Exception as exc:
            if self._on_failure is not None:
                self._on_failure((size, durations, perf_counter() - start, size), exc)
            raise
        raw = (size, durations, mark - start, 0)
        self._last.set(raw)
        if self._on_call is not None:
            self._on_call(raw, data)
        if self._output_keys:
            self._warn_missing_keys(data)
        return data  # type: ignore[no-any-return]

    def _attempt(self, batch: list[Any], durations: list[float]) -> list[Any]:
        """Run every step over a non-empty batch of dicts; raise on the first failure.

        The time of each step is added to ``durations`` (grown as needed), so that the
        attempts of an isolated run add up.
        """
        size = len(batch)
        data: Any = batch
        position = 0
        mark = perf_counter()
        for steps, segment in self._plan:
            for label, fn, stage in steps:
                try:
                    data = fn(data)
                except Exception as exc:
                    raise _failure(label, stage, exc) from exc
                now = perf_counter()
                if position < len(durations):
                    durations[position] += now - mark
                else:
                    durations.append(now - mark)
                position += 1
                mark = now
            if data is not batch:
                _check_outputs(segment, data, size)
        return data  # type: ignore[no-any-return]

    def run_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        """Run ``records`` isolating the ones that fail (``on_error="row"``).

        Part of the :class:`~packflow.runtime.contracts.Runner` contract that the
        batchers and engines run over. A record that fails gets an error row in its
        place (see :mod:`packflow.runtime.isolation`), every other record its output.

        Parameters
        ----------
        records
            The batch, a list (a record that is not a dict gets an error row).
        first_index
            The position of ``records[0]`` in the caller's numbering (a stream's batches
            count from the start of the stream): what error rows report as ``index``.
        mark
            Makes what stands for a failed record from (error, index, attempted index);
            an error row by default.

        Raises
        ------
        InferenceBackendRuntimeError
            When ``records`` is not a list, or an error is about the whole batch (an
            output that does not line up with its input).
        """
        start = perf_counter()
        if type(records) is list and records and set(map(type, records)) <= _DICTS_ONLY:
            # The common case, every record a dict: the whole batch first, as
            # on_error="raise" runs it, so that without a bad record this is all it costs.
            durations: list[float] = []
            try:
                outputs, errors = self._attempt(records, durations), 0
            except Exception as exc:
                if not is_record_error(exc):
                    self._failed(len(records), durations, start, exc)
                    raise
                attempt = functools.partial(self._attempt, durations=durations)
                at = range(first_index, first_index + len(records))
                if mark is None:
                    outputs, errors = isolate(attempt, records, at, failed_with=exc)
                else:
                    outputs, errors = isolate(attempt, records, at, mark=mark, failed_with=exc)
            raw = self._metrics.record(len(records), durations, perf_counter() - start, errors)
            if self._on_call is not None:
                self._on_call(raw, outputs)
            if self._output_keys:
                self._warn_missing_keys(outputs, skip_error_rows=errors > 0)
            return outputs
        if type(records) is not list and not isinstance(records, list):
            raise _bad_input(records)
        outputs, good, errors = _split_rows(records, first_index, mark)
        durations = []
        if good:
            batch, indices = _good_batch(records, good, first_index)
            try:
                # The whole batch first, as on_error="raise" runs it: without a bad record
                # this is all there is to pay.
                results, failed = self._attempt(batch, durations), 0
            except Exception as exc:
                if not is_record_error(exc):
                    self._failed(len(records), durations, start, exc)
                    raise
                attempt = functools.partial(self._attempt, durations=durations)
                if mark is None:
                    results, failed = isolate(attempt, batch, indices, failed_with=exc)
                else:
                    results, failed = isolate(attempt, batch, indices, mark=mark, failed_with=exc)
            errors += failed
            outputs = _merged(outputs, good, results)
        raw = self._metrics.record(len(records), durations, perf_counter() - start, errors)
        if self._on_call is not None:
            self._on_call(raw, outputs)
        if self._output_keys:
            self._warn_missing_keys(outputs, skip_error_rows=errors > 0)
        return outputs

    def _failed(self, size: int, durations: list[float], start: float, exc: Exception) -> None:
        """Tell the observers that a run of ``size`` records raised ``exc``."""
        if self._on_failure is not None:
            self._on_failure((size, durations, perf_counter() - start, size), exc)

    def _warn_missing_keys(self, outputs: list[Any], *, skip_error_rows: bool = False) -> None:
        """One warning per declared ``output_keys`` entry that some output record lacks."""
        for key in self._output_keys:
            missing = [
                index
                for index, row in enumerate(outputs)
                if isinstance(row, dict)
                and key not in row
                and not (skip_error_rows and is_error_row(row))
            ]
            if missing:
                self.logger.warning(
                    "pipeline %r: output_keys: %r is missing from %d of %d output record(s) "
                    "(first: record %d)",
                    self.name,
                    key,
                    len(missing),
                    len(outputs),
                    missing[0],
                )

    # -- metrics and validation ---------------------------------------------------------

    def get_metrics(self) -> Metrics:
        """The metrics of the current caller's last completed call.

        The caller is the thread, or the asyncio task, that made the call (see
        :mod:`packflow.metrics`).

        Raises
        ------
        InferenceBackendRuntimeError
            When this caller has not completed a call yet.
        """
        return self._metrics.last()

    def last_metrics(self) -> RawMetrics | None:
        """The raw metrics of this thread's or task's last run, ``None`` before one.

        Part of the :class:`~packflow.runtime.contracts.Runner` contract: a batcher reads
        them in the thread that ran a batch and credits them to each of its callers.
        """
        return self._metrics.raw()

    def credit_metrics(self, raw: RawMetrics) -> None:
        """Make ``raw`` the current caller's last metrics (for batches run on its behalf).

        Each instance replaces this method by its metrics variable's own ``set`` (see
        ``_set_segments``), which does the same without a Python call per event.
        """
        self._last.set(raw)  # once per batcher caller: MetricsRecorder.put, written out


#: Below this many rows a Python loop checks them fastest; above, a set of their types.
_SCAN_FROM = 16
_DICTS_ONLY = {dict}


def _all_dicts(rows: list[Any]) -> bool:
    return all(isinstance(row, dict) for row in rows)


def _check_batch(records: Any) -> None:
    """Raise unless ``records`` is a list of dicts (``run_batch``'s checks, for the
    async path)."""
    if type(records) is not list and not isinstance(records, list):
        raise _bad_input(records)
    if len(records) < _SCAN_FROM:
        for row in records:
            if type(row) is not dict and not isinstance(row, dict):
                raise _bad_row(records)
    elif set(map(type, records)) != _DICTS_ONLY and not _all_dicts(records):
        raise _bad_row(records)


def _split_rows(
    records: list[Any], first_index: int, mark: Mark | None
) -> tuple[list[Any], list[int] | range, int]:
    """For ``run_rows``: an error row (or mark) for each record that is not a dict.

    Returns the outputs so far, the positions of the dicts, and the errors.
    """
    outputs: list[Any] = [None] * len(records)
    if set(map(type, records)) <= _DICTS_ONLY:
        return outputs, range(len(records)), 0  # the common case, without a loop in Python
    good: list[int] = []
    errors = 0
    for index, row in enumerate(records):
        if type(row) is dict or isinstance(row, dict):
            good.append(index)
            continue
        where = first_index + index
        problem = _bad_row_error(where, row)
        outputs[index] = error_row(problem, where) if mark is None else mark(problem, where, None)
        errors += 1
    return outputs, good, errors


def _good_batch(
    records: list[Any], good: list[int] | range, first_index: int
) -> tuple[list[Any], Sequence[int]]:
    """The records to run (the dicts) and their positions in the caller's numbering."""
    batch = records if len(good) == len(records) else [records[i] for i in good]
    if isinstance(good, range):
        return batch, range(first_index, first_index + len(good))
    return batch, [first_index + i for i in good] if first_index else good


def _merged(outputs: list[Any], good: list[int] | range, results: list[Any]) -> list[Any]:
    if len(good) == len(outputs):
        return results
    for index, result in zip(good, results, strict=True):
        outputs[index] = result
    return outputs


def _async_step(step: Step) -> AsyncStep:
    label, fn, stage = step
    if stage is None:
        return label, fn, stage, _INLINE  # the preprocessor: packflow's own, cheap
    if stage.info.is_async:
        return label, fn, stage, _AWAIT
    return label, fn, stage, _INLINE if stage.info.inline else _THREAD


def _blocking(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An async step for plain calls: run to completion on packflow's loop."""
    from packflow.runtime.aio import run_blocking

    def run(data: Any) -> Any:
        return run_blocking(fn(data))

    return run


def _refusing_loop(
    fn: Callable[[Any], Any], pipeline: str, label: str, stage: Stage | None
) -> Callable[[Any], Any]:
    """The first step of a plain call: refused inside a running loop (see
    :class:`RunningLoopError`)."""
    from packflow.runtime.aio import loop_is_running

    def first(data: Any) -> Any:
        if loop_is_running():
            assert stage is not None
            raise RunningLoopError(
                f"pipeline {pipeline!r} has async steps ({label} `{stage.name}` "
                f"({stage.location})) and was called inside a running event loop, which "
                "a plain call would block until it ends; in async code, use "
                "`await pipe.acall(inputs)` (or `pipe.async_batcher()`)",
                stage=label,
                function=stage.name,
                location=stage.location,
            )
        return fn(data)

    return first


def _check_outputs(segment: _Segment, data: Any, size: int) -> None:
    """Raise unless ``data`` is a list of ``size`` dicts (a part's output, or the call's)."""
    if (type(data) is not list and not isinstance(data, list)) or len(data) != size:
        raise _misaligned(segment, data, size)
    if size < _SCAN_FROM:
        for row in data:
            if type(row) is not dict and not isinstance(row, dict):
                raise _not_a_record(segment, data)
    elif set(map(type, data)) != _DICTS_ONLY and not _all_dicts(data):
        raise _not_a_record(segment, data)


def _failure(label: str, stage: Stage | None, exc: BaseException) -> PackflowError:
    """What a failing step raises: the error itself when it says where, else a StageError."""
    if isinstance(exc, _PASS_THROUGH) or (stage is None and isinstance(exc, PackflowError)):
        if isinstance(exc, PreprocessorRuntimeError) and exc.stage is None:
            exc.stage = label
        elif isinstance(exc, RuntimeTypeError) and stage is not None and exc.stage != label:
            exc.stage = label  # the check names the stage kind; in a composition, the part too
        return exc
    if stage is None:
        error = PreprocessorRuntimeError(f"{label} failed with {type(exc).__name__}: {exc}")
        error.stage = label
        return error
    return StageError(
        f"stage {label} `{stage.name}` ({stage.location}) raised {type(exc).__name__}: {exc}",
        stage=label,
        function=stage.name,
        location=stage.location,
    )


def _who(segment: _Segment) -> str:
    stage = segment.last
    part = f"part {segment.part!r}: " if segment.part else ""
    return f"{part}{stage.kind.value} `{stage.name}` ({stage.location})"


def _misaligned(segment: _Segment, data: Any, expected: int) -> InferenceBackendRuntimeError:
    stage = segment.last
    where: dict[str, Any] = dict(
        stage=segment.last_label, function=stage.name, location=stage.location
    )
    if not isinstance(data, list):
        if isinstance(data, (tuple, range)) or hasattr(data, "__next__"):
            hint = "return a list (e.g. `return list(...)`), not a lazy or fixed sequence"
        elif stage.kind.value == "execute":
            hint = "add a transform_outputs stage that returns list[dict]"
        else:
            hint = "return a list with one record per input"
        return InferenceBackendRuntimeError(
            f"pipeline {segment.pipeline!r}: {_who(segment)} returned {type(data).__name__}; "
            f"the last stage must return a list of {expected} record(s), one per input "
            f"({hint})",
            **where,
        )
    return InferenceBackendRuntimeError(
        f"pipeline {segment.pipeline!r}: {_who(segment)} returned {len(data)} record(s) "
        f"for a batch of {expected}; outputs must line up one to one with inputs",
        **where,
    )


def _not_a_record(segment: _Segment, data: list[Any]) -> InferenceBackendRuntimeError:
    stage = segment.last
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            error = InferenceBackendRuntimeError(
                f"pipeline {segment.pipeline!r}: {_who(segment)} returned "
                f"{type(row).__name__} {row!r:.60} as output record {index}; every output "
                "record must be a dict (e.g. `[{'score': y} for y in ys]`)",
                stage=segment.last_label,
                function=stage.name,
                location=stage.location,
                index=index,
            )
            mark_not_a_record(error)
            return error
    raise AssertionError("unreachable: every row is a dict")  # pragma: no cover


def _adapt(
    fn: Callable[[Any], Any],
    stage: Stage,
    checked: CheckedPipeline,
    *,
    first: bool,
    last: bool,
    runtime_checks: bool,
) -> Callable[[Any], Any]:
    """Wrap a stage for attrs records and run-time checks; unchanged when neither applies.

    Everything here is decided once per built instance, so a pipeline without attrs
    records or ``runtime_checks`` pays nothing per call.
    """
    report = checked.report
    kind = stage.kind.value
    data_type = report.data_types.get(kind, Any) if report is not None else Any
    return_type = report.return_types.get(kind, Any) if report is not None else Any
    record_in = attrs_record_type(data_type) if first else None
    record_out = attrs_record_type(return_type) if last else None
    check_in = _value_check(stage, "data parameter", data_type) if runtime_checks else None
    check_out = _value_check(stage, "return value", return_type) if runtime_checks else None
    if record_in is None and record_out is None and check_in is None and check_out is None:
        return fn
    if stage.info.is_async:

        async def adapted_async(data: Any) -> Any:
            if record_in is not None:
                data = structure_records(data, record_in)
            if check_in is not None:
                check_in(data)
            result = await fn(data)
            if check_out is not None:
                check_out(result)
            if record_out is not None and isinstance(result, list):
                result = unstructure_records(result)
            return result

        return adapted_async

    def adapted(data: Any) -> Any:
        if record_in is not None:
            data = structure_records(data, record_in)
        if check_in is not None:
            check_in(data)
        result = fn(data)
        if check_out is not None:
            check_out(result)
        if record_out is not None and isinstance(result, list):
            result = unstructure_records(result)
        return result

    return adapted


def _value_check(stage: Stage, what: str, annotation: Any) -> Callable[[Any], None] | None:
    if annotation is Any:
        return None
    # Only pipelines with runtime_checks=True get here: the type model is not imported
    # by every `import packflow`.
    from packflow.typecheck import format_type
    from packflow.valuecheck import compile_checker

    checker = compile_checker(annotation)
    expected = format_type(annotation)

    def check(value: Any) -> None:
        problem = checker(value)
        if problem is not None:
            raise RuntimeTypeError(
                f"runtime check: {stage.kind.value} `{stage.name}` ({stage.location}): "
                f"{what} should be {expected}, but {problem}",
                stage=stage.kind.value,
                function=stage.name,
                location=stage.location,
                expected=expected,
                actual=problem,
            )

    return check


def _bad_row_error(index: int, row: Any) -> InferenceBackendRuntimeError:
    return InferenceBackendRuntimeError(
        f"input record {index} is {type(row).__name__}, expected a dict "
        "(a batch must be a list of dicts)",
        stage="input",
        index=index,
    )


def _bad_row(inputs: list[Any]) -> InferenceBackendRuntimeError:
    for index, row in enumerate(inputs):
        if not isinstance(row, dict):
            return _bad_row_error(index, row)
    raise AssertionError("unreachable: every row is a dict")  # pragma: no cover


def _bad_input(inputs: Any) -> InferenceBackendRuntimeError:
    return InferenceBackendRuntimeError(
        f"inputs must be a dict (one record) or a list of dicts (a batch), "
        f"got {type(inputs).__name__}"
    )
