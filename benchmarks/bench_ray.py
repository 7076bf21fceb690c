"""packflow on Ray Data (2 actors) against the same pipeline in one process.

Run: ``python benchmarks/bench_ray.py [--records 100000] [--repeat 3]``. Starts a local
Ray with 2 CPUs, then prints, for a cheap pipeline (``y = 2 * x``) and one with real
per-record work (about 30 us of Python per record):

- the in-process job (build, then ``run_batch`` over batches of 1024);
- the Ray job with and without Ray's start-up (``ray.init``), and the throughput once
  the first batch is out (the actors are started and built by then);
- the adapter's own cost per batch (records out of and back into the Arrow batch, in
  ``PipelineActor.__call__``, without the pipeline's run), for the default output (one
  column per key, from a plain Arrow batch) and for ``output="pickled"`` (from a
  ``from_records`` batch), against the actor time per batch of Ray's ``map_batches``
  with an identity function on the same data (target issue 12: at most 10%).

Each Ray figure is the median of ``--repeat`` jobs; each job starts fresh actors, as
every Ray Data execution does.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import ray

import packflow.ray as pray
from packflow import Pipeline, Records

BATCH = 1024
ACTORS = 2

cheap = Pipeline("cheap")


@cheap.execute
def double(records: Records) -> Records:
    return [{**r, "y": 2 * r["x"]} for r in records]


work = Pipeline("work")


@work.execute
def crunch(records: Records) -> Records:
    out = []
    for r in records:
        total = 0.0
        for k in range(1, 300):
            total += math.sin(r["x"] * k) / k
        out.append({**r, "y": total})
    return out


class Identity:
    """Ray's baseline: a callable class that returns the batch it got."""

    def __call__(self, batch: Any) -> Any:
        return batch


def _burn(_: int) -> float:
    start = time.perf_counter()
    total = 0.0
    for k in range(1, 2_000_000):
        total += math.sin(k) / k
    return time.perf_counter() - start


def parallel_speedup() -> float:
    """How much faster two processes get through two loads than one (2.0 = two free cores)."""
    import multiprocessing

    one = _burn(0)
    with multiprocessing.Pool(2) as pool:
        both = max(pool.map(_burn, [0, 1]))
    return 2 * one / both


def make_records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "x": i % 1000, "text": f"record number {i}"} for i in range(n)]


def in_process(pipeline: Pipeline, data: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    built = pipeline.build()
    for i in range(0, len(data), BATCH):
        built.run_batch(data[i : i + BATCH])
    return time.perf_counter() - start


def drain(ds: Any) -> tuple[float, float, int]:
    """(seconds to the first batch, seconds in all, rows) of consuming ``ds``."""
    start = time.perf_counter()
    first = None
    rows = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        if first is None:
            first = time.perf_counter() - start
        rows += batch.num_rows
    return first or 0.0, time.perf_counter() - start, rows


def ray_job(make: Callable[[], Any], n: int) -> tuple[float, float]:
    """(job seconds, records/s after the first batch) of one Ray execution."""
    start = time.perf_counter()
    first, _, rows = drain(make())
    total = time.perf_counter() - start
    assert rows == n, (rows, n)
    steady = (rows - BATCH) / max(total - first, 1e-9)
    return total, steady


def median_job(make: Callable[[], Any], n: int, repeat: int) -> tuple[float, float]:
    runs = [ray_job(make, n) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def adapter_cost(data: list[dict[str, Any]], repeat: int, output: str) -> float:
    """Seconds per batch of PipelineActor's conversions alone (identity pipeline).

    The median time of the actor's call on one Arrow batch of ``BATCH`` records, less
    the median time of the pipeline's own ``run_batch`` on the same records. The batch is
    what the output's usual input gives: plain columns for ``"columns"``, a
    ``from_records`` batch for ``"pickled"``.
    """
    import pyarrow as pa

    identity = Pipeline("identity")

    @identity.execute
    def same(records: Records) -> Records:
        return records

    actor = pray.PipelineActor(pray._payload(identity, {}), "raise", output)
    records = data[:BATCH]
    if output == "columns":
        table = pa.Table.from_pylist(records)
    else:
        table = pa.table(
            {
                pray.INDEX_COLUMN: pa.array(range(len(records)), pa.int64()),
                pray.RECORD_COLUMN: pa.array(
                    [pray._dumps_record(r) for r in records], pa.binary()
                ),
            }
        )

    def median_seconds(fn: Callable[[], Any]) -> float:
        runs = []
        for _ in range(repeat * 100):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    return median_seconds(lambda: actor(table)) - median_seconds(
        lambda: actor.built.run_batch(records)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.records, args.repeat
    data = make_records(n)
    print(f"two processes run {parallel_speedup():.2f}x as fast as one (2.00 = 2 free cores)")

    start = time.perf_counter()
    ray.init(
        num_cpus=ACTORS, include_dashboard=False, log_to_driver=False, logging_level="warning"
    )
    startup = time.perf_counter() - start
    print(f"{n} records, {ACTORS} actors, batch {BATCH}; ray.init {startup:.2f} s")
    ds = pray.from_records(data, block_size=BATCH).materialize()

    print(
        f"{'pipeline':<8} {'in-process':>11} {'ray job':>9} {'+ start-up':>11} "
        f"{'in-proc rec/s':>14} {'ray rec/s (started)':>20}"
    )
    for name, pipeline in (("cheap", cheap), ("work", work)):
        local = statistics.median(in_process(pipeline, data) for _ in range(repeat))
        job, steady = median_job(
            lambda p=pipeline: pray.map_batches(ds, p, concurrency=ACTORS, batch_size=BATCH),
            n,
            repeat,
        )
        print(
            f"{name:<8} {local:>9.2f} s {job:>7.2f} s {job + startup:>9.2f} s "
            f"{n / local:>14,.0f} {steady:>20,.0f}"
        )

    def identity_job() -> Any:
        return ds.map_batches(
            Identity,
            compute=ray.data.ActorPoolStrategy(size=ACTORS),
            batch_size=BATCH,
            batch_format="pyarrow",
        )

    ident_job, ident_rate = median_job(identity_job, n, repeat)
    batches = math.ceil(n / BATCH)
    # Actor time per batch of the identity job: wall time times the actors, per batch;
    # over the whole job, and once the actors are started (after the first batch).
    ray_per_batch = ident_job * ACTORS / batches
    ray_started = ACTORS * BATCH / ident_rate
    print(
        f"Ray identity map_batches: {ident_job:.2f} s per job; actor time per batch "
        f"{ray_per_batch * 1e3:.2f} ms over the job, {ray_started * 1e3:.2f} ms once started"
    )
    for output in ("columns", "pickled"):
        adapter = adapter_cost(data, repeat, output)
        print(
            f"adapter conversions ({output}): {adapter * 1e3:.3f} ms per batch of {BATCH} = "
            f"{adapter / ray_per_batch:.1%} of Ray's identity map_batches per batch over the "
            f"job, {adapter / ray_started:.1%} once started (target <= 10%)"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
