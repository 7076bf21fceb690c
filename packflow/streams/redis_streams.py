"""Redis Streams through redis-py (extra ``redis``): a consumer-group source and a sink.

:class:`RedisSource` reads a stream as one consumer of a group (``XREADGROUP``). The
group is created at the start of the stream when it does not exist, so that entries
added before the first consumer started are consumed too. A consumer first takes back
its own pending entries (delivered to it before a crash and never acknowledged), then
periodically claims the entries that another consumer of the group left pending longer
than ``claim_idle_ms`` (``XAUTOCLAIM``; a consumer that died), then reads new entries.
``ack`` is ``XACK``.

:class:`RedisSink` appends one entry per output (``XADD``, one round trip per batch):
field ``data`` holds the output's JSON and ``source_id`` the input's entry id (or
``topic/partition/offset`` when the input came from Kafka); a dead letter also has field
``payload``, the input's original payload, byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

from packflow.exceptions import (
    MissingExtraError,
    SinkRefusedError,
    StreamError,
    StreamUnavailableError,
)
from packflow.streams.messages import Message, Outgoing
from packflow.streams.urls import StreamURL, parse_url

__all__ = ["DEFAULT_CLAIM_IDLE_MS", "RedisSink", "RedisSource", "redis_module"]

#: How long an entry stays pending with a consumer before another one may claim it.
DEFAULT_CLAIM_IDLE_MS = 60_000

_T = TypeVar("_T")


def redis_module() -> ModuleType:
    """redis-py, imported now.

    Raises
    ------
    MissingExtraError
        When it is not installed, naming the extra ``redis``.
    """
    try:
        import redis
    except ImportError as exc:
        raise MissingExtraError(
            "redis:// streams need redis-py, which is not installed; install it with "
            "pip install 'packflow[redis]'",
            package="redis",
            extra="redis",
        ) from exc
    return redis


def _client(url: StreamURL) -> Any:
    redis = redis_module()
    (host, port), *_ = url.hosts
    return redis.Redis(
        host=host,
        port=port,
        db=int(url.options.get("db", 0)),
        username=url.username,
        password=url.password,
        socket_connect_timeout=5.0,
        # Longer than any blocking read the source asks for.
        socket_timeout=30.0,
        health_check_interval=30,
    )


def _call(url: StreamURL, what: str, operation: Callable[[], _T], *, sink: bool = False) -> _T:
    """``operation()``, its redis-py errors turned into packflow's."""
    redis = redis_module()
    try:
        return operation()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StreamUnavailableError(
            f"{url.shown}: {what}: {type(exc).__name__}: {exc}", url=url.shown
        ) from exc
    except redis.RedisError as exc:
        kind = SinkRefusedError if sink else StreamError
        # A pipeline's error quotes the command, outputs included: keep the server's words.
        reason = str(exc).rsplit(" caused error: ", 1)[-1]
        raise kind(f"{url.shown}: {what} refused: {reason}", url=url.shown) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSource:
    """One consumer of a consumer group on a Redis stream.

    Parameters
    ----------
    url
        ``redis://[user:password@]host:port/STREAM[?db=N&claim_idle_ms=N]``, or its
        parsed form.
    group
        The consumer group (created at the start of the stream when missing).
    consumer
        This consumer's name: a restart under the same name takes back its own pending
        entries at once; entries of a consumer that never comes back are claimed after
        ``claim_idle_ms`` (default 60 000).
    """

    def __init__(self, url: StreamURL | str, *, group: str, consumer: str) -> None:
        self._url = parse_url(url) if isinstance(url, str) else url
        if self._url.scheme != "redis":
            raise StreamError(f"{self._url.shown}: not a redis:// URL", url=self._url.shown)
        self.url = self._url.shown
        self.stream = self._url.name
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = int(self._url.options.get("claim_idle_ms", DEFAULT_CLAIM_IDLE_MS))
        self._client = _client(self._url)
        self._group_ready = False
        # Where this consumer's own pending entries are read from; None once all are.
        self._own: str | None = "0"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        redis = redis_module()

        def create() -> None:
            try:
                self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        _call(self._url, f"creating group {self.group!r}", create)
        self._group_ready = True

    def _message(self, entry: Any) -> Message:
        raw_id, fields = entry
        entry_id = _text(raw_id)
        origin = {"stream": self.stream, "id": entry_id}
        if not fields:
            problem = "the entry was deleted from the stream before it was processed"
            return Message(entry_id, None, problem, origin=origin)
        payload = fields.get(b"data")
        if payload is None:
            names = ", ".join(sorted(_text(name) for name in fields))
            problem = f"the entry has no field 'data' (its fields: {names})"
            return Message(entry_id, None, problem, origin=origin)
        return Message(entry_id, payload, origin=origin)

    def _read_group(self, start: str, count: int, block_ms: int | None) -> list[Any]:
        redis = redis_module()

        def read() -> Any:
            try:
                return self._client.xreadgroup(
                    self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
                )
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted, and its groups with it
                    self._group_ready = False
                    gone = "the consumer group is gone; creating it again"
                    raise redis.ConnectionError(gone) from exc
                raise

        replies = _call(self._url, "XREADGROUP", read)
        for stream, entries in replies or ():
            if _text(stream) == self.stream:
                return list(entries)
        return []

    def read(self, max_count: int, latency: float, wait: float) -> list[Message]:
        """Up to ``max_count`` messages: own pending entries, claimed ones, then new ones."""
        self._ensure_group()
        if self._own is not None:
            entries = self._read_group(self._own, max_count, None)
            if entries:
                self._own = _text(entries[-1][0])
                return [self._message(entry) for entry in entries]
            self._own = None
        now = time.monotonic()
        if now >= self._next_claim:
            claimed = self._claim(max_count)
            if claimed:
                return claimed
        block = int(wait * 1000)
        entries = self._read_group(">", max_count, block if block > 0 else None)
        if entries and len(entries) < max_count and latency > 0:
            deadline = time.monotonic() + latency
            while len(entries) < max_count:
                remaining = int((deadline - time.monotonic()) * 1000)
                if remaining <= 0:
                    break
                more = self._read_group(">", max_count - len(entries), remaining)
                if not more:
                    break
                entries += more
        return [self._message(entry) for entry in entries]

    def _claim(self, count: int) -> list[Message]:
        def claim() -> Any:
            return self._client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_cursor,
                count=count,
            )

        reply = _call(self._url, "XAUTOCLAIM", claim)
        cursor, entries = _text(reply[0]), reply[1]
        self._claim_cursor = cursor
        if cursor == "0-0":  # a full pass over the pending entries: look again later
            self._next_claim = time.monotonic() + max(self.claim_idle_ms / 2000, 0.5)
        # A deleted entry comes back from XAUTOCLAIM only in the reply's third part (the
        # claim removed it from the pending list): nothing is left to process for it.
        return [self._message(entry) for entry in entries if entry is not None]

    def ack(self, messages: Sequence[Message]) -> None:
        """``XACK`` the messages."""
        ids = [message.id for message in messages]
        _call(self._url, "XACK", lambda: self._client.xack(self.stream, self.group, *ids))

    def close(self) -> None:
        """Close the connection; unacknowledged entries stay pending with this consumer."""
        self._client.close()


class RedisSink:
    """Appends outputs and dead letters to a Redis stream (``XADD``).

    Parameters
    ----------
    url
        ``redis://[user:password@]host:port/STREAM[?db=N]``, or its parsed form.
    """

    def __init__(self, url: StreamURL | str) -> None:
        self._url = parse_url(url) if isinstance(url, str) else url
        if self._url.scheme != "redis":
            raise StreamError(f"{self._url.shown}: not a redis:// URL", url=self._url.shown)
        self.url = self._url.shown
        self.stream = self._url.name
        self._client = _client(self._url)

    def write(self, items: Sequence[Outgoing]) -> None:
        """``XADD`` one entry per item, in order, in one round trip."""

        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            for item in items:
                fields: dict[str, Any] = {"data": item.data, "source_id": item.message.id}
                if item.dead:
                    fields["payload"] = item.payload if item.payload is not None else b""
                pipe.xadd(self.stream, fields)
            pipe.execute()

        _call(self._url, "XADD", write, sink=True)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()
