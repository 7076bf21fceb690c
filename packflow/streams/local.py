"""Throwaway brokers on loopback, for tests, docs and trying things out.

- :class:`LocalRedis` runs the ``redis-server`` binary (Debian package
  ``redis-server``) on a free loopback port, in a temporary folder.
- :func:`mock_kafka_cluster` hosts librdkafka's mock cluster: a Kafka-protocol broker
  set on loopback TCP, run by a client of this process, that any other client or
  process can connect to (consumer groups and offset commits work). It lives as long
  as the ``with`` block.

Neither is meant for production; both are what packflow's own tests run against.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

__all__ = ["LocalRedis", "free_port", "mock_kafka_cluster"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalRedis:
    """A ``redis-server`` on a free loopback port, data in a temporary folder.

    Use it as a context manager (started on entry, killed and its folder removed on
    exit). ``url`` is ``redis://127.0.0.1:PORT``: append ``/STREAM``. ``kill()`` and
    ``start()`` simulate an outage; with ``durable=True`` every write is on disk
    (append-only file, fsync always), so that a restart keeps the streams.

    Raises
    ------
    FileNotFoundError
        When ``redis-server`` is not installed (``apt-get install redis-server``).
    TimeoutError
        When the server does not answer within ``timeout`` seconds.
    """

    def __init__(
        self, *, executable: str = "redis-server", durable: bool = False, timeout: float = 10.0
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise FileNotFoundError(
                f"{executable} not found; install it (Debian: apt-get install redis-server)"
            )
        self.executable = found
        self.durable = durable
        self.timeout = timeout
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._folder: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRedis:
        """Start the server (again, on the same port and folder) and wait until it answers."""
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="packflow-redis-")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else []
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                self._folder,
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server at once (``SIGKILL``), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait(timeout=self.timeout)

    def close(self) -> None:
        """Kill the server and remove its folder."""
        self.kill()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def folder(self) -> Path | None:
        """Where the server keeps its files while it exists."""
        return Path(self._folder) if self._folder is not None else None


@contextmanager
def mock_kafka_cluster(brokers: int = 3, *, timeout: float = 10.0) -> Iterator[str]:
    """Host librdkafka's mock cluster; yield its ``kafka://h:p,h:p,h:p`` URL (add ``/TOPIC``).

    Topics are created on first use, with 4 partitions.

    Raises
    ------
    MissingExtraError
        When confluent-kafka is not installed.
    """
    from packflow.streams.kafka_topics import kafka_module

    kafka = kafka_module()
    host = kafka.Producer(
        {"test.mock.num.brokers": brokers, "log_level": 3, "log.connection.close": False}
    )
    try:
        metadata = host.list_topics(timeout=timeout)
        found = sorted(metadata.brokers.values(), key=lambda broker: broker.id)
        yield "kafka://" + ",".join(f"{broker.host}:{broker.port}" for broker in found)
    finally:
        host.flush(1.0)
        del host
