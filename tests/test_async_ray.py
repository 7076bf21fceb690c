"""Async stages on Ray: each actor runs the async steps on its own event loop.

Uses the Ray instance tests/test_ray.py starts when it runs first in the session, or
starts one (2 CPUs, no dashboard) for this module.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from packflow import Pipeline, Records

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(
                num_cpus=2,
                object_store_memory=100 * 1024 * 1024,
                include_dashboard=False,
                log_to_driver=False,
            )
        yield ray
        if started:
            ray.shutdown()


def test_an_async_pipeline_runs_on_ray_actors_with_its_async_initializer(
    ray_instance: Any,
) -> None:
    import packflow.ray as pray

    # Made in a function, so that the workers get its definition by value.
    pipe = Pipeline("async-on-ray")

    @pipe.initialize
    async def offset() -> int:
        await asyncio.sleep(0)
        return 100

    @pipe.execute
    async def add(records: Records, offset: int) -> Records:
        await asyncio.sleep(0)
        return [{"y": r["x"] + offset, "pid": os.getpid()} for r in records]

    ds = pray.from_records([{"x": i} for i in range(200)], block_size=50)
    out = list(pray.iter_records(pray.map_batches(ds, pipe, batch_size=50)))

    assert [row["y"] for row in out] == [i + 100 for i in range(200)]
    assert os.getpid() not in {row["pid"] for row in out}
