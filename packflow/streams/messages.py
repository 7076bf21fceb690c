"""What flows between a broker and a pipeline: messages in, outputs and dead letters out.

A :class:`Message` is one input as a source read it (its raw payload and where it came
from); an :class:`Outgoing` is one thing a sink writes for it (an output, or a dead
letter carrying the original payload). :class:`Source` and :class:`Sink` are the two
protocols a broker adapter implements; :func:`packflow.streams.run_stream` runs over
them and knows nothing of Redis or Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "Message", "Outgoing", "Sink", "Source"]

#: The largest payload handed to the pipeline; a larger one is dead-lettered.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20


@attrs.frozen
class Message:
    """One input read from a source.

    Attributes
    ----------
    id
        What names the message in reports and in its outputs' ``source_id``: the Redis
        entry id, or ``topic/partition/offset`` on Kafka.
    payload
        The raw payload (the entry's field ``data``, the Kafka message value), or
        ``None`` when the message has none; it is decoded as one JSON object.
    problem
        Why the message holds no record before its payload is even read (an entry
        without a ``data`` field), else ``None``.
    key
        The Kafka message key (``None`` on Redis, or when the message has none).
    origin
        Where it came from, as written into its outputs' Kafka header ``source``:
        ``{"stream", "id"}`` or ``{"topic", "partition", "offset"}``.
    """

    id: str
    payload: bytes | None
    problem: str | None = None
    key: bytes | None = None
    origin: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Outgoing:
    """One thing a sink writes: ``data`` (the output's JSON, or the error row's) for
    ``message``; a dead letter also carries the message's original ``payload``."""

    data: str
    message: Message
    dead: bool = False

    @property
    def payload(self) -> bytes | None:
        """The original payload of a dead letter (``None`` for an output)."""
        return self.message.payload if self.dead else None


class Source(Protocol):
    """A consumer-group reader of one stream or topic."""

    #: The URL it reads, without its password.
    url: str

    def read(self, max_count: int, latency: float, wait: float) -> list[Message]:
        """Up to ``max_count`` messages, in order.

        Blocks up to ``wait`` seconds for a first message (returns ``[]`` when none
        came), then up to ``latency`` seconds more while the batch is not full.

        Raises
        ------
        StreamUnavailableError
            When the broker cannot be reached (the caller retries).
        StreamError
            When the broker refuses (the caller stops).
        """
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge ``messages``: they are never delivered to the group again.

        Called only after every output and dead letter of ``messages`` was written.
        """
        ...

    def close(self) -> None:
        """Leave the group and close the connection; unacknowledged messages stay
        pending for this consumer (or for whoever claims them)."""
        ...


class Sink(Protocol):
    """A writer of outputs (or dead letters) to one stream or topic."""

    #: The URL it writes, without its password.
    url: str

    def write(self, items: Sequence[Outgoing]) -> None:
        """Write ``items`` in order; return once the broker has them all.

        Raises
        ------
        StreamUnavailableError
            When the broker cannot be reached (the caller writes the items again).
        SinkRefusedError
            When the broker refuses them (the caller stops without acknowledging).
        """
        ...

    def close(self) -> None:
        """Close the connection (after what was written is delivered)."""
        ...
