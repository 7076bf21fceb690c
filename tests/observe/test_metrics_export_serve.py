"""packflow serve exposes the Prometheus metrics on GET /metrics (issue 22): in process,
and with several workers, whichever worker answers the scrape."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from packflow import Pipeline, Records
from packflow.testing import serve_client

pytestmark = pytest.mark.timeout(180)


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_served_records_and_their_queue_waits() -> None:
    pipe = Pipeline("served-metrics")

    @pipe.execute
    def double(records: Records) -> Records:
        if any(record["x"] == "bad" for record in records):
            raise ValueError("x is bad")
        return [{"y": record["x"] * 2} for record in records]

    with serve_client(pipe) as client:
        assert client.post("/predict", json=[{"x": 1}, {"x": 2}, {"x": "bad"}]).status_code == 200
        assert client.post("/predict", json={"x": 3}).json() == {"y": 6}
        response = client.get("/metrics")
    assert response.status_code == 200
    found = values(response.text)
    pipeline = ("pipeline", "served-metrics")
    assert found[("packflow_records_total", (("outcome", "ok"), pipeline))] == 3
    assert found[("packflow_records_total", (("outcome", "error"), pipeline))] == 1
    assert found[("packflow_queue_wait_seconds_count", (pipeline,))] == 4  # each record
    stage = ("packflow_stage_duration_seconds_count", (pipeline, ("stage", "execute")))
    assert found[stage] >= 2


def test_metrics_answer_openmetrics_when_asked() -> None:
    pipe = Pipeline("served-openmetrics")
    pipe.add_execute(lambda records: records)
    with serve_client(pipe) as client:
        client.post("/predict", json={"x": 1})
        response = client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


MODULE = """
from packflow import Pipeline, Records

pipe = Pipeline("two-workers")


@pipe.execute
def double(records: Records) -> Records:
    return [{"y": record["x"] * 2} for record in records]
"""


SERVE = [sys.executable, "-m", "packflow", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_workers_answer_metrics_for_both_whichever_is_scraped(tmp_path: Path) -> None:
    (tmp_path / "two_workers.py").write_text(MODULE, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*SERVE, "two_workers:pipe", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "PACKFLOW_LOG_LEVEL": "INFO"},
        )
    try:
        deadline = time.monotonic() + 90
        while log.read_text().count("built; serving") < 2:  # both workers are up
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            threading.Event().wait(0.05)
        served = 40
        with httpx.Client(base_url=url, timeout=20) as client:
            for x in range(served):
                # A new connection each time, so that both workers get some.
                assert httpx.post(f"{url}/predict", json={"x": x}, timeout=20).json() == {
                    "y": 2 * x
                }
            key = ("packflow_records_total", (("outcome", "ok"), ("pipeline", "two-workers")))
            seen: Any = None
            # Each worker writes its figures to the shared directory within a second.
            while time.monotonic() < deadline:
                seen = values(client.get("/metrics").text).get(key)
                if seen == served:
                    break
                threading.Event().wait(0.1)
            assert seen == served, log.read_text()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)
    assert server.returncode == 0, log.read_text()


def test_an_async_pipeline_served_on_the_loop_is_recorded_with_its_queue_waits() -> None:
    import asyncio

    pipe = Pipeline("served-async")

    @pipe.execute
    async def double(records: Records) -> Records:
        await asyncio.sleep(0)
        return [{"y": record["x"] * 2} for record in records]

    with serve_client(pipe) as client:
        assert client.post("/predict", json=[{"x": 1}, {"x": 2}]).status_code == 200
        found = values(client.get("/metrics").text)
    pipeline = ("pipeline", "served-async")
    assert found[("packflow_records_total", (("outcome", "ok"), pipeline))] == 2
    assert found[("packflow_queue_wait_seconds_count", (pipeline,))] == 2
