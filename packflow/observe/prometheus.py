"""Prometheus metrics of built pipelines (``pip install 'packflow[metrics]'``).

The metrics, in base units, labelled by pipeline (its name) and stage (as
``get_metrics()`` names steps: ``"execute"``, ``"a.execute"`` in a composition):

- ``packflow_stage_duration_seconds{pipeline,stage}`` (histogram): one observation per
  step per call.
- ``packflow_call_duration_seconds{pipeline}`` (histogram): one per call.
- ``packflow_records_total{pipeline,outcome}`` (counter): records run, ``outcome="ok"``
  or ``"error"`` (an error row, or every record of a call that raised).
- ``packflow_batch_records{pipeline}`` (histogram): records per call.
- ``packflow_queue_wait_seconds{pipeline}`` (histogram): one observation per event that
  waited in a batcher's or a stream's queue (or a server's) before its call.

In one process the figures are kept in plain counters under one lock per call and read
by a collector registered in the registry (well under a microsecond per stage). With
``PROMETHEUS_MULTIPROC_DIR`` set (several server workers), they are added up the same way
and written to prometheus-client's own multiprocess metrics, whose values live in that
directory, at most :data:`FLUSH_INTERVAL` seconds later; :func:`prometheus_exposition`
merges every process's files.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from packflow.metrics import RawMetrics, watch_queue_waits
from packflow.observe import built_instance
from packflow.prebuilt.extras import import_extra
from packflow.runtime.built import BuiltPipeline

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "DURATION_BUCKETS",
    "RECORD_BUCKETS",
    "MetricsServer",
    "PrometheusExporter",
    "enable_prometheus",
    "prometheus_exposition",
    "serve_prometheus",
]

#: Upper bounds (seconds) of the duration and queue-wait histograms: 100 us to 30 s.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Upper bounds of the records-per-call histogram.
RECORD_BUCKETS: tuple[float, ...] = (
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
)  # fmt: skip

STAGE = "packflow_stage_duration_seconds"
CALL = "packflow_call_duration_seconds"
RECORDS = "packflow_records"  # exposed as packflow_records_total
BATCH = "packflow_batch_records"
WAIT = "packflow_queue_wait_seconds"

_HELP = {
    STAGE: "Time one stage of a pipeline call took, in seconds.",
    CALL: "Time a whole pipeline call took, in seconds.",
    RECORDS: "Records run by a pipeline, by outcome (error: an error row, or a failed call).",
    BATCH: "Records per pipeline call.",
    WAIT: "Time an event waited in a queue before its pipeline call, in seconds.",
}
_LABELS = {
    STAGE: ("pipeline", "stage"),
    CALL: ("pipeline",),
    RECORDS: ("pipeline", "outcome"),
    BATCH: ("pipeline",),
    WAIT: ("pipeline",),
}
_BUCKETS = {
    STAGE: DURATION_BUCKETS,
    CALL: DURATION_BUCKETS,
    BATCH: RECORD_BUCKETS,
    WAIT: DURATION_BUCKETS,
}


def _client(module: str = "") -> Any:
    """prometheus_client (or one of its modules), or a MissingExtraError naming the extra."""
    name = f"prometheus_client.{module}" if module else "prometheus_client"
    return import_extra(name, "metrics", "packflow.observe.enable_prometheus")


def _families() -> Any:
    return _client("metrics_core")


# ----------------------------------------------------------------- one process


class _Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0


class _Collector:
    """The packflow metrics of one registry: every pipeline's series, read at scrape.

    Registered once per registry; every exporter on that registry adds its series here,
    so that two instances of one pipeline add up, as two processes would.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.histograms: dict[str, dict[tuple[str, ...], _Histogram]] = {
            STAGE: {},
            CALL: {},
            BATCH: {},
            WAIT: {},
        }
        self.records: dict[tuple[str, ...], list[float]] = {}

    def zero(self) -> None:
        """Every figure back to 0 (the series stay); under the lock."""
        for series in self.histograms.values():
            for histogram in series.values():
                histogram.counts[:] = [0] * len(histogram.counts)
                histogram.total = 0.0
        for box in self.records.values():
            box[0] = 0.0

    def reset(self) -> None:
        """After a fork: a new lock (the old one may be held for good), every figure 0."""
        self.lock = threading.Lock()
        self.zero()

    def histogram(self, name: str, labels: tuple[str, ...]) -> _Histogram:
        with self.lock:
            found = self.histograms[name].get(labels)
            if found is None:
                found = self.histograms[name][labels] = _Histogram(_BUCKETS[name])
            return found

    def counter(self, labels: tuple[str, ...]) -> list[float]:
        with self.lock:
            found = self.records.get(labels)
            if found is None:
                found = self.records[labels] = [0.0]
            return found

    def describe(self) -> list[Metric]:
        families = _families()
        described: list[Metric] = [
            families.HistogramMetricFamily(name, _HELP[name], labels=_LABELS[name])
            for name in (STAGE, CALL, BATCH, WAIT)
        ]
        described.append(
            families.CounterMetricFamily(RECORDS, _HELP[RECORDS], labels=_LABELS[RECORDS])
        )
        return described

    def collect(self) -> Iterator[Metric]:
        families = _families()
        with self.lock:
            histograms = {
                name: [(labels, list(h.counts), h.total) for labels, h in series.items()]
                for name, series in self.histograms.items()
            }
            records = [(labels, value[0]) for labels, value in self.records.items()]
        for name, series in histograms.items():
            family = families.HistogramMetricFamily(name, _HELP[name], labels=_LABELS[name])
            bounds = [_bound(b) for b in _BUCKETS[name]] + ["+Inf"]
            for labels, counts, total in series:
                cumulative, running = [], 0
                for bound, count in zip(bounds, counts, strict=True):
                    running += count
                    cumulative.append((bound, float(running)))
                family.add_metric(list(labels), cumulative, total)
            yield family
        counter = families.CounterMetricFamily(RECORDS, _HELP[RECORDS], labels=_LABELS[RECORDS])
        for labels, value in records:
            counter.add_metric(list(labels), value)
        yield counter


def _bound(value: float) -> str:
    return _client("utils").floatToGoString(value)  # type: ignore[no-any-return]


class _InProcess:
    """One pipeline's series in a :class:`_Collector`, resolved once."""

    __slots__ = ("_batch", "_call", "_collector", "_error", "_ok", "_stages", "_wait")

    def __init__(self, collector: _Collector, pipeline: str, stages: Sequence[str]) -> None:
        self._collector = collector  # its lock is read at each call: a fork replaces it
        self._stages = [collector.histogram(STAGE, (pipeline, stage)) for stage in stages]
        self._call = collector.histogram(CALL, (pipeline,))
        self._batch = collector.histogram(BATCH, (pipeline,))
        self._wait = collector.histogram(WAIT, (pipeline,))
        self._ok = collector.counter((pipeline, "ok"))
        self._error = collector.counter((pipeline, "error"))

    def record(self, raw: RawMetrics, waits: Sequence[float] | None) -> None:
        size, durations, total, errors = raw
        bounds = DURATION_BUCKETS
        with self._collector.lock:
            for histogram, seconds in zip(self._stages, durations, strict=False):
                histogram.counts[bisect_left(bounds, seconds)] += 1
                histogram.total += seconds
            call = self._call
            call.counts[bisect_left(bounds, total)] += 1
            call.total += total
            batch = self._batch
            batch.counts[bisect_left(RECORD_BUCKETS, size)] += 1
            batch.total += size
            self._ok[0] += size - errors
            if errors:
                self._error[0] += errors
            if waits:
                wait = self._wait
                for seconds in waits:
                    wait.counts[bisect_left(bounds, seconds)] += 1
                    wait.total += seconds


_collectors: weakref.WeakKeyDictionary[Any, _Collector] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def _collector_of(registry: CollectorRegistry) -> _Collector:
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _Collector()
            registry.register(collector)
            _collectors[registry] = collector
        return collector


# ----------------------------------------------------------------- several processes


#: At most how long (seconds) a worker's figures wait before they reach its files.
FLUSH_INTERVAL = 1.0


class _Shared:
    """Multiprocess mode: figures added up in this process, written to the files later.

    Recording a call only adds it up, as in one process (prometheus-client writing every
    observation to its memory-mapped file would cost several microseconds a stage).
    :meth:`flush` writes what was added up since the last flush into prometheus-client's
    own metrics, whose values live in ``PROMETHEUS_MULTIPROC_DIR``: a daemon thread does
    it every :data:`FLUSH_INTERVAL` seconds, a scrape served by this process does it
    first, and so does the process's exit.
    """

    lock = threading.Lock()
    pending = _Collector()
    metrics: dict[str, Any] | None = None
    flusher: threading.Thread | None = None

    @classmethod
    def start(cls) -> None:
        """Make prometheus-client's metrics and start the flusher (once per process)."""
        with cls.lock:
            if cls.metrics is None:
                client = _client()
                # Not registered anywhere: in multiprocess mode the values live in the
                # directory's files, and a MultiProcessCollector reads them.
                made: dict[str, Any] = {
                    name: client.Histogram(
                        name, _HELP[name], _LABELS[name], registry=None, buckets=_BUCKETS[name]
                    )
                    for name in (STAGE, CALL, BATCH, WAIT)
                }
                made[RECORDS] = client.Counter(
                    RECORDS, _HELP[RECORDS], _LABELS[RECORDS], registry=None
                )
                cls.metrics = made
                atexit.register(cls.flush)
                os.register_at_fork(after_in_child=cls._forked)
            if cls.flusher is None:
                cls.flusher = threading.Thread(
                    target=cls._flush_every, name="packflow-metrics-flush", daemon=True
                )
                cls.flusher.start()

    @classmethod
    def _forked(cls) -> None:
        # In the child, right after a fork: the figures it inherited are the parent's to
        # write, and a lock may have been held by a thread that did not come along.
        cls.lock = threading.Lock()
        cls.pending.reset()
        cls.flusher = None
        if cls.metrics is not None:
            cls.start()

    @classmethod
    def _flush_every(cls) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            cls.flush()

    @classmethod
    def flush(cls) -> None:
        """Write what this process added up since the last flush to the files."""
        metrics = cls.metrics
        if metrics is None:
            return
        pending = cls.pending
        with pending.lock:
            histograms = [
                (name, labels, list(h.counts), h.total)
                for name, series in pending.histograms.items()
                for labels, h in series.items()
                if any(h.counts)
            ]
            records = [(labels, box[0]) for labels, box in pending.records.items() if box[0]]
            pending.zero()
        for name, labels, counts, total in histograms:
            child = metrics[name].labels(*labels)
            # prometheus-client keeps a histogram as one value per bucket (not
            # cumulative, +Inf last) and its sum: the same shape as ours.
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(total)
        for labels, value in records:
            metrics[RECORDS].labels(*labels).inc(value)


class _FlushFirst:
    """Collects nothing; registered first, it flushes this process's figures to the
    files before a MultiProcessCollector reads them."""

    def collect(self) -> list[Metric]:
        _Shared.flush()
        return []


# ----------------------------------------------------------------- the exporter


class PrometheusExporter:
    """Records every call of one built pipeline into Prometheus metrics.

    Made by :func:`enable_prometheus`; a :class:`packflow.metrics.CallObserver`.
    ``disable()`` stops recording (what was recorded stays: counters never go back).
    """

    def __init__(
        self, built: BuiltPipeline, registry: CollectorRegistry | None, multiprocess: bool
    ) -> None:
        self.built = built
        self.registry = registry
        self.multiprocess = multiprocess
        if multiprocess:
            _Shared.start()
            collector = _Shared.pending
        else:
            assert registry is not None
            collector = _collector_of(registry)
        self._series = _InProcess(collector, built.name, built.step_labels)
        self._enabled = False

    def called(
        self, raw: RawMetrics, outputs: Sequence[Any], waits: Sequence[float] | None
    ) -> None:
        """Record a call (its error rows as ``outcome="error"``)."""
        self._series.record(raw, waits)

    def failed(self, raw: RawMetrics, error: BaseException, waits: Sequence[float] | None) -> None:
        """Record a call that raised: its records as ``outcome="error"``."""
        self._series.record(raw, waits)

    @property
    def enabled(self) -> bool:
        """Whether calls are being recorded."""
        return self._enabled

    def enable(self) -> PrometheusExporter:
        """Start (again) recording the pipeline's calls."""
        if not self._enabled:
            self._enabled = True
            watch_queue_waits(True)
            self.built.add_observer(self)
        return self

    def disable(self) -> None:
        """Stop recording the pipeline's calls."""
        if self._enabled:
            self._enabled = False
            self.built.remove_observer(self)
            watch_queue_waits(False)

    def __repr__(self) -> str:
        where = "multiprocess" if self.multiprocess else "in process"
        state = "enabled" if self._enabled else "disabled"
        return f"<PrometheusExporter {self.built.name!r} ({where}, {state})>"


def enable_prometheus(
    built: Any, *, registry: CollectorRegistry | None = None
) -> PrometheusExporter:
    """Turn Prometheus metrics on for a built pipeline; return its exporter.

    Every call of ``built`` from now on (direct calls, ``stream``, the batchers,
    ``packflow run``) is recorded: per-stage and per-call durations, records by outcome,
    records per call and the time events waited in a queue (see the module docstring
    for the metric names). Calling it again for the same pipeline and registry returns
    the same exporter.

    Parameters
    ----------
    built
        A built pipeline (``pipe.build()``, ``packflow.load(...)``), a built
        composition, or a class backend instance.
    registry
        Where the metrics are registered: prometheus-client's default ``REGISTRY``
        unless given. With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes),
        the metrics are written to that directory instead and ``registry`` must not be
        given; :func:`prometheus_exposition` reads them all.

    Raises
    ------
    TypeError
        When ``built`` is not a built pipeline (an unbuilt ``Pipeline`` included).
    ValueError
        When ``registry`` is given in multiprocess mode.
    MissingExtraError
        When prometheus-client is not installed (``pip install 'packflow[metrics]'``).

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry  # doctest: +SKIP
    >>> exporter = enable_prometheus(pipe.build(), registry=CollectorRegistry())  # doctest: +SKIP
    """
    instance = built_instance(built, "enable_prometheus")
    client = _client()
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiprocess and registry is not None:
        raise ValueError(
            "enable_prometheus: PROMETHEUS_MULTIPROC_DIR is set, so the metrics go to that "
            "directory's files; do not pass registry= (read them with "
            "prometheus_exposition())"
        )
    if not multiprocess and registry is None:
        registry = client.REGISTRY
    for observer in instance.observers:
        if (
            isinstance(observer, PrometheusExporter)
            and observer.registry is registry
            and observer.multiprocess == multiprocess
        ):
            return observer
    return PrometheusExporter(instance, registry, multiprocess).enable()


def _default_registry() -> Collector:
    client = _client()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return client.REGISTRY  # type: ignore[no-any-return]
    registry = client.CollectorRegistry()
    registry.register(_FlushFirst())
    _client("multiprocess").MultiProcessCollector(registry, path=directory)
    return registry  # type: ignore[no-any-return]


def prometheus_exposition(
    registry: Collector | None = None, *, accept: str | None = None
) -> tuple[bytes, str]:
    """The metrics of ``registry`` for a ``/metrics`` response: ``(body, content_type)``.

    Parameters
    ----------
    registry
        What to render. By default prometheus-client's ``REGISTRY``, or, when
        ``PROMETHEUS_MULTIPROC_DIR`` is set, every process's metrics in that directory
        merged (prometheus-client's ``MultiProcessCollector``).
    accept
        The request's ``Accept`` header: OpenMetrics when it asks for it, else the
        Prometheus text format (version 0.0.4).

    Raises
    ------
    MissingExtraError
        When prometheus-client is not installed.
    """
    client = _client()
    target = registry if registry is not None else _default_registry()
    if accept:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(target), content_type
    return client.generate_latest(target), client.CONTENT_TYPE_LATEST


class MetricsServer:
    """A ``/metrics`` endpoint on its own port, served by a daemon thread.

    Made by :func:`serve_prometheus`; ``close()`` (or leaving a ``with`` block) stops it.
    """

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host: str = server.server_address[0]
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        """Where the metrics are, e.g. ``http://127.0.0.1:9464/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_prometheus(
    port: int = 0, *, host: str = "127.0.0.1", registry: Collector | None = None
) -> MetricsServer:
    """Serve ``registry``'s metrics over HTTP on ``host:port`` (0: a free port).

    The registry is the one :func:`prometheus_exposition` renders by default (every
    process's files in multiprocess mode).

    Raises
    ------
    OSError
        When the port cannot be bound (in use, or not allowed).
    MissingExtraError
        When prometheus-client is not installed.
    """
    client = _client()
    target = registry if registry is not None else _default_registry()
    server, thread = client.start_http_server(port, addr=host, registry=target)
    return MetricsServer(server, thread)
