"""What the metrics exporters cost per call, and whether the exposition is valid.

Run: ``python benchmarks/bench_metrics.py``. For a batch of 64 records through identity
stages, prints the fastest time per call with nothing enabled and with each exporter on,
and the difference per step (``preprocess`` counts as one) against the target of issue 22:
at most 2 us per stage per batch for Prometheus. Then checks the exposition with
``promtool check metrics`` (Debian package ``prometheus``), which CI does not install.

Cases: ``prometheus`` (one process, packflow's collector), ``prometheus multiprocess``
(prometheus-client's mmap files; measured in a child process with
``PROMETHEUS_MULTIPROC_DIR`` set), ``tracing, no provider`` (the API's non-recording
spans) and ``tracing, SDK`` (spans recorded into an in-memory exporter).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

from packflow import Pipeline
from packflow.runtime import BuiltPipeline

BATCH = [{"a": i, "b": 2.0, "c": "x"} for i in range(64)]
NUMBER = 500
REPEAT = 400
TARGET_US = 2.0


def identity(data: Any) -> Any:
    return data


def execute_only() -> BuiltPipeline:
    pipe = Pipeline("bench-execute")
    pipe.add_execute(identity)
    return pipe.build()


def three_stages() -> BuiltPipeline:
    pipe = Pipeline("bench-three")

    def t_in(data: Any) -> Any:
        return data

    def t_out(data: Any) -> Any:
        return data

    pipe.add_transform_inputs(t_in)
    pipe.add_execute(identity)
    pipe.add_transform_outputs(t_out)
    return pipe.build()


def best_us(built: BuiltPipeline, number: int = NUMBER) -> float:
    """The fastest of REPEAT timings (on a shared machine the others measure the load)."""
    run = built.run_batch
    timer = timeit.Timer(lambda: run(BATCH))
    return min(timer.repeat(repeat=REPEAT, number=number)) / number * 1e6


def prometheus(built: BuiltPipeline) -> Callable[[], None]:
    from prometheus_client import CollectorRegistry

    from packflow.observe import enable_prometheus

    return enable_prometheus(built, registry=CollectorRegistry()).disable


def tracing_off(built: BuiltPipeline) -> Callable[[], None]:
    from packflow.observe import enable_tracing

    return enable_tracing(built).disable  # no provider is set in this process


def tracing_sdk(built: BuiltPipeline) -> Callable[[], None]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from packflow.observe import enable_tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = enable_tracing(built, tracer_provider=provider)

    def stop() -> None:
        tracing.disable()
        exporter.clear()

    return stop


MULTIPROCESS = """
import sys, timeit
sys.path.insert(0, {here!r})
from bench_metrics import BATCH, NUMBER, REPEAT, {factory}
from packflow.observe import enable_prometheus
built = {factory}()
enable_prometheus(built)
run = built.run_batch
timer = timeit.Timer(lambda: run(BATCH))
print(min(timer.repeat(repeat=REPEAT, number=NUMBER)) / NUMBER * 1e6)
"""


def multiprocess_us(factory: str) -> float:
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        code = MULTIPROCESS.format(
            here=os.path.dirname(os.path.abspath(__file__)), factory=factory
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip())


def observer_alone_us(built: BuiltPipeline) -> float:
    """The Prometheus exporter's own work per call, timed without the call around it."""
    from prometheus_client import CollectorRegistry

    from packflow.observe import enable_prometheus

    exporter = enable_prometheus(built, registry=CollectorRegistry())
    exporter.disable()
    raw = (len(BATCH), [1e-5] * len(built.step_labels), 4e-5, 0)
    timer = timeit.Timer(lambda: exporter.called(raw, BATCH, None))
    return min(timer.repeat(repeat=REPEAT, number=NUMBER)) / NUMBER * 1e6


def promtool_check() -> bool:
    from prometheus_client import CollectorRegistry

    from packflow.observe import enable_prometheus, prometheus_exposition

    registry = CollectorRegistry()
    for factory in (execute_only, three_stages):
        built = factory()
        enable_prometheus(built, registry=registry)
        built(BATCH)
        built([*BATCH[:2], "not a record"], on_error="row")
        with built.batcher(max_batch_size=8, max_latency_ms=1) as batcher:
            for future in [batcher.submit(row) for row in BATCH[:10]]:
                future.result()
    body, _ = prometheus_exposition(registry)
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool: not found (apt-get install prometheus); exposition NOT checked")
        return False
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    problems = (done.stdout + done.stderr).decode().strip()
    print(f"promtool check metrics: exit {done.returncode}{': ' + problems if problems else ''}")
    return done.returncode == 0


def main() -> int:
    print(
        f"python {sys.version.split()[0]}, batch of {len(BATCH)} records, "
        f"{NUMBER} calls x {REPEAT} repeats, fastest repeat per call"
    )
    failed = False
    for factory in (execute_only, three_stages):
        built = factory()
        steps = len(built.step_labels)
        off = best_us(built)
        print(f"{built.name} ({steps} steps): off {off:7.3f} us")
        cases: list[tuple[str, Callable[[BuiltPipeline], Callable[[], None]] | None]] = [
            ("prometheus", prometheus),
            ("prometheus multiprocess", None),
            ("tracing, no provider", tracing_off),
            ("tracing, SDK", tracing_sdk),
        ]
        alone = observer_alone_us(built)
        print(
            f"  {'prometheus, exporter alone':26s} {alone:8.3f} us  "
            f"+{alone / steps:7.3f} us per step"
        )
        for label, enable in cases:
            if enable is None:
                on = multiprocess_us(factory.__name__)
            else:
                stop = enable(built)
                on = best_us(built, NUMBER // 10 if label == "tracing, SDK" else NUMBER)
                stop()
                off = min(off, best_us(built))  # measured again after, the load may vary
            per_step = (on - off) / steps
            verdict = ""
            if label.startswith("prometheus"):
                ok = per_step <= TARGET_US
                failed |= not ok
                verdict = f", target <= {TARGET_US} us {'met' if ok else 'MISSED'}"
            print(
                f"  {label:26s} on {on:8.3f} us  +{per_step:7.3f} us per step "
                f"(off {off:.3f}{verdict})"
            )
    failed |= not promtool_check()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
