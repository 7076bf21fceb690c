"""Per-call metrics: batch size, stage timings in milliseconds, one view per thread."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from packflow import InferenceBackendRuntimeError, Metrics, Pipeline, Records


def identity(records: Records) -> Records:
    return records


def three_stage_pipeline() -> Pipeline:
    pipe = Pipeline("three")
    pipe.add_transform_inputs(identity)
    pipe.add_execute(identity)
    pipe.add_transform_outputs(identity)
    return pipe


@pytest.mark.parametrize(
    ("inputs", "size"),
    [({"x": 1}, 1), ([{"x": 1}], 1), ([{"x": i} for i in range(5)], 5)],
    ids=["dict", "list-of-1", "list-of-5"],
)
def test_batch_size_is_the_number_of_records_of_the_last_call(inputs: Any, size: int) -> None:
    built = three_stage_pipeline().build()
    built(inputs)
    assert built.get_metrics().batch_size == size


def test_batch_size_follows_the_latest_call() -> None:
    built = three_stage_pipeline().build()
    built([{}, {}, {}])
    built({})
    assert built.get_metrics().batch_size == 1


def test_an_empty_batch_has_batch_size_zero() -> None:
    built = three_stage_pipeline().build()
    built([{}, {}])
    built([])
    assert built.get_metrics().batch_size == 0


def test_execution_times_has_a_key_per_existing_stage_and_preprocess() -> None:
    built = three_stage_pipeline().build()
    built({})
    assert set(built.get_metrics().execution_times) == {
        "preprocess",
        "transform_inputs",
        "execute",
        "transform_outputs",
    }


def test_execution_times_leave_out_stages_the_pipeline_does_not_have() -> None:
    pipe = Pipeline("p")
    pipe.add_execute(identity)
    pipe({})
    assert set(pipe.get_metrics().execution_times) == {"preprocess", "execute"}


def test_execution_times_are_in_milliseconds() -> None:
    pipe = Pipeline("slow")
    pipe.add_transform_inputs(identity)

    @pipe.execute
    def predict(records: Records) -> Records:
        time.sleep(0.02)
        return records

    pipe({})
    metrics = pipe.get_metrics()
    # 20 ms of sleep: at least 20 in milliseconds, far below 20 000 (microseconds).
    assert 20 <= metrics.execution_times["execute"] < 2000
    assert 0 <= metrics.execution_times["transform_inputs"] < 20


def test_total_execution_time_is_in_milliseconds_and_covers_the_stages() -> None:
    pipe = Pipeline("slow")

    @pipe.execute
    def predict(records: Records) -> Records:
        time.sleep(0.02)
        return records

    pipe({})
    metrics = pipe.get_metrics()
    assert 20 <= metrics.total_execution_time < 2000
    assert metrics.total_execution_time >= sum(metrics.execution_times.values()) - 1e-6


def test_metrics_read_like_the_original_dict_and_dump_to_json() -> None:
    pipe = three_stage_pipeline()
    pipe([{}, {}])
    metrics = pipe.get_metrics()
    assert isinstance(metrics, Metrics)
    assert metrics["batch_size"] == 2
    assert metrics["execution_times"] == metrics.execution_times
    data = json.loads(json.dumps(metrics.as_dict()))
    assert data["batch_size"] == 2
    assert set(data) == {"batch_size", "execution_times", "total_execution_time", "errors"}


def test_get_metrics_before_any_call_raises_a_clear_error() -> None:
    pipe = three_stage_pipeline()
    with pytest.raises(InferenceBackendRuntimeError, match="no call has completed"):
        pipe.get_metrics()


def test_get_metrics_on_a_fresh_build_raises_a_clear_error() -> None:
    built = three_stage_pipeline().build()
    with pytest.raises(InferenceBackendRuntimeError, match="no call has completed"):
        built.get_metrics()


def test_get_metrics_after_ready_but_before_a_call_raises_a_clear_error() -> None:
    pipe = three_stage_pipeline()
    assert pipe.ready()
    with pytest.raises(InferenceBackendRuntimeError, match="no call has completed"):
        pipe.get_metrics()


def test_a_failed_call_does_not_replace_the_metrics_of_the_last_completed_call() -> None:
    pipe = Pipeline("p")

    @pipe.execute
    def predict(records: Records) -> Records:
        if len(records) > 2:
            raise ValueError("too many")
        return records

    pipe([{}, {}])
    with pytest.raises(InferenceBackendRuntimeError):
        pipe([{}, {}, {}])
    assert pipe.get_metrics().batch_size == 2


def test_each_built_instance_keeps_its_own_metrics() -> None:
    pipe = three_stage_pipeline()
    first, second = pipe.build(), pipe.build()
    first([{}, {}])
    second({})
    assert first.get_metrics().batch_size == 2
    assert second.get_metrics().batch_size == 1


def test_concurrent_calls_from_several_threads_each_see_their_own_metrics() -> None:
    threads_count = 6
    inside = threading.Barrier(threads_count, timeout=10)
    done = threading.Barrier(threads_count, timeout=10)
    pipe = Pipeline("shared")

    @pipe.execute
    def predict(records: Records) -> Records:
        # Every thread is inside a call at the same time.
        inside.wait()
        return records

    built = pipe.build()
    seen: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(size: int) -> None:
        try:
            built([{"i": i} for i in range(size)])
            # Every call has completed before anyone reads: shared metrics would show
            # the last writer's batch to all.
            done.wait()
            seen[size] = built.get_metrics().batch_size
        except BaseException as exc:
            errors.append(exc)

    sizes = range(1, threads_count + 1)
    threads = [threading.Thread(target=worker, args=(size,)) for size in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen == {size: size for size in sizes}


def test_metrics_of_another_threads_call_are_not_visible() -> None:
    built = three_stage_pipeline().build()
    thread = threading.Thread(target=built, args=([{}, {}],))
    thread.start()
    thread.join()
    with pytest.raises(InferenceBackendRuntimeError, match="no call has completed"):
        built.get_metrics()
