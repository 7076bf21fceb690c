"""The options of a server: batching, bounds and what a failing record does."""

from __future__ import annotations

from typing import Any

import attrs

from packflow.runtime.isolation import OnError, check_on_error
from packflow.runtime.streaming import check_batching

__all__ = ["DEFAULT_MAX_BODY_BYTES", "QUEUE_PER_BATCH", "ServeOptions"]

#: The largest JSON body read into memory (an NDJSON body is streamed; this bounds a line).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Without ``max_queue``, the queue holds this many batches' worth of records.
QUEUE_PER_BATCH = 16


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@attrs.frozen
class ServeOptions:
    """How a server batches, bounds and answers: what ``create_app`` and the CLI take.

    Attributes
    ----------
    max_batch_size
        The most records per pipeline call (records of concurrent requests share it).
    max_latency_ms
        The longest a record waits for its batch to fill.
    max_queue
        The most records admitted and not answered yet; a request that would go over
        is refused with 503 and ``Retry-After`` (a request alone in an empty queue is
        always admitted). ``None``: ``16 * max_batch_size``.
    max_body_bytes
        The largest JSON body (413 above it); for an NDJSON body, the longest line.
    on_error
        ``"row"``: a failing record gets an error row in its place. ``"raise"``: a
        request with a failing record answers 422 with the first error row (an NDJSON
        response ends after that row).
    retry_after
        The seconds a 503 asks the client to wait.
    """

    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    max_queue: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    on_error: OnError = "row"
    retry_after: int = 1

    def __attrs_post_init__(self) -> None:
        check_batching(self.max_batch_size, self.max_latency_ms)
        if self.max_queue is not None:
            _positive("max_queue", self.max_queue)
        _positive("max_body_bytes", self.max_body_bytes)
        _positive("retry_after", self.retry_after)
        check_on_error(self.on_error)

    @property
    def queue_limit(self) -> int:
        """``max_queue``, or its default."""
        if self.max_queue is not None:
            return self.max_queue
        return QUEUE_PER_BATCH * self.max_batch_size
