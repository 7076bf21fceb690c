"""Message streams: ``run_stream`` against hand-written consumer loops, and peak memory.

Run: ``python benchmarks/bench_streams.py [--messages N] [--batch B] [--rss-messages M]``
(100,000 messages, batches of 64 and a 1,000,000-message memory run by default; needs
``redis-server`` and confluent-kafka).

For each broker (a ``redis-server`` on a free loopback port, librdkafka's mock cluster)
and each pipeline (a passthrough, and the iris ONNX model of ``examples/iris``), the
same N messages are consumed by:

- packflow: ``run_stream`` (what ``packflow run --source`` runs), in process;
- a hand-written loop with the same batch size doing the same work: Redis
  ``XREADGROUP`` / ``json.loads`` / the pipeline's ``run_batch`` / ``json.dumps`` /
  pipelined ``XADD`` / ``XACK``; Kafka ``consume`` / the same / ``produce`` / ``flush``
  / synchronous ``commit``.

Before each loop the heap is collected and frozen (``gc.freeze()``, which ``packflow
run --source`` does once the pipeline is loaded). Throughput counts from the first batch
read to the last acknowledgement (a Kafka group join is not counted): the median of
``--repeat`` runs (3), the two loops alternated, with the ratio packflow / hand-written
(target >= 0.8x).
Last, ``packflow run --source redis://...`` runs as a subprocess over M messages with a
passthrough pipeline and its peak RSS is reported (memory must stay bounded: it does not
grow with M).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packflow import Pipeline, Records  # noqa: E402
from packflow.loaders import InferenceBackendLoader  # noqa: E402
from packflow.streams import Message, StreamSummary, run_stream  # noqa: E402
from packflow.streams.connect import open_source  # noqa: E402
from packflow.streams.local import LocalRedis, mock_kafka_cluster  # noqa: E402

FLOWERS = [
    json.loads(line)
    for line in (ROOT / "examples/iris/sample.jsonl").read_text().splitlines()
    if line.strip()
]


def passthrough() -> Any:
    pipe = Pipeline("passthrough", input_format="passthrough")

    @pipe.execute
    def same(records: Records) -> Records:
        return records

    return pipe.build()


def iris() -> Any:
    return InferenceBackendLoader.from_project(str(ROOT / "examples/iris"))


def payloads(count: int) -> list[bytes]:
    return [json.dumps(FLOWERS[i % len(FLOWERS)]).encode() for i in range(count)]


class Timed:
    """A source that notes when its first non-empty batch was read."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.url = source.url
        self.first: float | None = None

    @property
    def assigned(self) -> bool:
        return bool(getattr(self.source, "assigned", True))

    def read(self, max_count: int, latency: float, wait: float) -> list[Message]:
        batch: list[Message] = self.source.read(max_count, latency, wait)
        if batch and self.first is None:
            self.first = time.perf_counter()
        return batch

    def ack(self, messages: Sequence[Message]) -> None:
        self.source.ack(messages)

    def close(self) -> None:
        self.source.close()


def settle() -> None:
    """Collect, then freeze what lives on (as ``packflow run --source`` does once the
    pipeline is loaded), before each measured loop, hand-written or not."""
    gc.collect()
    gc.freeze()


def packflow_rate(runner: Any, source_url: str, sink_url: str, count: int, batch: int) -> float:
    settle()
    source = Timed(open_source(source_url, group="bench", consumer="packflow"))
    stop = threading.Event()
    done: list[float] = []

    def progress(summary: StreamSummary) -> None:
        if summary.acknowledged >= count and not done:
            done.append(time.perf_counter())
            stop.set()

    try:
        run_stream(runner, source, sink_url, max_batch_size=batch, stop=stop, progress=progress)
    finally:
        source.close()
    assert source.first is not None and done
    return count / (done[0] - source.first)


def redis_loop(runner: Any, port: int, stream: str, out: str, count: int, batch: int) -> float:
    import redis

    settle()
    client = redis.Redis(port=port)
    client.xgroup_create(stream, "hand", id="0", mkstream=True)
    done = 0
    first: float | None = None
    while done < count:
        replies = client.xreadgroup("hand", "hand", {stream: ">"}, count=batch, block=200)
        if not replies:
            continue
        if first is None:
            first = time.perf_counter()
        entries = replies[0][1]
        records = [json.loads(fields[b"data"]) for _, fields in entries]
        outputs = runner.run_batch(records)
        pipe = client.pipeline(transaction=False)
        for (entry_id, _), output in zip(entries, outputs, strict=True):
            pipe.xadd(out, {"data": json.dumps(output), "source_id": entry_id})
        pipe.execute()
        client.xack(stream, "hand", *[entry_id for entry_id, _ in entries])
        done += len(entries)
    assert first is not None
    rate = count / (time.perf_counter() - first)
    client.close()
    return rate


def kafka_loop(runner: Any, servers: str, topic: str, out: str, count: int, batch: int) -> float:
    import confluent_kafka as ck

    settle()
    consumer = ck.Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "hand",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = ck.Producer(
        {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5}
    )
    consumer.subscribe([topic])
    done = 0
    first: float | None = None
    while done < count:
        messages = [m for m in consumer.consume(batch, timeout=0.01) if m.error() is None]
        if not messages:
            continue
        if first is None:
            first = time.perf_counter()
        records = [json.loads(m.value()) for m in messages]
        outputs = runner.run_batch(records)
        for message, output in zip(messages, outputs, strict=True):
            source = {"topic": topic, "partition": message.partition(), "offset": message.offset()}
            producer.produce(
                out,
                value=json.dumps(output).encode(),
                key=message.key(),
                headers=[("source", json.dumps(source).encode())],
            )
        producer.flush()
        consumer.commit(asynchronous=False)
        done += len(messages)
    assert first is not None
    rate = count / (time.perf_counter() - first)
    consumer.close()
    return rate


def fill_redis(port: int, stream: str, data: list[bytes]) -> None:
    import redis

    client = redis.Redis(port=port)
    for start in range(0, len(data), 5000):
        pipe = client.pipeline(transaction=False)
        for payload in data[start : start + 5000]:
            pipe.xadd(stream, {"data": payload})
        pipe.execute()
    client.close()


def fill_kafka(servers: str, topic: str, data: list[bytes]) -> None:
    import confluent_kafka as ck

    producer = ck.Producer({"bootstrap.servers": servers, "linger.ms": 20})
    for i, payload in enumerate(data):
        while True:
            try:
                producer.produce(topic, value=payload, key=b"k%d" % (i % 16))
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def report(name: str, ours: float, theirs: float) -> None:
    print(
        f"{name:<28} packflow {ours:>9,.0f} msg/s   hand-written {theirs:>9,.0f} msg/s   "
        f"ratio {ours / theirs:.2f}x",
        flush=True,
    )


def bench_redis(
    count: int, batch: int, repeat: int, pipelines: dict[str, Callable[[], Any]]
) -> None:
    with LocalRedis() as server:
        for name, make in pipelines.items():
            runner = make()
            ours, theirs = [], []
            for run in range(repeat):  # alternated, so that a busy moment hits both
                a, b = f"{name}-{run}-a", f"{name}-{run}-b"
                fill_redis(server.port, a, payloads(count))
                fill_redis(server.port, b, payloads(count))
                theirs.append(redis_loop(runner, server.port, b, b + "-out", count, batch))
                ours.append(
                    packflow_rate(
                        runner, f"{server.url}/{a}", f"{server.url}/{a}-out", count, batch
                    )
                )
                with_client(
                    server.port, lambda c, a=a, b=b: c.delete(a, b, a + "-out", b + "-out")
                )
            report(f"redis, {name}", statistics.median(ours), statistics.median(theirs))


def with_client(port: int, use: Callable[[Any], Any]) -> None:
    import redis

    client = redis.Redis(port=port)
    use(client)
    client.close()


def bench_kafka(
    count: int, batch: int, repeat: int, pipelines: dict[str, Callable[[], Any]]
) -> None:
    with mock_kafka_cluster() as cluster:
        servers = cluster[len("kafka://") :]
        for name, make in pipelines.items():
            runner = make()
            ours, theirs = [], []
            for run in range(repeat):
                a, b = f"{name}-{run}-a", f"{name}-{run}-b"
                fill_kafka(servers, a, payloads(count))
                fill_kafka(servers, b, payloads(count))
                theirs.append(kafka_loop(runner, servers, b, b + "-out", count, batch))
                ours.append(
                    packflow_rate(runner, f"{cluster}/{a}", f"{cluster}/{a}-out", count, batch)
                )
            report(f"kafka, {name}", statistics.median(ours), statistics.median(theirs))


PASSTHROUGH_PROJECT = """
    from packflow import Pipeline, Records

    pipe = Pipeline("passthrough", input_format="passthrough")

    @pipe.execute
    def same(records: Records) -> Records:
        return records
"""


def bench_rss(count: int, batch: int) -> None:
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        Path(folder, "bench_passthrough.py").write_text(textwrap.dedent(PASSTHROUGH_PROJECT))
        started = time.perf_counter()
        fill_redis(server.port, "rss", payloads(count))
        filled = time.perf_counter() - started
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), folder])}
        command = [
            sys.executable,
            "-m",
            "packflow",
            "run",
            "bench_passthrough:pipe",
            "--source",
            f"{server.url}/rss",
            "--sink",
            f"{server.url}/rss-out",
            "--max-batch-size",
            str(batch),
            "--idle-timeout",
            "1",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # The peak of this process alone (redis-server is a child of this one too, so the
        # children's rusage would count the server's memory).
        peak_kib = 0
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        took = time.perf_counter() - started
        assert process.stderr is not None
        summary = process.stderr.read().decode().strip().splitlines()[-1]
        print(f"filled {count:,} entries in {filled:.1f}s", flush=True)
        print(f"packflow run --source redis: {summary}", flush=True)
        print(
            f"{count:,} messages in {took:.1f}s (startup included, {count / took:,.0f} msg/s); "
            f"peak RSS {peak_kib / 1024:.1f} MiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rss-messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    parser.add_argument("--only", choices=("redis", "kafka", "rss"), default=None)
    args = parser.parse_args()
    pipelines = {"passthrough": passthrough, "iris": iris}
    print(
        f"{args.messages:,} messages, batches of {args.batch}, median of {args.repeat} runs",
        flush=True,
    )
    if args.only in (None, "redis"):
        bench_redis(args.messages, args.batch, args.repeat, pipelines)
    if args.only in (None, "kafka"):
        bench_kafka(args.messages, args.batch, args.repeat, pipelines)
    if args.only in (None, "rss"):
        bench_rss(args.rss_messages, args.batch)


if __name__ == "__main__":
    main()
