"""Metrics and traces a platform can collect from built pipelines.

- Prometheus (``pip install 'packflow[metrics]'``): :func:`enable_prometheus` turns the
  ``packflow_*`` metrics on for a built pipeline; :func:`prometheus_exposition` renders a
  registry for a ``/metrics`` endpoint; :func:`serve_prometheus` serves one on its own
  port (what ``packflow run --metrics-port`` uses).
- OpenTelemetry (``pip install 'packflow[otel]'``): :func:`enable_tracing` makes a span
  per pipeline call and a child span per stage, recorded only when a tracer provider is
  configured.

Nothing is measured for a pipeline until one of these is called for it (see
``docs/metrics-export.md``). The libraries are imported by the first call, never by
``import packflow`` or ``import packflow.observe``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from packflow.backend import InferenceBackend, built_pipeline
from packflow.runtime.built import BuiltPipeline
from packflow.runtime.surface import LazyDefault

if TYPE_CHECKING:
    from packflow.observe.prometheus import (
        DURATION_BUCKETS,
        RECORD_BUCKETS,
        MetricsServer,
        PrometheusExporter,
        enable_prometheus,
        prometheus_exposition,
        serve_prometheus,
    )
    from packflow.observe.tracing import Tracing, enable_tracing

__all__ = [
    "DURATION_BUCKETS",
    "RECORD_BUCKETS",
    "MetricsServer",
    "PrometheusExporter",
    "Tracing",
    "built_instance",
    "enable_prometheus",
    "enable_tracing",
    "prometheus_exposition",
    "serve_prometheus",
]

_HOMES = {
    "DURATION_BUCKETS": "packflow.observe.prometheus",
    "RECORD_BUCKETS": "packflow.observe.prometheus",
    "MetricsServer": "packflow.observe.prometheus",
    "PrometheusExporter": "packflow.observe.prometheus",
    "enable_prometheus": "packflow.observe.prometheus",
    "prometheus_exposition": "packflow.observe.prometheus",
    "serve_prometheus": "packflow.observe.prometheus",
    "Tracing": "packflow.observe.tracing",
    "enable_tracing": "packflow.observe.tracing",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def built_instance(target: Any, who: str) -> BuiltPipeline:
    """The built instance that serves ``target``'s calls, for ``who`` to watch.

    ``target`` is a built pipeline (``pipe.build()``, ``packflow.load(...)``), a built
    composition, or a class backend instance.

    Raises
    ------
    TypeError
        For an unbuilt ``Pipeline`` (its default instance is rebuilt whenever its
        definition changes, which would silently drop what watches it) or anything else.
    """
    if isinstance(target, (BuiltPipeline, InferenceBackend)):
        return built_pipeline(target)
    if isinstance(target, LazyDefault):
        name = getattr(target, "name", "?")
        raise TypeError(
            f"{who}: pipeline {name!r} is not built; pass a built instance "
            f"(built = pipe.build(); {who}(built))"
        )
    raise TypeError(
        f"{who}: expected a built pipeline (pipe.build(), packflow.load(...)) or a class "
        f"backend instance, got {type(target).__name__}"
    )
