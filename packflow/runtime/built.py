"""The built pipeline: config resolved, resources initialized, ready for calls.

A ``BuiltPipeline`` is what ``Pipeline.build()`` returns. It holds no global state: its
resources, metrics and config belong to it alone, so several instances (one per worker,
one per test) can live side by side.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from time import perf_counter
from types import MappingProxyType
from typing import Any

from packflow.exceptions import (
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PackflowError,
    PreprocessorRuntimeError,
    RuntimeTypeError,
    StageError,
)
from packflow.graph import CheckedPipeline, Stage, StageGraph
from packflow.log import get_logger
from packflow.metrics import Metrics, MetricsRecorder
from packflow.outputs import find_invalid_value
from packflow.records import attrs_record_type, structure_records, unstructure_records
from packflow.typecheck import format_type
from packflow.valuecheck import compile_checker

__all__ = ["BuiltPipeline"]

Step = tuple[str, Callable[[Any], Any], Stage | None]

# Errors that already say where they happened (stage, or record and field); any other
# error a stage raises gets wrapped in a StageError.
_PASS_THROUGH = (StageError, RuntimeTypeError, PreprocessorRuntimeError)


def _bind(stage: Stage, available: Mapping[str, Any]) -> Callable[[Any], Any]:
    if not stage.injected:
        return stage.func
    return functools.partial(stage.func, **{name: available[name] for name in stage.injected})


class BuiltPipeline:
    """A ready pipeline instance: call it with one record (a dict) or a list of them.

    Made by :meth:`packflow.Pipeline.build`; not meant to be constructed by hand.
    """

    def __init__(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any],
        *,
        logger: logging.Logger | None = None,
        runtime_checks: bool = False,
    ) -> None:
        self._checked = checked
        self.graph: StageGraph = checked.graph
        self.config: Any = checked.config
        self.logger: logging.Logger = logger or get_logger(checked.graph.name)
        self.resources: Mapping[str, Any] = MappingProxyType(dict(resources))
        self.report: Any = checked.report
        available = {"config": self.config, "logger": self.logger, **self.resources}
        steps: list[Step] = [("preprocess", checked.preprocessor, None)]
        stages = self.graph.stages
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
        self._steps: tuple[Step, ...] = tuple(steps)
        self._metrics = MetricsRecorder([label for label, _, _ in steps])
        self._verbose = bool(getattr(self.config, "verbose", False))
        self._last_stage = self.graph.stages[-1]

    @property
    def name(self) -> str:
        return self.graph.name

    def __repr__(self) -> str:
        stages = " -> ".join(label for label, _, _ in self._steps)
        return f"<BuiltPipeline {self.name!r}: {stages}>"

    def ready(self) -> bool:
        """Whether the instance can serve calls (initialized; always true once built)."""
        return True

    def __call__(self, inputs: Any) -> Any:
        """Run one record (a dict, returns a dict) or a batch (a list, returns a list).

        Raises
        ------
        InferenceBackendRuntimeError
            When the input is neither a dict nor a list of dicts, or the output is not a
            list with one element per input.
        StageError
            When a stage raises; the original exception is chained.
        """
        start = perf_counter()
        kind = type(inputs)
        if kind is dict:
            batch: list[Any] = [inputs]
            single = True
        elif kind is list or isinstance(inputs, list):
            if not inputs:
                self._metrics.record(0, (), perf_counter() - start)
                return []
            if type(inputs[0]) is not dict or len(set(map(type, inputs))) != 1:
                _reject_rows(inputs)
            batch = inputs
            single = False
        elif isinstance(inputs, dict):
            batch = [inputs]
            single = True
        else:
            raise _bad_input(inputs)
        data: Any = batch
        durations: list[float] = []
        mark = start
        for label, fn, stage in self._steps:
            try:
                data = fn(data)
            except Exception as exc:
                if isinstance(exc, _PASS_THROUGH) or (
                    stage is None and isinstance(exc, PackflowError)
                ):
                    raise
                raise _stage_error(label, stage, exc) from exc
            now = perf_counter()
            durations.append(now - mark)
            mark = now
        if (type(data) is not list and not isinstance(data, list)) or len(data) != len(batch):
            raise self._misaligned(data, len(batch))
        self._metrics.record(len(batch), durations, mark - start)
        if self._verbose:
            self.logger.info("%s", self._metrics.last().as_dict())
        return data[0] if single else data

    def get_metrics(self) -> Metrics:
        """The metrics of this thread's last completed call.

        Raises
        ------
        InferenceBackendRuntimeError
            When this thread has not completed a call yet.
        """
        return self._metrics.last()

    def validate(self, sample: Any) -> Any:
        """Run ``sample`` and check that the outputs are JSON-ready records.

        Returns the outputs, like a call.

        Raises
        ------
        InferenceBackendValidationError
            When an output row is not a dict or holds a value JSON cannot represent;
            the message names the record index and the key path.
        """
        outputs = self(sample)
        rows = [outputs] if isinstance(sample, dict) else outputs
        problem = find_invalid_value(rows)
        if problem is not None:
            index, path, reason = problem
            where = f" at {path}" if path else ""
            raise InferenceBackendValidationError(
                f"pipeline {self.name!r}: output record {index}{where}: {reason}",
                index=index,
                path=path,
            )
        return outputs

    def _misaligned(self, data: Any, expected: int) -> InferenceBackendRuntimeError:
        stage = self._last_stage
        who = f"{stage.kind.value} `{stage.name}` ({stage.location})"
        if not isinstance(data, list):
            hint = (
                "add a transform_outputs stage that returns list[dict]"
                if stage.kind.value == "execute"
                else "return a list with one record per input"
            )
            return InferenceBackendRuntimeError(
                f"pipeline {self.name!r}: {who} returned {type(data).__name__}; the last "
                f"stage must return a list of {expected} record(s), one per input ({hint})"
            )
        return InferenceBackendRuntimeError(
            f"pipeline {self.name!r}: {who} returned {len(data)} record(s) for a batch of "
            f"{expected}; outputs must line up one to one with inputs"
        )


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


def _reject_rows(inputs: list[Any]) -> None:
    for index, row in enumerate(inputs):
        if type(row) is not dict and not isinstance(row, dict):
            raise InferenceBackendRuntimeError(
                f"input record {index} is {type(row).__name__}, expected a dict "
                "(a batch must be a list of dicts)"
            )


def _bad_input(inputs: Any) -> InferenceBackendRuntimeError:
    return InferenceBackendRuntimeError(
        f"inputs must be a dict (one record) or a list of dicts (a batch), "
        f"got {type(inputs).__name__}"
    )


def _stage_error(label: str, stage: Stage | None, exc: Exception) -> PackflowError:
    if stage is None:
        return PreprocessorRuntimeError(f"preprocess failed with {type(exc).__name__}: {exc}")
    return StageError(
        f"stage {label} `{stage.name}` ({stage.location}) raised {type(exc).__name__}: {exc}",
        stage=label,
        function=stage.name,
        location=stage.location,
    )
