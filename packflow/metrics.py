"""Per-call metrics: what the last call on the current thread took, stage by stage."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs

from packflow.exceptions import InferenceBackendRuntimeError

__all__ = ["Metrics", "MetricsRecorder"]


@attrs.frozen
class Metrics:
    """The metrics of one call.

    ``execution_times`` maps each stage that exists (``preprocess``,
    ``transform_inputs``, ``execute``, ``transform_outputs``) to its duration in
    milliseconds; ``total_execution_time`` is the whole call in milliseconds.
    """

    batch_size: int
    execution_times: dict[str, float]
    total_execution_time: float

    def as_dict(self) -> dict[str, Any]:
        """The metrics as plain JSON-ready data."""
        return {
            "batch_size": self.batch_size,
            "execution_times": dict(self.execution_times),
            "total_execution_time": self.total_execution_time,
        }

    def __getitem__(self, key: str) -> Any:
        # The original Packflow returned a dict; keep ``metrics["batch_size"]`` working.
        if key not in ("batch_size", "execution_times", "total_execution_time"):
            raise KeyError(key)
        return getattr(self, key)


class MetricsRecorder:
    """Keeps the raw timings of each thread's last call.

    The hot path stores a plain tuple (cheap); the ``Metrics`` value is made only when
    someone asks for it. Each thread sees only its own calls.
    """

    __slots__ = ("_labels", "_local")

    def __init__(self, labels: Sequence[str]) -> None:
        self._labels = tuple(labels)
        self._local = threading.local()

    def record(self, batch_size: int, durations: Sequence[float], total: float) -> None:
        self._local.last = (batch_size, durations, total)

    def last(self) -> Metrics:
        """The metrics of this thread's last completed call.

        Raises
        ------
        InferenceBackendRuntimeError
            When this thread has not completed a call yet.
        """
        raw = getattr(self._local, "last", None)
        if raw is None:
            raise InferenceBackendRuntimeError(
                "get_metrics(): no call has completed on this thread yet; call the pipeline first"
            )
        batch_size, durations, total = raw
        times = {
            label: seconds * 1000.0
            for label, seconds in zip(self._labels, durations, strict=False)
        }
        return Metrics(
            batch_size=batch_size, execution_times=times, total_execution_time=total * 1000.0
        )
