"""packflow serve on a real uvicorn server: real sockets, real HTTP, real signals.

One server per test session (started by ``packflow serve`` on a free loopback port,
waited for, always stopped), and one more for the SIGTERM test, which stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packflow.cli import main

MODULE = """
import time
from packflow import Pipeline, Records

pipe = Pipeline("doubler")

@pipe.execute
def double(records: Records) -> Records:
    out = []
    for record in records:
        if record.get("x") == "bad":
            raise ValueError("x is bad")
        out.append({"y": record["x"] * 2})
    return out

slow = Pipeline("slow")

@slow.execute
def take_time(records: Records) -> Records:
    time.sleep(0.2)
    return [{"y": record["x"]} for record in records]
"""

NDJSON = {"content-type": "application/x-ndjson"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``packflow serve`` process: started, waited for, always stopped."""

    def __init__(self, folder: Path, spec: str, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "packflow",
                    "serve",
                    spec,
                    "--port",
                    str(self.port),
                    *options,
                ],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PACKFLOW_LOG_LEVEL": "INFO"},
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server was not ready within 60 s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)
        return int(self.process.returncode)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("served")
    (folder / "served_pipeline.py").write_text(MODULE, encoding="utf-8")
    server = Server(folder, "served_pipeline:pipe", "--max-body-bytes", "4096")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(served: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=20) as client:
        yield client


def test_a_real_server_answers_objects_arrays_and_instances(http: httpx.Client) -> None:
    assert http.post("/predict", json={"x": 2}).json() == {"y": 4}
    rows = http.post("/predict", json=[{"x": 1}, {"x": "bad"}]).json()
    assert rows[0] == {"y": 2} and rows[1]["error"]["index"] == 1
    assert http.post("/predict", json={"instances": [{"x": 3}]}).json() == {
        "predictions": [{"y": 6}]
    }
    assert http.post("/predict", json={"x": "bad"}).status_code == 422
    assert http.post("/predict", content=b"{").status_code == 400
    assert http.post("/predict", json=[{"x": 1}] * 1000).status_code == 413
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/openapi.json").json()["info"]["title"] == "packflow: doubler"


def test_a_real_server_streams_ndjson_in_and_out(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for i in range(300):
            yield json.dumps({"x": i}).encode() + b"\n"

    with http.stream("POST", "/predict", content=body(), headers=NDJSON) as response:
        assert response.status_code == 200
        outputs = [json.loads(line) for line in response.iter_lines() if line]
    assert outputs == [{"y": 2 * i} for i in range(300)]


def test_concurrent_clients_each_get_their_own_answer(served: Server) -> None:
    answers: dict[int, Any] = {}
    limits = httpx.Limits(max_connections=32)
    with httpx.Client(base_url=served.url, timeout=20, limits=limits) as client:

        def ask(i: int) -> None:
            answers[i] = client.post("/predict", json={"x": i}).json()

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert answers == {i: {"y": 2 * i} for i in range(32)}


def test_sigterm_answers_the_requests_in_progress_and_exits_0(
    tmp_path: Path,
) -> None:
    (tmp_path / "served_pipeline.py").write_text(MODULE, encoding="utf-8")
    server = Server(tmp_path, "served_pipeline:slow", "--max-batch-size", "2")
    try:
        lines: list[str] = []
        first_line = threading.Event()

        def stream() -> None:
            body = b"".join(json.dumps({"x": i}).encode() + b"\n" for i in range(8))
            with (
                httpx.Client(base_url=server.url, timeout=30) as client,
                client.stream("POST", "/predict", content=body, headers=NDJSON) as response,
            ):
                for line in response.iter_lines():
                    lines.append(line)
                    first_line.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first_line.wait(30)
        code = server.stop()  # while the NDJSON response is in progress
        reader.join(30)
    finally:
        server.stop()
    assert [json.loads(line) for line in lines if line] == [{"y": i} for i in range(8)]
    assert code == 0, server.log.read_text()
    assert '"POST /predict HTTP/1.1" 200 8 records' in server.log.read_text()


def test_serve_refuses_bad_options_and_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "x:y", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["serve", "x:y", "--max-latency-ms", "-1"]) == 2
    assert "--max-latency-ms must be a number >= 0" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing")]) == 1
    assert "no such project folder" in capsys.readouterr().err


def test_several_workers_each_build_the_pipeline_once_and_stop_on_sigterm(
    tmp_path: Path,
) -> None:
    (tmp_path / "served_pipeline.py").write_text(MODULE, encoding="utf-8")
    server = Server(tmp_path, "served_pipeline:pipe", "--workers", "2")
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            for x in range(8):
                assert client.post("/predict", json={"x": x}).json() == {"y": 2 * x}
        # Both workers are up (each builds at its own startup, before it accepts).
        deadline = time.monotonic() + 30
        while server.log.read_text().count("built; serving") < 2:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.05)
    finally:
        code = server.stop()
    assert code == 0, server.log.read_text()
    assert server.log.read_text().count("built; serving") == 2
