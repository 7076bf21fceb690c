"""Real brokers for the stream tests: one ``redis-server`` and one librdkafka mock cluster
per test session, on free loopback ports, stopped at the end; a fresh stream per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from packflow.streams.local import LocalRedis, mock_kafka_cluster

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
