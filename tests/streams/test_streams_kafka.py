"""``run_stream`` and ``packflow run --source`` on librdkafka's mock cluster (real Kafka
protocol on loopback TCP, hosted by a client of the test session)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import confluent_kafka as ck
import pytest
from stream_helpers import KAFKA_FAST, packflow_run
from stream_pipelines import doubler

from packflow.exceptions import MissingExtraError, SinkRefusedError
from packflow.streams import KafkaSink, run_stream

pytestmark = pytest.mark.timeout(180)


def bootstrap(url: str) -> str:
    return url[len("kafka://") :]


def produce(url: str, topic: str, messages: list[tuple[bytes | None, Any]]) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap(url), "log_level": 3})
    for key, value in messages:
        data = json.dumps(value).encode() if isinstance(value, dict) else value
        producer.produce(topic, key=key, value=data)
    assert producer.flush(30) == 0


def read_topic(url: str, topic: str, count: int | None = None, timeout: float = 60.0) -> list[Any]:
    """The first ``count`` messages of ``topic`` (default: all), from every partition."""
    consumer = ck.Consumer(
        {"bootstrap.servers": bootstrap(url), "group.id": "reader", "log_level": 3}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        if count is None:
            marks = [
                consumer.get_watermark_offsets(ck.TopicPartition(topic, p), 10) for p in partitions
            ]
            count = sum(high - low for low, high in marks)
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in partitions])
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.5) if m.error() is None]
        return found
    finally:
        consumer.close()


def committed(url: str, topic: str, group: str = "packflow") -> int:
    """How many messages of ``topic`` the group has committed, over all partitions."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap(url), "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([ck.TopicPartition(topic, p) for p in partitions], 10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def headers(message: Any) -> dict[str, bytes]:
    return dict(message.headers() or [])


def test_outputs_keep_the_key_name_their_source_and_keep_order_per_partition(
    kafka_url: str, fresh: str
) -> None:
    inputs: list[tuple[bytes | None, Any]] = [
        (f"k{i % 3}".encode(), {"x": i} if i % 10 != 7 else b"not json") for i in range(60)
    ]
    produce(kafka_url, fresh, inputs)
    summary = run_stream(
        doubler.build(),
        f"{kafka_url}/{fresh}?{KAFKA_FAST}",
        f"{kafka_url}/{fresh}-out",
        max_batch_size=8,
        idle_timeout=1.0,
    )
    assert (summary.read, summary.written, summary.dead_lettered) == (60, 54, 6)
    assert summary.acknowledged == 60 and committed(kafka_url, fresh) == 60
    found = read_topic(kafka_url, fresh + "-out", 60)
    assert len(found) == 60
    by_key: dict[bytes, list[int]] = {}
    for message in found:
        source = json.loads(headers(message)["source"])
        assert set(source) == {"topic", "partition", "offset"} and source["topic"] == fresh
        value = json.loads(message.value())
        if "error" in value:
            assert value["error"]["type"] == "InvalidMessage"
            assert headers(message)["payload"] == b"not json"
            continue
        assert "payload" not in headers(message)
        by_key.setdefault(message.key(), []).append(value["y"] // 2)
    assert set(by_key) == {b"k0", b"k1", b"k2"}
    for key, xs in by_key.items():
        expected = [i for i in range(60) if f"k{i % 3}".encode() == key and i % 10 != 7]
        assert xs == expected  # one key, one partition: the input order


def test_packflow_run_consumes_a_topic_into_a_sink_and_a_dead_letter_topic(
    kafka_url: str, fresh: str
) -> None:
    produce(kafka_url, fresh, [(None, {"x": 1}), (b"a", {"z": 1}), (None, b"[]")])
    process = packflow_run(
        [
            "stream_pipelines:doubler",
            "--source",
            f"{kafka_url}/{fresh}?{KAFKA_FAST}",
            "--sink",
            f"{kafka_url}/{fresh}-out",
            "--dead-letter",
            f"{kafka_url}/{fresh}-dead",
            "--group",
            "cli",
            "--idle-timeout",
            "1",
        ]
    )
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "stopped (idle for 1s); 3 read, 1 written, 2 dead-lettered, 3 acknowledged" in err
    assert [json.loads(m.value()) for m in read_topic(kafka_url, fresh + "-out", 1)] == [{"y": 2}]
    dead = read_topic(kafka_url, fresh + "-dead", 2)
    assert sorted(headers(m)["payload"] for m in dead) == [b"[]", b'{"z": 1}']
    keyed = next(m for m in dead if m.key() == b"a")
    assert json.loads(keyed.value())["error"]["type"] == "KeyError"
    assert committed(kafka_url, fresh, group="cli") == 3


def test_a_missing_confluent_kafka_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'packflow\[kafka\]'"):
        KafkaSink("kafka://127.0.0.1:1/t")


def test_a_sink_that_refuses_a_message_stops_the_consumer_without_committing(
    kafka_url: str, fresh: str
) -> None:
    produce(kafka_url, fresh, [(None, {"x": 1}), (None, {"z": "p" * 990})])
    with pytest.raises(SinkRefusedError, match=r"too large|MSG_SIZE_TOO_LARGE"):
        run_stream(
            doubler.build(),
            f"{kafka_url}/{fresh}?{KAFKA_FAST}",
            f"{kafka_url}/{fresh}-out",
            # The dead letter carries the 1 kB payload back: over this producer's limit.
            dead_letter=f"{kafka_url}/{fresh}-dead?message.max.bytes=1000",
            idle_timeout=1.0,
        )
    assert committed(kafka_url, fresh) == 0
