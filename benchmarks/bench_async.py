"""Async stages: concurrent ``acall``s, the async batcher on the loop, event-loop lag.

Run: ``python benchmarks/bench_async.py [--events N]`` (50,000 events by default).

The batcher measurements use ``bench_stream.py``'s model (a numpy MLP plus a fixed
matmul per call). Every figure is the median of ``REPEAT`` runs, the contenders of one
measurement taking turns, so that a busy machine slows them alike:

- 1,000 concurrent ``acall``s, one record each, through a stage that awaits 10 ms of I/O
  (``asyncio.sleep``): the wall time of the lot (target: <= 50 ms);
- the async batcher, 1,000 concurrent clients, on a pipeline whose ``execute`` is
  ``async def`` (the model runs on the loop, no thread hop), against a loop over
  pre-formed batches (target >= 0.6x), a minimal hand-written asyncio batcher (a future
  per event, one collector, the model in a worker thread; target >= 1.1x), and Ray
  Serve's ``@serve.batch`` on the same work when Ray Serve imports (its replica context
  set by hand, as Ray's own tests do);
- packflow's own cost per event in the async batcher, on a model that does nothing,
  against the same hand-written batcher: this batcher and the one before async stages
  (``git show fa02bb5:packflow/runtime/streaming.py``), when git can give it;
- event-loop lag (how late a 1 ms timer fires) while ``acall``s run a 200 ms plain
  stage, which runs in a worker thread (target: p99 <= 5 ms), and the same stage marked
  ``run_inline`` for contrast.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_stream import BATCH, CLIENTS, LATENCY_MS, handwritten_loop, make_events, model

from packflow import Pipeline, Records, run_inline

REPEAT = 5
HERE = Path(__file__).resolve().parent


def median_each(
    runs: dict[str, Callable[[], Any]],
    repeat: int = REPEAT,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Seconds per run of each contender (median), taking turns."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = clock()
            run()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# -- 1,000 concurrent acalls ------------------------------------------------------------


def concurrent_acalls() -> None:
    pipe = Pipeline("io")

    @pipe.execute
    async def fetch(records: Records) -> Records:
        await asyncio.sleep(0.01)
        return records

    built = pipe.build()

    async def wall() -> float:
        start = time.perf_counter()
        outputs = await asyncio.gather(*(built.acall({"i": i}) for i in range(1000)))
        elapsed = time.perf_counter() - start
        assert outputs == [{"i": i} for i in range(1000)]
        return elapsed

    async def floor() -> float:
        # asyncio alone: 1,000 tasks that each await the same 10 ms.
        async def one(record: Any) -> Any:
            await asyncio.sleep(0.01)
            return record

        start = time.perf_counter()
        await asyncio.gather(*(one({"i": i}) for i in range(1000)))
        return time.perf_counter() - start

    walls, floors, cpu = [], [], []
    for _ in range(REPEAT):
        start = time.process_time()
        walls.append(asyncio.run(wall()))
        cpu.append(time.process_time() - start)
        floors.append(asyncio.run(floor()))
    print("1,000 concurrent acalls, one record each, a stage awaiting asyncio.sleep(0.01)")
    print(
        f"  wall time: median {statistics.median(walls) * 1e3:.1f} ms, "
        f"max {max(walls) * 1e3:.1f} ms   (target <= 50 ms)"
    )
    print(
        f"  CPU time of the lot (with the loop's start and end): median "
        f"{statistics.median(cpu) * 1e3:.1f} ms (the 10 ms wait is not CPU)"
    )
    print(
        f"  asyncio alone (1,000 bare tasks awaiting 10 ms): median "
        f"{statistics.median(floors) * 1e3:.1f} ms"
    )


# -- the async batcher -------------------------------------------------------------------


def closed_loop(
    submit: Callable[[Any], Awaitable[Any]], events: list[Any], outputs: list[Any]
) -> list[Awaitable[Any]]:
    """1,000 clients, each submitting its share one after the other (as callers that
    await a reply before their next request do)."""
    n = len(events)

    async def client(first: int) -> None:
        for i in range(first, n, CLIENTS):
            outputs[i] = await submit(events[i])

    return [client(c) for c in range(CLIENTS)]


def with_batcher(built: Any, events: list[Any], batcher_class: Any = None) -> list[Any]:
    async def serve() -> list[Any]:
        outputs: list[Any] = [None] * len(events)
        if batcher_class is None:
            batcher = built.async_batcher(max_batch_size=BATCH, max_latency_ms=LATENCY_MS)
        else:
            from packflow.runtime.contracts import BatchOptions

            batcher = batcher_class(built, BatchOptions(BATCH, LATENCY_MS))
        async with batcher:
            await asyncio.gather(*closed_loop(batcher.submit, events, outputs))
        return outputs

    return asyncio.run(serve())


def by_hand(events: list[Any], work: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """bench_stream.py's minimal asyncio batcher: a future per event, one collector that
    takes up to BATCH of them and runs ``work`` in a worker thread."""

    async def serve() -> list[Any]:
        loop = asyncio.get_running_loop()
        pending: list[tuple[Any, asyncio.Future[Any]]] = []
        ready = asyncio.Event()
        done = False

        async def submit(event: Any) -> Any:
            answer = loop.create_future()
            pending.append((event, answer))
            ready.set()
            return await answer

        async def collector() -> None:
            while not done or pending:
                if not pending:
                    ready.clear()
                    await ready.wait()
                    continue
                taken = pending[:BATCH]
                del pending[:BATCH]
                results = await loop.run_in_executor(None, work, [e for e, _ in taken])
                for (_, answer), result in zip(taken, results, strict=True):
                    answer.set_result(result)

        outputs: list[Any] = [None] * len(events)
        task = loop.create_task(collector())
        await asyncio.gather(*closed_loop(submit, events, outputs))
        done = True
        ready.set()
        await task
        return outputs

    return asyncio.run(serve())


def serve_batch(events: list[Any]) -> Callable[[], list[Any]] | str:
    """Ray Serve's ``@serve.batch`` on the model, or why it cannot run here."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        from ray import serve
        from ray.serve import context
        from ray.serve._private.common import DeploymentID, ReplicaID
        from ray.serve._private.config import DeploymentConfig
        from ray.serve.schema import ReplicaRank
    except Exception as exc:  # not installed, or without its serve extras
        return f"Ray Serve does not import here ({type(exc).__name__}: {exc})"
    # What a replica sets before user code runs (Ray's own batching tests do the same).
    context._set_internal_replica_context(
        replica_id=ReplicaID(unique_id="bench", deployment_id=DeploymentID(name="bench")),
        servable_object=None,
        _deployment_config=DeploymentConfig(max_ongoing_requests=CLIENTS),
        rank=ReplicaRank(rank=0, node_rank=0, local_rank=0),
        world_size=1,
    )

    def run() -> list[Any]:
        @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=LATENCY_MS / 1e3)
        async def handle(batch: list[Any]) -> list[Any]:
            return model(batch)

        async def main() -> list[Any]:
            outputs: list[Any] = [None] * len(events)
            await asyncio.gather(*closed_loop(handle, events, outputs))
            return outputs

        return asyncio.run(main())

    return run


def async_pipeline(work: Callable[[list[Any]], list[Any]]) -> Any:
    pipe = Pipeline("bench-async")

    @pipe.execute
    async def score(records: Records) -> Records:
        return work(records)

    return pipe.build()


def plain_pipeline(work: Callable[[list[Any]], list[Any]]) -> Any:
    pipe = Pipeline("bench-plain")

    @pipe.execute
    def score(records: Records) -> Records:
        return work(records)

    return pipe.build()


def async_batcher(events: list[Any]) -> None:
    n = len(events)
    on_loop, in_thread = async_pipeline(model), plain_pipeline(model)
    expected = handwritten_loop(events)
    assert with_batcher(on_loop, events) == expected
    runs: dict[str, Callable[[], Any]] = {
        "loop": lambda: handwritten_loop(events),
        "hand": lambda: by_hand(events, model),
        "async": lambda: with_batcher(on_loop, events),
        "plain": lambda: with_batcher(in_thread, events),
    }
    ray = serve_batch(events)
    if not isinstance(ray, str):
        assert ray() == expected
        runs["ray"] = ray
    t = median_each(runs)
    print(f"async_batcher, {n} events, {CLIENTS:,} concurrent clients, bench_stream's model")
    print(f"  loop over pre-formed batches      {n / t['loop']:10.0f} events/s")
    print(f"  hand-written asyncio batcher      {n / t['hand']:10.0f} events/s")
    print(f"  async_batcher, async pipeline     {n / t['async']:10.0f} events/s (on the loop)")
    print(f"  async_batcher, plain pipeline     {n / t['plain']:10.0f} events/s (worker thread)")
    if "ray" in t:
        print(f"  Ray Serve @serve.batch            {n / t['ray']:10.0f} events/s")
    else:
        print(f"  Ray Serve @serve.batch: not run: {ray}")
    print(f"  async pipeline / loop:         {t['loop'] / t['async']:.2f}x   (target >= 0.6x)")
    print(f"  async pipeline / hand-written: {t['hand'] / t['async']:.2f}x   (target >= 1.1x)")
    print(f"  plain pipeline / hand-written: {t['hand'] / t['plain']:.2f}x")
    if "ray" in t:
        print(f"  async pipeline / Ray Serve:    {t['ray'] / t['async']:.2f}x")
        print(f"  plain pipeline / Ray Serve:    {t['ray'] / t['plain']:.2f}x")


def _batcher_before_async() -> Any | None:
    """The AsyncBatcher of commit fa02bb5 (before async stages), or None."""
    try:
        source = subprocess.run(
            ["git", "show", "fa02bb5:packflow/runtime/streaming.py"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "streaming_before_async.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("streaming_before_async", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.AsyncBatcher


def identity(records: list[Any]) -> list[Any]:
    return records


def own_cost(events: list[Any]) -> None:
    n = len(events)
    plain = plain_pipeline(identity)
    runs: dict[str, Callable[[], Any]] = {
        "hand": lambda: by_hand(events, identity),
        "now": lambda: with_batcher(plain, events),
    }
    before = _batcher_before_async()
    if before is not None:
        runs["before"] = lambda: with_batcher(plain, events, before)
    # CPU time of the process (every thread): what the code costs, less swayed than wall
    # time by the other processes of a busy machine.
    t = median_each(runs, repeat=REPEAT + 4, clock=time.process_time)
    hand_us = t["hand"] / n * 1e6
    print(f"packflow's own cost per event, {n} events, a model that does nothing (CPU time)")
    print(f"  hand-written asyncio batcher:           {hand_us:6.2f} us/event")
    now = t["now"] / n * 1e6
    print(f"  async_batcher now:                      {now:6.2f} us/event ({now - hand_us:+.2f})")
    if "before" in t:
        was = t["before"] / n * 1e6
        print(
            f"  async_batcher before async stages:      {was:6.2f} us/event ({was - hand_us:+.2f})"
        )
        if was > hand_us:
            ratio = (now - hand_us) / (was - hand_us)
            print(f"  additions now / before: {ratio:.2f}x (goal <= 0.5x)")


# -- event-loop lag ------------------------------------------------------------------------


def loop_lag() -> None:
    def slow_pipeline(inline: bool) -> Any:
        pipe = Pipeline("slow-plain")

        def wait(records: Records) -> Records:
            time.sleep(0.2)  # a synchronous client's call
            return records

        pipe.add_transform_inputs(run_inline(wait) if inline else wait)

        @pipe.execute
        async def echo(records: Records) -> Records:
            return records

        return pipe.build()

    async def lags(built: Any) -> list[float]:
        late: list[float] = []
        running = True

        async def ticker() -> None:
            while running:
                start = time.perf_counter()
                await asyncio.sleep(0.001)
                late.append((time.perf_counter() - start - 0.001) * 1e3)

        tick = asyncio.create_task(ticker())
        for _ in range(5):
            await asyncio.gather(*(built.acall({"x": i}) for i in range(4)))
        running = False
        await tick
        return late

    def p99(values: list[float]) -> float:
        return sorted(values)[int(len(values) * 0.99)]

    threaded = asyncio.run(lags(slow_pipeline(inline=False)))
    inline = asyncio.run(lags(slow_pipeline(inline=True)))
    print("event-loop lag while acalls run a 200 ms plain stage (5 rounds of 4 calls)")
    print(
        f"  in a worker thread (default): p50 {statistics.median(threaded):.2f} ms, "
        f"p99 {p99(threaded):.2f} ms, max {max(threaded):.2f} ms   (target p99 <= 5 ms)"
    )
    print(
        f"  marked run_inline (contrast): p50 {statistics.median(inline):.2f} ms, "
        f"p99 {p99(inline):.2f} ms, max {max(inline):.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    events = make_events(args.events)
    concurrent_acalls()
    async_batcher(events)
    own_cost([{"x": i} for i in range(args.events)])
    loop_lag()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
