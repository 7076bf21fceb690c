"""Prometheus metrics of built pipelines (packflow.observe, issue 22): names, types,
labels and units of DESIGN.md "Metrics export", counted right across pipelines,
instances, batchers and worker processes, and served by ``packflow run --metrics-port``."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from packflow import InferenceBackend, InferenceBackendRuntimeError, Pipeline, Records, StageError
from packflow.cli import main
from packflow.metrics import RawMetrics
from packflow.observe import (
    DURATION_BUCKETS,
    enable_prometheus,
    prometheus_exposition,
    serve_prometheus,
)

pytestmark = pytest.mark.timeout(120)


def scorer(name: str = "scorer") -> Pipeline:
    """Doubles ``x``; a record without ``x`` fails in execute."""
    pipe = Pipeline(name)

    @pipe.transform_inputs
    def keep(records: Records) -> Records:
        return records

    @pipe.execute
    def double(records: Records) -> Records:
        return [{"y": record["x"] * 2} for record in records]

    return pipe


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus-client's own parser."""
    body, _ = prometheus_exposition(registry)
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(registry: Any, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return samples(registry).get(key, 0.0)


def test_the_exposition_has_the_design_metrics_with_their_types_and_labels() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    with built.batcher(max_batch_size=2, max_latency_ms=1) as batcher:
        for future in [batcher.submit({"x": i}) for i in range(2)]:
            future.result()
    body, content_type = prometheus_exposition(registry)
    assert content_type.startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    expected = {
        "packflow_stage_duration_seconds": ("histogram", {"pipeline", "stage"}),
        "packflow_call_duration_seconds": ("histogram", {"pipeline"}),
        "packflow_records": ("counter", {"pipeline", "outcome"}),
        "packflow_batch_records": ("histogram", {"pipeline"}),
        "packflow_queue_wait_seconds": ("histogram", {"pipeline"}),
    }
    assert set(families) == set(expected)
    for name, (kind, labels) in expected.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    assert "packflow_records_total{" in body.decode()
    stages = {s.labels["stage"] for s in families["packflow_stage_duration_seconds"].samples}
    assert stages == {"preprocess", "transform_inputs", "execute"}


def test_histograms_are_in_seconds_with_one_observation_per_stage_per_call() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    built([{"x": 1}, {"x": 2}, {"x": 3}])
    built({"x": 4})
    ms = built.get_metrics().execution_times["execute"]
    found = samples(registry)
    count = found[
        ("packflow_stage_duration_seconds_count", (("pipeline", "scorer"), ("stage", "execute")))
    ]
    total = found[
        ("packflow_stage_duration_seconds_sum", (("pipeline", "scorer"), ("stage", "execute")))
    ]
    assert count == 2
    assert ms / 1000.0 <= total < 1.0  # seconds, the last call's milliseconds included
    assert found[("packflow_call_duration_seconds_count", (("pipeline", "scorer"),))] == 2
    assert found[("packflow_batch_records_sum", (("pipeline", "scorer"),))] == 4
    assert found[("packflow_batch_records_bucket", (("le", "1.0"), ("pipeline", "scorer")))] == 1
    assert found[("packflow_batch_records_bucket", (("le", "4.0"), ("pipeline", "scorer")))] == 2
    buckets = [key for key in found if key[0] == "packflow_call_duration_seconds_bucket"]
    assert len(buckets) == len(DURATION_BUCKETS) + 1  # and +Inf


def test_error_rows_are_counted_as_errors_and_the_rest_as_ok() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    outputs = built([{"x": 1}, {"z": 0}, {"x": 3}], on_error="row")
    assert "error" in outputs[1]
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 2
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="error") == 1
    assert value(registry, "packflow_call_duration_seconds_count", pipeline="scorer") == 1


def test_a_call_that_raises_counts_all_its_records_as_errors() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    with pytest.raises(StageError):
        built([{"x": 1}, {"z": 0}])
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="error") == 2
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 0
    assert value(registry, "packflow_call_duration_seconds_count", pipeline="scorer") == 1
    # The steps that ran before the failure are measured; the failed one is not.
    assert (
        value(
            registry,
            "packflow_stage_duration_seconds_count",
            pipeline="scorer",
            stage="transform_inputs",
        )
        == 1
    )
    assert (
        value(
            registry, "packflow_stage_duration_seconds_count", pipeline="scorer", stage="execute"
        )
        == 0
    )


def test_a_batch_that_does_not_line_up_raises_and_is_counted_as_errors() -> None:
    registry = CollectorRegistry()
    pipe = Pipeline("short")
    pipe.add_execute(lambda records: records[:1])
    built = pipe.build()
    enable_prometheus(built, registry=registry)
    with pytest.raises(InferenceBackendRuntimeError, match="1 record"):
        built([{"a": 1}, {"a": 2}], on_error="row")
    assert value(registry, "packflow_records_total", pipeline="short", outcome="error") == 2


def test_stages_of_a_composition_are_labelled_by_part() -> None:
    registry = CollectorRegistry()
    first, second = scorer("a"), Pipeline("b")
    second.add_execute(lambda records: records)
    built = (first >> second).build()
    enable_prometheus(built, registry=registry)
    built({"x": 1})
    stages = {
        dict(labels)["stage"]
        for name, labels in samples(registry)
        if name == "packflow_stage_duration_seconds_count"
    }
    assert stages == {
        "a.preprocess",
        "a.transform_inputs",
        "a.execute",
        "b.preprocess",
        "b.execute",
    }
    assert stages == set(built.get_metrics().execution_times)


def test_several_pipelines_in_one_registry_keep_their_own_series() -> None:
    registry = CollectorRegistry()
    one, two = scorer("one").build(), scorer("two").build()
    enable_prometheus(one, registry=registry)
    enable_prometheus(two, registry=registry)
    one([{"x": 1}] * 3)
    two({"x": 1})
    assert value(registry, "packflow_records_total", pipeline="one", outcome="ok") == 3
    assert value(registry, "packflow_records_total", pipeline="two", outcome="ok") == 1


def test_two_instances_of_one_pipeline_add_up_like_two_workers() -> None:
    registry = CollectorRegistry()
    pipe = scorer()
    first, second = pipe.build(), pipe.build()
    enable_prometheus(first, registry=registry)
    enable_prometheus(second, registry=registry)
    first({"x": 1})
    second([{"x": 1}, {"x": 2}])
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 3
    assert value(registry, "packflow_call_duration_seconds_count", pipeline="scorer") == 2


def test_one_pipeline_in_two_registries_is_recorded_in_both() -> None:
    left, right = CollectorRegistry(), CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=left)
    enable_prometheus(built, registry=right)
    built({"x": 1})
    assert value(left, "packflow_records_total", pipeline="scorer", outcome="ok") == 1
    assert value(right, "packflow_records_total", pipeline="scorer", outcome="ok") == 1


def test_enabling_twice_returns_the_same_exporter_and_counts_once() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    exporter = enable_prometheus(built, registry=registry)
    assert enable_prometheus(built, registry=registry) is exporter
    built({"x": 1})
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 1


def test_a_disabled_exporter_records_nothing_more_and_keeps_what_it_recorded() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    exporter = enable_prometheus(built, registry=registry)
    built({"x": 1})
    exporter.disable()
    built({"x": 2})
    assert built.observers == ()
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 1
    exporter.enable()
    built({"x": 3})
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 2


def test_calls_from_many_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)

    def work() -> None:
        for _ in range(200):
            built([{"x": 1}, {"x": 2}])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value(registry, "packflow_records_total", pipeline="scorer", outcome="ok") == 1600
    assert value(registry, "packflow_call_duration_seconds_count", pipeline="scorer") == 800


def test_a_direct_call_waited_in_no_queue() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    built([{"x": 1}, {"x": 2}])
    assert value(registry, "packflow_queue_wait_seconds_count", pipeline="scorer") == 0


def test_each_event_of_a_batcher_has_its_queue_wait_observed() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    with built.batcher(max_batch_size=4, max_latency_ms=1) as batcher:
        futures = [batcher.submit({"x": i}) for i in range(10)]
        assert [f.result() for f in futures] == [{"y": 2 * i} for i in range(10)]
    assert value(registry, "packflow_queue_wait_seconds_count", pipeline="scorer") == 10
    waited = value(registry, "packflow_queue_wait_seconds_sum", pipeline="scorer")
    assert 0 <= waited < 60


def test_each_event_of_a_stream_from_a_generator_has_its_queue_wait_observed() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    events = ({"x": i} for i in range(7))
    assert len(list(built.stream(events, max_batch_size=3, max_latency_ms=1))) == 7
    assert value(registry, "packflow_queue_wait_seconds_count", pipeline="scorer") == 7


def test_each_event_of_an_async_batcher_has_its_queue_wait_observed() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)

    async def run() -> list[Any]:
        async with built.async_batcher(max_batch_size=4, max_latency_ms=1) as batcher:
            return list(await asyncio.gather(*(batcher.submit({"x": i}) for i in range(6))))

    assert asyncio.run(run()) == [{"y": 2 * i} for i in range(6)]
    assert value(registry, "packflow_queue_wait_seconds_count", pipeline="scorer") == 6


def test_an_error_in_a_batcher_is_counted_once_as_an_error() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    with built.batcher(max_batch_size=3, max_latency_ms=50) as batcher:
        futures = [batcher.submit(event) for event in ({"x": 1}, {"z": 0}, {"x": 3})]
        with pytest.raises(StageError):
            futures[1].result()
        assert futures[2].result() == {"y": 6}
    errors = value(registry, "packflow_records_total", pipeline="scorer", outcome="error")
    ok = value(registry, "packflow_records_total", pipeline="scorer", outcome="ok")
    assert (ok, errors) == (2, 1)


def test_a_class_backend_instance_can_be_watched() -> None:
    class Doubler(InferenceBackend):
        def execute(self, inputs: Records) -> Records:
            return [{"y": 2 * r["x"]} for r in inputs]

    registry = CollectorRegistry()
    backend = Doubler()
    enable_prometheus(backend, registry=registry)
    backend({"x": 1})
    assert value(registry, "packflow_records_total", pipeline="Doubler", outcome="ok") == 1


def test_an_unbuilt_pipeline_is_refused_with_how_to_build_it() -> None:
    with pytest.raises(TypeError, match=r"pipeline 'scorer' is not built.*pipe\.build\(\)"):
        enable_prometheus(scorer(), registry=CollectorRegistry())
    with pytest.raises(TypeError, match=r"expected a built pipeline.*got int"):
        enable_prometheus(3, registry=CollectorRegistry())


def test_openmetrics_is_served_when_the_scraper_asks_for_it() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    built({"x": 1})
    body, content_type = prometheus_exposition(
        registry, accept="application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_serve_prometheus_answers_a_scrape_over_http_and_frees_its_port() -> None:
    registry = CollectorRegistry()
    built = scorer().build()
    enable_prometheus(built, registry=registry)
    built({"x": 1})
    with serve_prometheus(0, registry=registry) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=10) as response:
            text = response.read().decode()
    assert 'packflow_records_total{outcome="ok",pipeline="scorer"} 1.0' in text


class Recorder:
    """A custom observer: what add_observer promises."""

    def __init__(self) -> None:
        self.calls: list[tuple[RawMetrics, Sequence[Any], Sequence[float] | None]] = []
        self.failures: list[tuple[RawMetrics, BaseException]] = []

    def called(
        self, raw: RawMetrics, outputs: Sequence[Any], waits: Sequence[float] | None
    ) -> None:
        self.calls.append((raw, outputs, waits))

    def failed(self, raw: RawMetrics, error: BaseException, waits: Sequence[float] | None) -> None:
        self.failures.append((raw, error))


def test_an_observer_is_told_each_call_with_its_figures_and_outputs() -> None:
    built = scorer().build()
    assert built.observers == ()
    recorder = Recorder()
    built.add_observer(recorder)
    built.add_observer(recorder)  # once is enough
    outputs = built([{"x": 1}, {"z": 0}], on_error="row")
    with pytest.raises(StageError):
        built({"z": 0})
    [(raw, seen, waits)] = recorder.calls
    assert raw[0] == 2 and raw[3] == 1 and len(raw[1]) == 3 and seen is outputs
    assert waits is None
    [(failed_raw, error)] = recorder.failures
    assert failed_raw[0] == failed_raw[3] == 1 and isinstance(error, StageError)
    built.remove_observer(recorder)
    built({"x": 1})
    assert len(recorder.calls) == 1


def test_a_verbose_pipeline_still_logs_its_metrics_beside_an_observer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = scorer().build(verbose=True)
    enable_prometheus(built, registry=CollectorRegistry())
    with caplog.at_level("INFO", logger="packflow"):
        built({"x": 1})
    assert any("batch_size" in record.getMessage() for record in caplog.records)


def test_importing_packflow_or_packflow_observe_loads_neither_library() -> None:
    code = (
        "import sys, packflow, packflow.observe\n"
        "print(sorted(m for m in ('prometheus_client', 'opentelemetry') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------- several processes

WORKER = textwrap.dedent(
    """
    import sys
    from prometheus_client.parser import text_string_to_metric_families
    from packflow import Pipeline
    from packflow.observe import enable_prometheus, prometheus_exposition

    pipe = Pipeline("workers")
    pipe.add_execute(lambda records: [{"y": 1} for _ in records])
    built = pipe.build()
    enable_prometheus(built)
    for _ in range(int(sys.argv[1])):
        built([{"a": 1}, {"a": 2}])
    built([{"a": 1}, "not a record"], on_error="row")
    # A scrape served by this worker has its own calls already (the figures of the
    # others reach the files within a second, or when they exit).
    text = prometheus_exposition()[0].decode()
    print(sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "packflow_records_total" and s.labels["outcome"] == "ok"
    ))
    """
)


def test_worker_processes_write_one_directory_that_one_scrape_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(calls)], env=env, stdout=subprocess.PIPE, text=True
        )
        for calls in (2, 3, 4)
    ]
    try:
        seen = [worker.communicate(timeout=90)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0, 0]
    finally:
        for worker in workers:
            worker.kill()
    for calls, own in zip((2, 3, 4), seen, strict=True):
        assert float(own) >= 2 * calls + 1  # at least its own records
    assert len(list(directory.glob("*.db"))) >= 3  # each process wrote its own files
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    found = samples(None)  # the default registry merges the directory in this mode
    calls = 2 + 3 + 4 + 3  # and one isolating call per worker
    assert (
        found[("packflow_records_total", (("outcome", "ok"), ("pipeline", "workers")))]
        == 2 * 9 + 3
    )
    assert found[("packflow_records_total", (("outcome", "error"), ("pipeline", "workers")))] == 3
    assert found[("packflow_call_duration_seconds_count", (("pipeline", "workers"),))] == calls
    stage_count = (
        "packflow_stage_duration_seconds_count",
        (("pipeline", "workers"), ("stage", "execute")),
    )
    assert found[stage_count] == calls
    assert found[("packflow_batch_records_sum", (("pipeline", "workers"),))] == 2 * 9 + 2 * 3


def test_a_registry_is_refused_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR is set"):
        enable_prometheus(scorer().build(), registry=CollectorRegistry())


# ----------------------------------------------------------------- packflow run

INFERENCE = """
    from packflow import Pipeline, Records

    pipe = Pipeline("cli-scorer")

    @pipe.execute
    def double(records: Records) -> Records:
        return [{"y": record["x"] * 2} for record in records]
"""


def read_line(stream: IO[str], timeout: float = 30.0) -> str:
    """One line from ``stream``, or fail after ``timeout`` seconds (never hangs)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, f"no line within {timeout} s"
    return got[0]


def test_run_serves_metrics_on_metrics_port_while_it_runs(tmp_path: Path) -> None:
    (tmp_path / "scoring.py").write_text(textwrap.dedent(INFERENCE), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "packflow", "run", "scoring:pipe", "--input", "-"]
    with subprocess.Popen(
        [*command, "--metrics-port", "0", "--max-latency-ms", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    ) as run:
        assert run.stdin is not None and run.stdout is not None and run.stderr is not None
        try:
            announced = read_line(run.stderr)
            assert announced.startswith("packflow: metrics at http://127.0.0.1:"), announced
            url = announced.split(" at ", 1)[1].strip()
            for x in range(3):
                run.stdin.write(json.dumps({"x": x}) + "\n")
                run.stdin.flush()
                assert json.loads(read_line(run.stdout)) == {"y": 2 * x}
            run.stdin.write("not json\n")
            run.stdin.write(json.dumps({"z": 0}) + "\n")
            run.stdin.flush()
            read_line(run.stdout)
            read_line(run.stdout)
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            ok = ("packflow_records_total", (("outcome", "ok"), ("pipeline", "cli-scorer")))
            error = ("packflow_records_total", (("outcome", "error"), ("pipeline", "cli-scorer")))
            assert (found[ok], found[error]) == (3, 1)
            waits = ("packflow_queue_wait_seconds_count", (("pipeline", "cli-scorer"),))
            assert found[waits] == 5  # every line read waited in the stream's queue
            assert math.isfinite(
                found[("packflow_call_duration_seconds_sum", (("pipeline", "cli-scorer"),))]
            )
            run.stdin.close()
            assert run.wait(timeout=30) == 1  # two lines failed
        finally:
            run.kill()
    with pytest.raises(OSError):  # the port is closed once the run is over
        urllib.request.urlopen(url, timeout=5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port must be a port number"),
        (["--metrics-port", "-1"], "--metrics-port must be a port number"),
        (["--metrics-port", "0", "--engine", "ray"], "--metrics-port is for --engine local"),
    ],
)
def test_bad_metrics_options_are_usage_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"x": 1}\n', encoding="utf-8")
    assert main(["run", ".", "--input", "in.jsonl", *options]) == 2
    assert message in capsys.readouterr().err


def test_a_metrics_port_in_use_is_one_readable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "scoring.py").write_text(textwrap.dedent(INFERENCE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"x": 1}\n', encoding="utf-8")
    with serve_prometheus(0, registry=CollectorRegistry()) as taken:
        code = main(
            ["run", "scoring:pipe", "--input", "in.jsonl", "--metrics-port", str(taken.port)]
        )
    assert code == 1
    assert f"--metrics-port {taken.port}: 127.0.0.1:{taken.port}:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "call", "extra"),
    [
        ("prometheus_client", "enable_prometheus", "metrics"),
        ("opentelemetry", "enable_tracing", "otel"),
    ],
)
def test_a_missing_library_is_an_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, call: str, extra: str
) -> None:
    import packflow.observe
    from packflow.exceptions import MissingExtraError

    # None in sys.modules makes an import fail as if the library were not installed.
    monkeypatch.setitem(sys.modules, module, None)  # type: ignore[arg-type]
    for name in list(sys.modules):
        if name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "packflow.observe.prometheus", raising=False)
    monkeypatch.delitem(sys.modules, "packflow.observe.tracing", raising=False)
    monkeypatch.delattr(packflow.observe, call, raising=False)
    enable = getattr(packflow.observe, call)
    with pytest.raises(MissingExtraError, match=rf"pip install 'packflow\[{extra}\]'"):
        enable(scorer().build())


LIVE_WORKER = textwrap.dedent(
    """
    import sys
    from packflow import Pipeline
    from packflow.observe import enable_prometheus

    pipe = Pipeline("live")
    pipe.add_execute(lambda records: records)
    built = pipe.build()
    enable_prometheus(built)
    built([{"a": 1}] * 5)
    print("called", flush=True)
    sys.stdin.read()  # stays alive, neither scraped nor exiting, until the test is done
    """
)


def test_a_live_workers_figures_reach_the_directory_without_a_scrape_or_an_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    key = ("packflow_records_total", (("outcome", "ok"), ("pipeline", "live")))
    with subprocess.Popen(
        [sys.executable, "-c", LIVE_WORKER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        assert worker.stdin is not None and worker.stdout is not None
        try:
            assert read_line(worker.stdout) == "called\n"
            found = 0.0
            for _ in range(600):  # the flusher writes every second; wait for it, up to a minute
                found = samples(None).get(key, 0.0)
                if found:
                    break
                threading.Event().wait(0.1)
            assert found == 5
            worker.stdin.close()
            assert worker.wait(timeout=30) == 0
        finally:
            worker.kill()


FORKING = textwrap.dedent(
    """
    import os, sys
    from packflow import Pipeline
    from packflow.observe import enable_prometheus

    pipe = Pipeline("forked")
    pipe.add_execute(lambda records: records)
    built = pipe.build()
    enable_prometheus(built)  # before the fork, as a server that preloads its app does
    built({"a": 1})  # added up, not written yet
    child = os.fork()
    if child == 0:
        built([{"a": 1}, {"a": 2}])
        sys.exit(0)  # written at exit: its own 2 records, not the parent's
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_a_forked_worker_writes_its_own_figures_and_not_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", FORKING], env=env, timeout=90, check=False)
    assert done.returncode == 0
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    found = samples(None)
    assert found[("packflow_records_total", (("outcome", "ok"), ("pipeline", "forked")))] == 3
    assert found[("packflow_call_duration_seconds_count", (("pipeline", "forked"),))] == 2


def async_scorer() -> Pipeline:
    pipe = Pipeline("async-scorer")

    @pipe.execute
    async def double(records: Records) -> Records:
        await asyncio.sleep(0)
        return [{"y": record["x"] * 2} for record in records]

    return pipe


def test_a_pipeline_with_async_stages_is_recorded_through_acall_and_its_batcher() -> None:
    registry = CollectorRegistry()
    built = async_scorer().build()
    enable_prometheus(built, registry=registry)

    async def run() -> list[Any]:
        first = await built.acall([{"x": 1}, {"z": 0}], on_error="row")
        async with built.async_batcher(max_batch_size=3, max_latency_ms=1) as batcher:
            rest = await asyncio.gather(*(batcher.submit({"x": i}) for i in range(3)))
        return [first, rest]

    first, rest = asyncio.run(run())
    assert "error" in first[1] and rest == [{"y": 0}, {"y": 2}, {"y": 4}]
    assert value(registry, "packflow_records_total", pipeline="async-scorer", outcome="ok") == 4
    errors = value(registry, "packflow_records_total", pipeline="async-scorer", outcome="error")
    assert errors == 1
    assert value(registry, "packflow_queue_wait_seconds_count", pipeline="async-scorer") == 3
    built({"x": 5})  # a plain call runs the async stage to completion, recorded the same
    assert value(registry, "packflow_call_duration_seconds_count", pipeline="async-scorer") >= 3
