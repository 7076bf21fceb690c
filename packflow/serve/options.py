"""The options of a server: batching, bounds and what a failing record does."""

from __future__ import annotations

import attrs

from packflow.runtime.contracts import BatchOptions, check_positive_int
from packflow.runtime.isolation import OnError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "QUEUE_PER_BATCH", "ServeOptions"]

#: The largest JSON body read into memory (an NDJSON body is streamed; this bounds a line).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Without ``max_queue``, the queue holds this many batches' worth of records.
QUEUE_PER_BATCH = 16


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
        BatchOptions(self.max_batch_size, self.max_latency_ms, self.on_error)  # checks them
        if self.max_queue is not None:
            check_positive_int("max_queue", self.max_queue)
        check_positive_int("max_body_bytes", self.max_body_bytes)
        check_positive_int("retry_after", self.retry_after)

    @property
    def batching(self) -> BatchOptions:
        """The batcher's options. Its callers get their own exceptions
        (``on_error="raise"``); the server turns them into error rows numbered per request.
        """
        return BatchOptions(self.max_batch_size, self.max_latency_ms, "raise")

    @property
    def queue_limit(self) -> int:
        """``max_queue``, or its default."""
        if self.max_queue is not None:
            return self.max_queue
        return QUEUE_PER_BATCH * self.max_batch_size
