"""Kafka through confluent-kafka (extra ``kafka``): a consumer-group source and a sink.

:class:`KafkaSource` subscribes to a topic as a member of a consumer group (the broker
assigns the partitions; several consumers in one group share them). Offsets are never
committed automatically: ``ack`` commits, synchronously, the offset after the last
message of each partition in the batch, once the batch's outputs are delivered. A fresh
group starts at the earliest offset, so that messages produced before the first
consumer started are consumed too.

:class:`KafkaSink` is an idempotent producer (ordered per partition, no duplicates from
its own retries). An output's value is its JSON; its key is the input's key (so the
output lands on the partition its key chooses); its header ``source`` is a JSON object
naming where the input came from (``{"topic", "partition", "offset"}``, or ``{"stream",
"id"}`` for a Redis input). A dead letter also has the header ``payload``, the input's
original value, byte for byte. ``write`` returns once the broker acknowledged every
message.

Any librdkafka property can be set in the URL's query string:
``kafka://host:9092/in?session.timeout.ms=6000``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from packflow.exceptions import (
    MissingExtraError,
    SinkRefusedError,
    StreamError,
    StreamUnavailableError,
)
from packflow.streams.messages import Message, Outgoing
from packflow.streams.urls import StreamURL, parse_url

__all__ = ["KafkaSink", "KafkaSource", "kafka_module"]

#: How long one ``write`` waits for deliveries before it reports the wait.
_DELIVERY_REPORT_AFTER = 5.0


def kafka_module() -> ModuleType:
    """confluent-kafka, imported now.

    Raises
    ------
    MissingExtraError
        When it is not installed, naming the extra ``kafka``.
    """
    try:
        import confluent_kafka
    except ImportError as exc:
        raise MissingExtraError(
            "kafka:// streams need confluent-kafka, which is not installed; install it with "
            "pip install 'packflow[kafka]'",
            package="confluent_kafka",
            extra="kafka",
        ) from exc
    return confluent_kafka


def _kafka_url(url: StreamURL | str) -> StreamURL:
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.scheme != "kafka":
        raise StreamError(f"{parsed.shown}: not a kafka:// URL", url=parsed.shown)
    return parsed


def _config(url: StreamURL) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(f"{host}:{port}" for host, port in url.hosts),
        # A broker that closes an idle connection is not news worth a line on stderr.
        "log.connection.close": False,
    }
    if url.username:
        config.update({"sasl.username": url.username, "sasl.password": url.password or ""})
    config.update(url.options)
    return config


class KafkaSource:
    """A member of a consumer group on a Kafka topic, committing offsets by hand.

    Parameters
    ----------
    url
        ``kafka://host:port[,host:port]/TOPIC[?librdkafka.property=value&...]``, or its
        parsed form.
    group
        The consumer group (``group.id``).
    consumer
        This consumer's ``client.id``.
    """

    def __init__(self, url: StreamURL | str, *, group: str, consumer: str) -> None:
        kafka = kafka_module()
        self._url = _kafka_url(url)
        self.url = self._url.shown
        self.topic = self._url.name
        self._problem: Any = None
        #: Whether the group gave this consumer partitions yet (an idle clock waits).
        self.assigned = False
        config = {
            "group.id": group,
            "client.id": consumer,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "error_cb": self._on_error,
            **_config(self._url),
        }
        try:
            self._consumer = kafka.Consumer(config)
        except kafka.KafkaException as exc:
            raise StreamError(f"{self.url}: {exc}", url=self.url) from exc
        self._consumer.subscribe([self.topic], on_assign=self._on_assign)

    def _on_error(self, error: Any) -> None:
        self._problem = error

    def _on_assign(self, consumer: Any, partitions: Any) -> None:
        self.assigned = True

    def _raise_problem(self) -> None:
        problem, self._problem = self._problem, None
        if problem is None:
            return
        if problem.fatal():
            raise StreamError(f"{self.url}: {problem.str()}", url=self.url)
        raise StreamUnavailableError(f"{self.url}: {problem.str()}", url=self.url)

    def _keep(self, messages: list[Any]) -> list[Message]:
        kafka = kafka_module()
        kept: list[Message] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != kafka.KafkaError._PARTITION_EOF:
                    self._problem = error
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            kept.append(
                Message(
                    f"{topic}/{partition}/{offset}",
                    message.value(),
                    key=message.key(),
                    origin={"topic": topic, "partition": partition, "offset": offset},
                )
            )
        return kept

    def read(self, max_count: int, latency: float, wait: float) -> list[Message]:
        """Up to ``max_count`` messages, in order within each partition."""
        consumer = self._consumer
        raw = consumer.consume(max_count, timeout=latency) if latency > 0 else []
        if not raw:
            first = consumer.poll(wait)
            if first is None:
                self._raise_problem()
                return []
            raw = [first]
            if max_count > 1:
                raw += consumer.consume(max_count - 1, timeout=latency)
        messages = self._keep(raw)
        if not messages:
            self._raise_problem()
        return messages

    def ack(self, messages: Sequence[Message]) -> None:
        """Commit the offset after the last message of each partition, synchronously.

        A partition that moved to another consumer meanwhile is skipped: its new owner
        gets the batch again (the at-most-one-batch duplicates of a rebalance).
        """
        kafka = kafka_module()
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            where = (message.origin["topic"], message.origin["partition"])
            last[where] = max(last.get(where, -1), message.origin["offset"])
        offsets = [kafka.TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except kafka.KafkaException as exc:
            error: Any = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, kafka.KafkaError) else None
            moved = {
                kafka.KafkaError.REBALANCE_IN_PROGRESS,
                kafka.KafkaError.ILLEGAL_GENERATION,
                kafka.KafkaError.UNKNOWN_MEMBER_ID,
                kafka.KafkaError._ASSIGNMENT_LOST,
                kafka.KafkaError._NO_OFFSET,
            }
            if code in moved:
                return
            if isinstance(error, kafka.KafkaError) and error.fatal():
                raise StreamError(f"{self.url}: commit: {exc}", url=self.url) from exc
            raise StreamUnavailableError(f"{self.url}: commit: {exc}", url=self.url) from exc

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        self._consumer.close()


class KafkaSink:
    """An idempotent producer writing outputs and dead letters to a Kafka topic.

    Parameters
    ----------
    url
        ``kafka://host:port[,host:port]/TOPIC[?librdkafka.property=value&...]``, or its
        parsed form.
    """

    def __init__(self, url: StreamURL | str) -> None:
        kafka = kafka_module()
        self._url = _kafka_url(url)
        self.url = self._url.shown
        self.topic = self._url.name
        self._problem: Any = None
        config = {
            "enable.idempotence": True,
            "linger.ms": 5,
            "error_cb": self._on_error,
            # Only failures come back one by one: a batch is delivered once the queue is
            # empty and no failure was reported (a callback per message costs as much as
            # the rest of the write).
            "delivery.report.only.error": True,
            "on_delivery": self._delivered,
            **_config(self._url),
        }
        try:
            self._producer = kafka.Producer(config)
        except kafka.KafkaException as exc:
            raise StreamError(f"{self.url}: {exc}", url=self.url) from exc
        # The batch being delivered: written again only once its delivery failed.
        self._sending: Sequence[Outgoing] | None = None
        self._failures: list[Any] = []

    def _on_error(self, error: Any) -> None:
        self._problem = error

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._failures.append(error)

    def _produce(self, items: Sequence[Outgoing]) -> None:
        kafka = kafka_module()
        self._failures = []
        producer = self._producer
        for item in items:
            headers = [("source", json.dumps(dict(item.message.origin)).encode())]
            if item.dead:
                headers.append(("payload", item.payload or b""))
            while True:
                try:
                    producer.produce(
                        self.topic, value=item.data.encode(), key=item.message.key, headers=headers
                    )
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.1)
                    continue
                except kafka.KafkaException as exc:
                    raise SinkRefusedError(f"{self.url}: {exc}", url=self.url) from exc
                break
        self._sending = items

    def write(self, items: Sequence[Outgoing]) -> None:
        """Produce the items, in order; return once every one is delivered.

        Raises
        ------
        StreamUnavailableError
            When deliveries take longer than 5 s (called again with the same items, it
            goes on waiting for them) or failed for a reason worth retrying (then the
            next call produces them again).
        SinkRefusedError
            When the broker refused a message for good (too large, not authorized).
        """
        if self._sending is not items:
            self._produce(items)
        started = time.monotonic()
        while (waiting := self._producer.flush(0.5)) > 0:
            if time.monotonic() - started > _DELIVERY_REPORT_AFTER:
                problem = self._problem.str() if self._problem is not None else "no answer"
                raise StreamUnavailableError(
                    f"{self.url}: {waiting} messages not delivered yet ({problem})",
                    url=self.url,
                )
        self._sending = None
        if self._failures:
            error = self._failures[0]
            if error.retriable() or error.code() == kafka_module().KafkaError._MSG_TIMED_OUT:
                raise StreamUnavailableError(
                    f"{self.url}: delivery failed: {error.str()}", url=self.url
                )
            raise SinkRefusedError(f"{self.url}: delivery refused: {error.str()}", url=self.url)

    def close(self) -> None:
        """Deliver what is queued (for up to 10 s), then let the producer go."""
        self._producer.flush(10.0)
