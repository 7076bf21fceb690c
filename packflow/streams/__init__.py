"""Message streams: a pipeline as a consumer of Redis Streams or Kafka, at least once.

:func:`run_stream` reads a stream as one consumer of a consumer group, runs each batch
through a built pipeline and writes the outputs to a sink, the failures to a dead-letter
destination, acknowledging an input only once what stands for it is written. The URLs
``redis://host:port/STREAM`` and ``kafka://host:port[,host:port]/TOPIC`` name the
streams; :func:`open_source` and :func:`open_sink` make the adapters from them
(:class:`RedisSource`, :class:`RedisSink`, :class:`KafkaSource`, :class:`KafkaSink`).

Nothing here imports redis-py or confluent-kafka until a stream of that kind is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packflow.streams.connect import open_sink, open_source
from packflow.streams.consume import DeadLetter, StreamSummary, run_stream
from packflow.streams.messages import DEFAULT_MAX_MESSAGE_BYTES, Message, Outgoing, Sink, Source
from packflow.streams.urls import StreamURL, parse_url

if TYPE_CHECKING:
    from packflow.streams.kafka_topics import KafkaSink, KafkaSource
    from packflow.streams.redis_streams import RedisSink, RedisSource

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DeadLetter",
    "KafkaSink",
    "KafkaSource",
    "Message",
    "Outgoing",
    "RedisSink",
    "RedisSource",
    "Sink",
    "Source",
    "StreamSummary",
    "StreamURL",
    "open_sink",
    "open_source",
    "parse_url",
    "run_stream",
]

_ADAPTERS = {
    "RedisSource": "packflow.streams.redis_streams",
    "RedisSink": "packflow.streams.redis_streams",
    "KafkaSource": "packflow.streams.kafka_topics",
    "KafkaSink": "packflow.streams.kafka_topics",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
