"""``packflow serve`` against LitServe, driven by wrk; latency at low load; a 1 GB NDJSON body.

Run: ``python benchmarks/bench_serve.py [--duration 10] [--ndjson-gb 1.0] [--skip-litserve]``
(needs ``wrk`` on the PATH, and ``litserve`` for the comparison).

Models, the same on both servers:

- ``iris``: the ONNX model of ``examples/iris`` (the project folder, served as it is);
- ``fixed``: a model with a fixed cost per call (1 ms) plus a cost per row (10 us), as
  a model runtime's dispatch plus its compute (``time.sleep``, which releases the GIL
  as onnxruntime and torch do).

LitServe serves the same built packflow pipeline in a ``LitAPI`` with
``max_batch_size=64, batch_timeout=0.005`` (``decode_request`` -> the record, ``batch``
-> the list, ``predict`` -> one pipeline call, ``unbatch``/``encode_response`` -> each
output), so only the serving layers differ. packflow serves with ``--max-batch-size 64
--max-latency-ms 5``, one worker, the access log off (``PACKFLOW_LOG_LEVEL=WARNING``;
LitServe logs no access lines either).

1. Throughput: ``wrk -t2 -c{64,256} -d{duration}s --latency -s post.lua`` (one record
   per request), in the order packflow, LitServe, packflow, LitServe (A B A B) for each
   model and connection count. Target: packflow >= 1.5x LitServe's requests/s at an
   equal or lower p99.
2. Low load: ``wrk -t1 -c1`` against packflow (p50), against calling the built pipeline
   directly in process (p50 of 5,000 calls). Target: at most 1 ms apart.
3. A 1 GB NDJSON request (records of about 8 KB, made by a generator, never stored),
   sent chunked on a raw socket while the response is read; the server's RSS is sampled
   from ``/proc``. Target: RSS grows by at most 64 MiB.

The servers and wrk share the machine's cores: the figures are comparisons made in the
same session, not absolute capacities.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
IRIS_RECORD = {"sepal_length": 5.7, "sepal_width": 2.8, "petal_length": 4.5, "petal_width": 1.3}

FIXED_MODULE = """
import time
from packflow import Pipeline, Records

pipe = Pipeline("fixed")

@pipe.execute
def model(records: Records) -> Records:
    time.sleep(0.001 + 0.00001 * len(records))
    return [{"score": float(r["x"]) * 2} for r in records]
"""

LITSERVE_SERVER = """
import sys

import litserve as ls
import packflow
from packflow.loaders import InferenceBackendLoader

spec, port = sys.argv[1], int(sys.argv[2])


class PipelineAPI(ls.LitAPI):
    def setup(self, device):
        loaded = packflow.load(spec) if ":" in spec else None
        self.built = loaded or InferenceBackendLoader.for_project(spec).load()

    def decode_request(self, request):
        return request

    def batch(self, inputs):
        return list(inputs)

    def predict(self, records):
        return self.built(records)

    def unbatch(self, outputs):
        return list(outputs)

    def encode_response(self, output):
        return output


if __name__ == "__main__":  # LitServe's workers are spawned: they import this file
    api = PipelineAPI(max_batch_size=64, batch_timeout=0.005)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(64).decode("latin-1")
    return int(head.split(" ")[1])


class Server:
    """A server process: started, waited for (``path`` answers 200), always stopped."""

    def __init__(self, command: list[str], port: int, ready: str, cwd: Path) -> None:
        env = {**os.environ, "PACKFLOW_LOG_LEVEL": "WARNING"}
        self.port = port
        # A session of its own, so that stop() reaches the processes it spawns (LitServe's
        # API server and inference workers) and none outlives the benchmark.
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if http_get(port, ready) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command} was not ready within 120 s")
            time.sleep(0.2)

    def rss_mib(self) -> float:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        return kib / 1024

    def stop(self) -> None:
        group = self.process.pid  # the session leader's pid is its group's id
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # what the server left behind


def packflow_server(spec: str, cwd: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "packflow", "serve", spec, "--port", str(port)]
    command += ["--max-batch-size", "64", "--max-latency-ms", "5"]
    return Server(command, port, "/v2/health/ready", cwd)


def litserve_server(spec: str, cwd: Path, script: Path) -> Server:
    port = free_port()
    return Server([sys.executable, str(script), spec, str(port)], port, "/health", cwd)


def wrk(
    port: int, body: dict[str, Any], connections: int, duration: int, lua: Path
) -> dict[str, Any]:
    lua.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = 1 if connections == 1 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    command += ["-s", str(lua), f"http://127.0.0.1:{port}/predict"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "non2xx": int(errors.group(1)) if errors else 0,
        "output": out,
    }


def _ms(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("m"):
        return value * 60_000
    return value * 1000  # seconds


def throughput(args: argparse.Namespace, work: Path) -> None:
    fixed_dir = work / "fixed"
    fixed_dir.mkdir()
    (fixed_dir / "fixed_model.py").write_text(FIXED_MODULE)
    script = work / "litserve_server.py"
    script.write_text(LITSERVE_SERVER)
    models = [
        ("iris", str(IRIS), ROOT, IRIS_RECORD),
        ("fixed", "fixed_model:pipe", fixed_dir, {"x": 1.5}),
    ]
    for name, spec, cwd, record in models:
        ours = packflow_server(spec, cwd)
        theirs = None
        try:
            if not args.skip_litserve:
                theirs = litserve_server(spec, cwd, script)
            for connections in (64, 256):
                rounds: dict[str, list[dict[str, Any]]] = {"packflow": [], "litserve": []}
                order = [("packflow", ours), ("litserve", theirs)] * 2
                for label, server in order:
                    if server is None:
                        continue
                    result = wrk(
                        server.port, record, connections, args.duration, work / "post.lua"
                    )
                    rounds[label].append(result)
                    print(
                        f"{name:5} c={connections:3} {label:8} {result['rps']:9.0f} req/s  "
                        f"p50 {result['p50']:7.2f} ms  p99 {result['p99']:7.2f} ms  "
                        f"non-2xx {result['non2xx']}",
                        flush=True,
                    )
                if rounds["litserve"]:
                    ours_rps = statistics.mean(r["rps"] for r in rounds["packflow"])
                    theirs_rps = statistics.mean(r["rps"] for r in rounds["litserve"])
                    ours_p99 = statistics.mean(r["p99"] for r in rounds["packflow"])
                    theirs_p99 = statistics.mean(r["p99"] for r in rounds["litserve"])
                    print(
                        f"{name:5} c={connections:3} ratio {ours_rps / theirs_rps:9.2f}x req/s  "
                        f"p99 {ours_p99:.2f} ms vs {theirs_p99:.2f} ms (target >= 1.5x, p99 <=)",
                        flush=True,
                    )
            if name == "iris":
                low_load(ours, spec, record, args)
        finally:
            ours.stop()
            if theirs is not None:
                theirs.stop()


def low_load(server: Server, spec: str, record: dict[str, Any], args: argparse.Namespace) -> None:
    from packflow.loaders import InferenceBackendLoader

    built = InferenceBackendLoader.for_project(spec).load()
    for _ in range(500):
        built(record)
    times = []
    for _ in range(5000):
        start = time.perf_counter()
        built(record)
        times.append(time.perf_counter() - start)
    direct = statistics.median(times) * 1000
    served = wrk(server.port, record, 1, max(3, args.duration // 2), Path(tempfile.mktemp()))
    print(
        f"low load: direct call p50 {direct:.3f} ms, served p50 {served['p50']:.3f} ms "
        f"(wrk -c1, {served['rps']:.0f} req/s): {served['p50'] - direct:+.3f} ms "
        "(target <= +1 ms)",
        flush=True,
    )


def ndjson(args: argparse.Namespace) -> None:
    server = packflow_server(str(IRIS), ROOT)
    try:
        pad = "x" * 8000  # ~8 KB lines: the per-line costs are paid 131,000 times, not 1M
        line = (json.dumps({**IRIS_RECORD, "pad": pad}) + "\n").encode()
        lines = int(args.ndjson_gb * 1024**3 // len(line))
        per_chunk = 256
        chunk = line * per_chunk
        sock = socket.create_connection(("127.0.0.1", server.port))
        # Warm up (the first batches allocate), then take the baseline.
        for _ in range(3):
            http_get(server.port, "/v2/health/ready")
        base = server.rss_mib()
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                peak[0] = max(peak[0], server.rss_mib())

        def send() -> None:
            head = (
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head.encode())
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            for _ in range(lines // per_chunk):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answered, tail = 0, b""
        expected = (lines // per_chunk) * per_chunk
        while answered < expected:
            data = sock.recv(1 << 20)
            if not data:
                break
            answered += (tail + data).count(b"}\n")
            tail = data[-1:]
        elapsed = time.perf_counter() - start
        done.set()
        sender.join(10)
        sock.close()
        sent_gib = expected * len(line) / 1024**3
        print(
            f"ndjson: {sent_gib:.2f} GiB, {expected} lines in {elapsed:.1f} s "
            f"({expected / elapsed:.0f} lines/s), {answered} answered; server RSS "
            f"{base:.1f} MiB -> peak {peak[0]:.1f} MiB: +{peak[0] - base:.1f} MiB "
            "(target <= +64 MiB)",
            flush=True,
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--ndjson-gb", type=float, default=1.0, help="size of the NDJSON body")
    parser.add_argument("--skip-litserve", action="store_true")
    parser.add_argument("--only", choices=("throughput", "ndjson"), default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk on the PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "throughput"):
            throughput(args, Path(folder))
        if args.only in (None, "ndjson"):
            ndjson(args)


if __name__ == "__main__":
    main()
