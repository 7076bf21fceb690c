"""Chaos: ``kill -9`` the ``packflow run --source`` consumer at random points, restart it
with the same group, and check the guarantee: no input lost, at most one batch of
duplicates per kill, order kept per stream or partition, dead letters exactly the bad
inputs. 14 kills on Redis and 6 on Kafka (whose group rejoins take seconds)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any

import confluent_kafka as ck
import pytest
import redis
from stream_helpers import KAFKA_FAST, packflow_run
from test_streams_kafka import bootstrap, headers, produce, read_topic

from packflow.streams.local import LocalRedis

pytestmark = pytest.mark.timeout(300)

BATCH = 16


def payloads(count: int) -> list[Any]:
    """Records, with a payload that is not JSON every 37th and one without x every 53rd."""
    made: list[Any] = []
    for i in range(count):
        if i % 37 == 5:
            made.append(b"garbage %d" % i)
        elif i % 53 == 11:
            made.append({"z": i})
        else:
            made.append({"x": i})
    return made


def is_bad(payload: Any) -> bool:
    return isinstance(payload, bytes) or "x" not in payload


def raw(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def index_of(payload: bytes) -> int:
    if payload.startswith(b"garbage "):
        return int(payload.split()[1])
    record = json.loads(payload)
    return int(record.get("x", record.get("z")))


def kill_at_random_points(
    args: list[str], progress: Any, total: int, kills: int, rng: random.Random
) -> list[str]:
    """Start, wait for progress, sleep a random while, ``kill -9``; ``kills`` times.

    ``progress()`` counts what the consumers wrote; once it reaches ``total`` there is no
    progress left to wait for (the later kills hit an idle consumer).
    """
    notes = []
    for _ in range(kills):
        before = progress()
        started = time.monotonic()
        process = packflow_run(args)
        try:
            # Somewhere inside the run: after a random amount of progress, then a random
            # pause that lands anywhere between a read, a write and an acknowledgement.
            target = min(before + rng.randint(1, 150), total)
            deadline = time.monotonic() + 60
            while progress() < target and time.monotonic() < deadline:
                time.sleep(0.005)
            pause = rng.uniform(0.0, 0.05)
            time.sleep(pause)
        finally:
            process.kill()
            process.communicate(timeout=30)
        took = time.monotonic() - started
        notes.append(f"killed {pause:.3f}s after {target} (from {before}, {took:.1f}s)")
    return notes


def drain(args: list[str]) -> str:
    process = packflow_run([*args, "--idle-timeout", "1.5"])
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return err


def test_redis_consumer_killed_at_random_points_loses_nothing(
    redis_server: LocalRedis, fresh: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    client = redis.Redis(port=redis_server.port)
    sent = payloads(2000)
    ids = [client.xadd(fresh, {"data": raw(p)}).decode() for p in sent]
    url = redis_server.url
    args = [
        "stream_pipelines:doubler",
        "--source",
        f"{url}/{fresh}",
        "--sink",
        f"{url}/{fresh}-out",
        "--dead-letter",
        f"{url}/{fresh}-dead",
        "--consumer",
        "chaos",
        "--max-batch-size",
        str(BATCH),
    ]
    kills = 14

    def progress() -> int:
        return int(client.xlen(fresh + "-out") + client.xlen(fresh + "-dead"))

    notes = kill_at_random_points(args, progress, len(sent), kills, rng)
    drain(args)
    where = f"seed {seed}: {notes}"

    outputs = [(f[b"source_id"].decode(), f[b"data"]) for _, f in client.xrange(fresh + "-out")]
    dead = [(f[b"source_id"].decode(), f[b"payload"]) for _, f in client.xrange(fresh + "-dead")]
    good = {i for i, p in zip(ids, sent, strict=True) if not is_bad(p)}
    bad = {i: raw(p) for i, p in zip(ids, sent, strict=True) if is_bad(p)}
    counts = Counter(source for source, _ in outputs)
    assert set(counts) == good, where  # nothing lost, nothing made up
    assert {source for source, _ in dead} == set(bad), where
    assert all(payload == bad[source] for source, payload in dead), where
    duplicates = len(outputs) + len(dead) - len(ids)
    assert duplicates <= kills * BATCH, where
    first_seen = list(dict.fromkeys(source for source, _ in outputs))
    assert first_seen == sorted(first_seen, key=lambda i: tuple(map(int, i.split("-")))), where
    expected = {
        i: json.dumps({"y": 2 * p["x"]}).encode()
        for i, p in zip(ids, sent, strict=True)
        if i in good
    }
    assert all(data == expected[source] for source, data in outputs), where
    assert client.xpending(fresh, "packflow")["pending"] == 0, where
    client.close()


def test_kafka_consumer_killed_at_random_points_loses_nothing(kafka_url: str, fresh: str) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sent = payloads(1500)
    produce(kafka_url, fresh, [(f"k{i % 4}".encode(), p) for i, p in enumerate(sent)])
    args = [
        "stream_pipelines:doubler",
        "--source",
        f"{kafka_url}/{fresh}?{KAFKA_FAST}",
        "--sink",
        f"{kafka_url}/{fresh}-out",
        "--consumer",
        "chaos",
        "--max-batch-size",
        str(BATCH),
    ]
    watcher = ck.Consumer({"bootstrap.servers": bootstrap(kafka_url), "group.id": "watcher"})

    def written() -> int:
        topic = fresh + "-out"
        found = watcher.list_topics(topic, timeout=10).topics[topic].partitions
        marks = [watcher.get_watermark_offsets(ck.TopicPartition(topic, p), 10) for p in found]
        return sum(high for _, high in marks)

    kills = 6
    try:
        notes = kill_at_random_points(args, written, len(sent), kills, rng)
    finally:
        watcher.close()
    drain(args)
    where = f"seed {seed}: {notes}"

    # Where each input landed: its (partition, offset) to its index (which every payload
    # holds: {"x": i}, {"z": i} or b"garbage i").
    placed = {
        (m.partition(), m.offset()): index_of(m.value())
        for m in read_topic(kafka_url, fresh, len(sent))
    }
    assert len(placed) == len(sent)
    found = read_topic(kafka_url, fresh + "-out")
    seen: Counter[int] = Counter()
    order: dict[bytes, list[int]] = {}
    dead: dict[int, bytes] = {}
    for message in found:
        source = json.loads(headers(message)["source"])
        value = json.loads(message.value())
        index = placed[(source["partition"], source["offset"])]
        seen[index] += 1
        if "error" in value:
            dead[index] = headers(message)["payload"]
        else:
            assert value == {"y": 2 * sent[index]["x"]}, where
        order.setdefault(message.key(), []).append(index)
    assert set(seen) == set(range(len(sent))), where  # every input answered
    assert {i for i in dead} == {i for i, p in enumerate(sent) if is_bad(p)}, where
    assert all(dead[i] == raw(sent[i]) for i in dead), where
    assert sum(seen.values()) - len(sent) <= kills * BATCH, where
    for key, indices in order.items():
        first_seen = list(dict.fromkeys(indices))
        assert first_seen == sorted(first_seen), (key, where)
