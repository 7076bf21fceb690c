"""Streaming single events: ``stream``, the batchers and ``on_error="row"``.

Run: ``python benchmarks/bench_stream.py [--events N]`` (100,000 events by default).

The model has a fixed cost per call plus a cost per row, as real models do: a numpy
MLP over the batch's features (64 -> 256 -> 1) plus a fixed matmul per call (about
50 us, standing for a runtime's dispatch). Both release the GIL, as onnxruntime and
torch do. Every measurement is
the median of ``REPEAT`` runs, reported as a ratio against a hand-written baseline run
in the same process:

- ``stream()`` over N single events against a hand-written loop that cuts the same
  events into batches of the same size and calls the model (target: >= 0.8x), and
  against calling the pipeline once per event (target: >= 10x);
- a paced source (one event every ``PACE_US``): p50 and p99 of (output time - arrival
  time), against ``max_latency_ms`` plus one batch's compute time (target: p99 within);
- ``async_batcher`` with 1,000 concurrent submitters against the hand-written loop
  (target: >= 0.7x);
- ``on_error="row"`` with no bad record against ``on_error="raise"`` on batches of
  1,000 records (target: within noise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# One BLAS thread, so that the model's cost is the same in every mode and the comparison
# is not a race for the machine's cores (set before numpy is imported).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from packflow import Pipeline, Records  # noqa: E402

REPEAT = 5
BATCH = 64
LATENCY_MS = 10.0
FIXED_SIDE = 160
PACE_US = 200.0
CLIENTS = 1000
FEATURES = 64

rng = np.random.default_rng(0)
#: The MLP's hidden width: the model's cost per row (``--hidden``).
W1 = rng.standard_normal((FEATURES, 256))
W2 = rng.standard_normal((256, 1))


def set_hidden(width: int) -> None:
    global W1, W2
    W1 = rng.standard_normal((FEATURES, width))
    W2 = rng.standard_normal((width, 1))


FIXED = rng.standard_normal((FIXED_SIDE, FIXED_SIDE))


def model(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    FIXED @ FIXED  # the fixed cost of a call
    features = np.array([r["features"] for r in records])
    scores = np.maximum(features @ W1, 0.0) @ W2
    return [{"score": s} for s in scores[:, 0].tolist()]


def make_pipeline() -> Any:
    pipe = Pipeline("bench")

    @pipe.execute
    def score(records: Records) -> Records:
        return model(records)

    return pipe.build()


def make_events(count: int) -> list[dict[str, Any]]:
    rows = rng.standard_normal((count, FEATURES)).tolist()
    return [{"features": row} for row in rows]


def median_s(run: Callable[[], Any], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def handwritten_loop(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == BATCH:
            outputs += model(batch)
            batch = []
    if batch:
        outputs += model(batch)
    return outputs


def throughput(events: list[dict[str, Any]]) -> None:
    built = make_pipeline()
    assert list(built.stream(iter(events[:500]), max_batch_size=BATCH)) == handwritten_loop(
        events[:500]
    )
    n = len(events)
    loop = median_s(lambda: handwritten_loop(events))
    # A generator, so that the reader thread and the buffer are measured, not a list slice.
    stream = median_s(lambda: list(built.stream(iter(events), max_batch_size=BATCH)))
    few = events[: max(1, n // 20)]
    one_by_one = median_s(lambda: [built(event) for event in few], repeat=3) * n / len(few)
    print(f"stream, {n} single events, batches of {BATCH}")
    print(f"  hand-written batching loop: {n / loop:10.0f} events/s")
    print(f"  built.stream(generator):    {n / stream:10.0f} events/s")
    print(f"  one call per event:         {n / one_by_one:10.0f} events/s (from {len(few)})")
    print(f"  stream / loop:       {loop / stream:.2f}x   (target >= 0.8x)")
    print(f"  stream / per-event:  {one_by_one / stream:.1f}x   (target >= 10x)")


def paced_latency(count: int) -> None:
    built = make_pipeline()
    events = make_events(count)
    arrivals: list[float] = []

    def paced() -> Iterator[dict[str, Any]]:
        next_at = time.perf_counter()
        for event in events:
            wait = next_at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            arrivals.append(time.perf_counter())
            yield event
            next_at += PACE_US / 1e6

    latencies = []
    computes = []  # each batch's own time in the pipeline, as its metrics say
    stream = built.stream(paced(), max_batch_size=BATCH, max_latency_ms=LATENCY_MS)
    for i, _ in enumerate(stream):
        latencies.append((time.perf_counter() - arrivals[i]) * 1e3)
        if stream.answered == stream.received:
            computes.append(built.get_metrics().total_execution_time)
    p50, p99 = np.percentile(latencies, [50, 99])
    compute_ms = float(np.percentile(computes, 99))
    bound = LATENCY_MS + compute_ms
    print(f"paced source, one event every {PACE_US:.0f} us, {count} events")
    print(f"  one batch's compute (p99 over the run's batches): {compute_ms:.2f} ms")
    print(f"  latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms")
    print(f"  p99 <= max_latency_ms + one batch's compute ({bound:.2f} ms): {p99 <= bound}")


def async_batcher(events: list[dict[str, Any]]) -> None:
    built = make_pipeline()
    n = len(events)

    async def serve() -> list[Any]:
        # 1,000 clients, each submitting its share of the events one after the other
        # (a closed loop, as callers awaiting a reply before their next request are).
        outputs: list[Any] = [None] * n
        async with built.async_batcher(max_batch_size=BATCH, max_latency_ms=LATENCY_MS) as b:

            async def client(first: int) -> None:
                for i in range(first, n, CLIENTS):
                    outputs[i] = await b.submit(events[i])

            await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        return outputs

    async def by_hand() -> list[Any]:
        # The least an asyncio batcher must do: a future per event, one collector that
        # takes up to BATCH of them and runs the model in a worker thread.
        outputs: list[Any] = [None] * n
        loop = asyncio.get_running_loop()
        pending: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        ready = asyncio.Event()
        done = False

        async def client(first: int) -> None:
            for i in range(first, n, CLIENTS):
                answer = loop.create_future()
                pending.append((events[i], answer))
                ready.set()
                outputs[i] = await answer

        async def collector() -> None:
            while not done or pending:
                if not pending:
                    ready.clear()
                    await ready.wait()
                    continue
                taken = pending[:BATCH]
                del pending[:BATCH]
                results = await loop.run_in_executor(None, model, [e for e, _ in taken])
                for (_, answer), result in zip(taken, results, strict=True):
                    answer.set_result(result)

        task = loop.create_task(collector())
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        done = True
        ready.set()
        await task
        return outputs

    assert asyncio.run(serve()) == handwritten_loop(events)
    loop = median_s(lambda: handwritten_loop(events))
    batched = median_s(lambda: asyncio.run(serve()))
    floor = median_s(lambda: asyncio.run(by_hand()))
    print(f"async_batcher, {n} events, 1,000 concurrent submitters")
    print(f"  hand-written loop         {n / loop:10.0f} events/s")
    print(f"  hand-written asyncio batcher {n / floor:7.0f} events/s (no latency bound)")
    print(f"  async_batcher             {n / batched:10.0f} events/s")
    print(f"  async_batcher / loop: {loop / batched:.2f}x   (target >= 0.7x)")
    print(f"  async_batcher / hand-written asyncio: {floor / batched:.2f}x")


def threaded_batcher(events: list[dict[str, Any]]) -> None:
    built = make_pipeline()
    n = len(events) // 10

    def run() -> None:
        with built.batcher(max_batch_size=BATCH, max_latency_ms=LATENCY_MS) as batcher:
            parts = [events[i:n:8] for i in range(8)]
            threads = [
                threading.Thread(target=lambda p=p: [batcher.submit(e) for e in p]) for p in parts
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    loop = median_s(lambda: handwritten_loop(events[:n]))
    batched = median_s(run)
    print(f"batcher, {n} events from 8 threads")
    print(f"  batcher / loop: {loop / batched:.2f}x")


def on_error_cost() -> None:
    built = make_pipeline()
    batch = make_events(1000)
    raise_s = median_s(lambda: [built(batch) for _ in range(20)], repeat=9)
    row_s = median_s(lambda: [built(batch, on_error="row") for _ in range(20)], repeat=9)
    print("on_error, batches of 1,000 records, no bad record")
    print(
        f"  model:    raise {raise_s / 20 * 1e3:.3f} ms/call, row {row_s / 20 * 1e3:.3f} ms/call"
    )
    print(f"  row / raise: {row_s / raise_s:.3f}x   (target: within noise)")
    # The same on a pipeline that does nothing, where packflow's own cost is all there is.
    identity = Pipeline("identity")

    @identity.execute
    def same(records: Records) -> Records:
        return records

    cheap = identity.build()
    records = [{"a": i} for i in range(1000)]
    raise_s = median_s(lambda: [cheap(records) for _ in range(2000)], repeat=9)
    row_s = median_s(lambda: [cheap(records, on_error="row") for _ in range(2000)], repeat=9)
    print(
        f"  identity: raise {raise_s / 2000 * 1e6:.2f} us/call, "
        f"row {row_s / 2000 * 1e6:.2f} us/call, row / raise {row_s / raise_s:.3f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--hidden", type=int, default=256, help="the model's hidden width (cost per row)"
    )
    args = parser.parse_args()
    set_hidden(args.hidden)
    print(f"model: MLP {FEATURES} -> {args.hidden} -> 1, plus a fixed matmul per call")
    events = make_events(args.events)
    throughput(events)
    paced_latency(min(args.events, 5_000))
    async_batcher(events[: min(args.events, 50_000)])
    threaded_batcher(events)
    on_error_cost()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
