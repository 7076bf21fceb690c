"""Opening a stream from its URL: the adapter its scheme names, imported on first use."""

from __future__ import annotations

from packflow.streams.messages import Sink, Source
from packflow.streams.urls import default_consumer, parse_url

__all__ = ["open_sink", "open_source"]


def open_source(url: str, *, group: str = "packflow", consumer: str | None = None) -> Source:
    """The consumer-group reader for ``url`` (a :class:`RedisSource` or :class:`KafkaSource`).

    Raises
    ------
    StreamError
        For a bad URL.
    MissingExtraError
        When redis-py or confluent-kafka is not installed.
    """
    parsed = parse_url(url)
    name = consumer or default_consumer()
    if parsed.scheme == "redis":
        from packflow.streams.redis_streams import RedisSource

        return RedisSource(parsed, group=group, consumer=name)
    from packflow.streams.kafka_topics import KafkaSource

    return KafkaSource(parsed, group=group, consumer=name)


def open_sink(url: str) -> Sink:
    """The writer for ``url`` (a :class:`RedisSink` or :class:`KafkaSink`).

    Raises
    ------
    StreamError
        For a bad URL.
    MissingExtraError
        When redis-py or confluent-kafka is not installed.
    """
    parsed = parse_url(url)
    if parsed.scheme == "redis":
        from packflow.streams.redis_streams import RedisSink

        return RedisSink(parsed)
    from packflow.streams.kafka_topics import KafkaSink

    return KafkaSink(parsed)
