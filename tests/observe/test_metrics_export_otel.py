"""OpenTelemetry spans of built pipelines (packflow.observe.enable_tracing, issue 22),
read back with the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from packflow import Pipeline, Records, StageError
from packflow.observe import enable_tracing

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


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_call_is_one_span_with_a_child_span_per_stage(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    enable_tracing(built, tracer_provider=provider)
    built([{"x": 1}, {"x": 2}])
    spans = by_name(exporter.get_finished_spans())
    call = spans["packflow scorer"]
    assert set(spans) == {
        "packflow scorer",
        "packflow scorer preprocess",
        "packflow scorer transform_inputs",
        "packflow scorer execute",
    }
    assert call.parent is None
    assert dict(call.attributes or {}) == {
        "packflow.pipeline": "scorer",
        "packflow.records": 2,
        "packflow.errors": 0,
    }
    assert call.start_time is not None and call.end_time is not None
    for label in ("preprocess", "transform_inputs", "execute"):
        stage = spans[f"packflow scorer {label}"]
        assert stage.parent is not None and stage.parent.span_id == call.context.span_id
        assert stage.context.trace_id == call.context.trace_id
        assert dict(stage.attributes or {}) == {
            "packflow.pipeline": "scorer",
            "packflow.stage": label,
            "packflow.records": 2,
        }
        assert stage.start_time is not None and stage.end_time is not None
        assert call.start_time <= stage.start_time <= stage.end_time <= call.end_time
    ordered = [
        spans[f"packflow scorer {label}"]
        for label in ("preprocess", "transform_inputs", "execute")
    ]
    assert [s.start_time for s in ordered] == sorted(s.start_time for s in ordered)  # type: ignore[type-var]


def test_each_error_row_is_an_event_of_the_call_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    enable_tracing(built, tracer_provider=provider)
    built([{"x": 1}, {"z": 0}, {"x": 3}, {"z": 1}], on_error="row")
    call = by_name(exporter.get_finished_spans())["packflow scorer"]
    assert call.attributes is not None and call.attributes["packflow.errors"] == 2
    events = [e for e in call.events if e.name == "packflow.error_row"]
    assert [dict(e.attributes or {})["packflow.index"] for e in events] == [1, 3]
    first = dict(events[0].attributes or {})
    assert first["packflow.stage"] == "execute"
    assert first["exception.type"] == "KeyError"
    assert call.status.status_code is StatusCode.UNSET  # the call itself returned


def test_a_failed_event_of_a_batcher_is_an_event_too(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    enable_tracing(built, tracer_provider=provider)
    with built.batcher(max_batch_size=2, max_latency_ms=50) as batcher:
        futures = [batcher.submit({"x": 1}), batcher.submit({"z": 0})]
        assert futures[0].result() == {"y": 2}
        with pytest.raises(StageError):
            futures[1].result()
    calls = [s for s in exporter.get_finished_spans() if s.name == "packflow scorer"]
    events = [e for span in calls for e in span.events if e.name == "packflow.error_row"]
    assert [dict(e.attributes or {})["exception.type"] for e in events] == ["KeyError"]


def test_a_call_that_raises_has_an_error_status_and_its_failed_stage(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    enable_tracing(built, tracer_provider=provider)
    with pytest.raises(StageError):
        built({"z": 0})
    spans = by_name(exporter.get_finished_spans())
    call = spans["packflow scorer"]
    assert call.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in call.events)
    failed = spans["packflow scorer execute"]
    assert failed.status.status_code is StatusCode.ERROR
    assert spans["packflow scorer transform_inputs"].status.status_code is StatusCode.UNSET


def test_the_call_span_is_a_child_of_the_callers_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    enable_tracing(built, tracer_provider=provider)
    with provider.get_tracer("server").start_as_current_span("request") as request:
        built({"x": 1})
    call = by_name(exporter.get_finished_spans())["packflow scorer"]
    assert call.parent is not None and call.parent.span_id == request.get_span_context().span_id


def test_stage_spans_of_a_composition_are_named_by_part(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    second = Pipeline("b")
    second.add_execute(lambda records: records)
    built = (scorer("a") >> second).build()
    enable_tracing(built, tracer_provider=provider)
    built({"x": 1})
    stages = {
        (s.attributes or {}).get("packflow.stage")
        for s in exporter.get_finished_spans()
        if s.parent is not None
    }
    assert stages == {
        "a.preprocess",
        "a.transform_inputs",
        "a.execute",
        "b.preprocess",
        "b.execute",
    }


def test_enabling_twice_gives_one_span_per_call_and_disable_stops_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    built = scorer().build()
    tracing = enable_tracing(built, tracer_provider=provider)
    assert enable_tracing(built, tracer_provider=provider) is tracing
    built({"x": 1})
    tracing.disable()
    built({"x": 2})
    assert [s.name for s in exporter.get_finished_spans()].count("packflow scorer") == 1


def test_an_unbuilt_pipeline_is_refused() -> None:
    with pytest.raises(TypeError, match="enable_tracing: pipeline 'scorer' is not built"):
        enable_tracing(scorer())


def test_nothing_is_recorded_until_a_tracer_provider_is_configured() -> None:
    # In a fresh process: the global tracer provider can be set only once.
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from packflow import Pipeline
        from packflow.observe import enable_tracing

        pipe = Pipeline("late")
        pipe.add_execute(lambda records: records)
        built = pipe.build()
        enable_tracing(built)
        built({"a": 1})  # no provider yet: the API's non-recording spans
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        built({"a": 2})
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "['packflow late', 'packflow late execute', 'packflow late preprocess']"
    )
