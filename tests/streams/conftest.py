"""Real brokers for the stream tests: one ``redis-server`` and one librdkafka mock cluster
per test session, on free loopback ports, stopped at the end; a fresh stream per test."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from packflow.streams.local import LocalRedis, mock_kafka_cluster

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: The mock cluster's group joins are slow with Kafka's default timeouts; a consumer that
#: was killed is noticed after the session timeout.
KAFKA_FAST = "session.timeout.ms=4000&heartbeat.interval.ms=200&max.poll.interval.ms=5000"

_names = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    with mock_kafka_cluster() as url:
        yield url


@pytest.fixture
def fresh(request: pytest.FixtureRequest) -> str:
    """A stream or topic name no other test uses."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"{stem}-{os.getpid()}-{next(_names)}"


def packflow_run(args: Sequence[str], **popen: object) -> subprocess.Popen[str]:
    """``packflow run ARGS`` as a subprocess that can load ``stream_pipelines``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "packflow", "run", *args],
        env=env,
        cwd=str(HERE),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
