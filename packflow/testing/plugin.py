"""packflow's pytest plugin: fixtures for testing pipelines.

Installed with packflow as the ``pytest11`` entry point ``packflow``, so the fixtures
are available in every test without an import or a ``conftest.py``:

``packflow_env``
    The environment packflow reads, isolated for the test: no override file
    (``BACKEND_CONFIG_FILE_PATH`` unset) and no ``PACKFLOW_LOG_LEVEL``, the level of the
    ``packflow`` logger restored afterwards. ``packflow_env.config_file({...})`` writes
    an override file for this test only; ``packflow_env.log_level("DEBUG")`` sets the
    level for this test only.
``packflow_build``
    ``packflow_build(pipe, resources={"model": fake}, **overrides)`` builds ``pipe``
    (a pipeline, a composition or a class backend) inside that isolated environment.
``packflow_client``
    ``packflow_client(pipe, **options)`` serves ``pipe`` (what
    ``packflow.serve.create_app`` takes, with its options) to an in-process HTTP
    client, started (the pipeline built) and shut down after the test, in that isolated
    environment. Needs the ``serve`` extra.

Nothing here runs unless a test asks for a fixture, and hypothesis is not imported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from packflow.config import CONFIG_FILE_ENV_VAR
from packflow.log import LOGGER_NAME, configure_from_env

__all__ = ["PackflowEnv", "packflow_build", "packflow_client", "packflow_env"]

LOG_LEVEL_ENV_VAR = "PACKFLOW_LOG_LEVEL"


class PackflowEnv:
    """What ``packflow_env`` gives a test: its own override file and log level."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self._monkeypatch = monkeypatch
        self._folder = folder
        self._files = 0

    def config_file(self, configs: Mapping[str, Any]) -> Path:
        """Write ``{"configs": configs}`` as this test's override file and point
        ``BACKEND_CONFIG_FILE_PATH`` at it.

        For a composition, ``configs`` holds one object per part name.

        Returns
        -------
        Path
            The file written (in the test's ``tmp_path``).
        """
        self._files += 1
        path = self._folder / f"packflow-overrides-{self._files}.json"
        path.write_text(json.dumps({"configs": dict(configs)}), encoding="utf-8")
        self._monkeypatch.setenv(CONFIG_FILE_ENV_VAR, str(path))
        return path

    def log_level(self, level: str | int) -> None:
        """Set ``PACKFLOW_LOG_LEVEL`` (and the ``packflow`` logger) for this test."""
        self._monkeypatch.setenv(LOG_LEVEL_ENV_VAR, str(level))
        configure_from_env()


@pytest.fixture
def packflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PackflowEnv]:
    """packflow's environment variables isolated for one test.

    ``BACKEND_CONFIG_FILE_PATH`` and ``PACKFLOW_LOG_LEVEL`` are unset for the test and
    restored after it, as is the level of the ``packflow`` logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    monkeypatch.delenv(CONFIG_FILE_ENV_VAR, raising=False)
    monkeypatch.delenv(LOG_LEVEL_ENV_VAR, raising=False)
    try:
        yield PackflowEnv(monkeypatch, tmp_path)
    finally:
        logger.setLevel(level)


@pytest.fixture
def packflow_build(packflow_env: PackflowEnv) -> Callable[..., Any]:
    """A function that builds a pipeline for the test, with fakes for its resources.

    ``packflow_build(pipe, resources={"model": fake}, **overrides)`` returns the built
    instance of ``pipe`` (a ``Pipeline`` or a composition, whose resources and
    overrides are named by part: ``resources={"a.model": fake}``, ``a={...}``), or of a
    class backend (overrides are its config; it has no resources to fake). Built with
    ``packflow_env`` in effect, so an override file set in the shell does not leak in.
    """

    def build(pipe: Any, *, resources: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
        from packflow.parts import as_parts, build_definition

        if not resources:
            return build_definition(pipe, **overrides)
        parts = as_parts(pipe)
        refused = parts[0].fakes_refused if len(parts) == 1 else None
        if refused is not None:
            raise TypeError(
                f"packflow_build({parts[0].name}, resources=...): {refused}; build a test "
                "subclass that overrides initialize() instead"
            )
        return pipe.build(resources=resources, **overrides)

    return build


@pytest.fixture
def packflow_client(packflow_env: PackflowEnv) -> Iterator[Callable[..., Any]]:
    """A function that serves a pipeline to an in-process HTTP client for the test.

    ``client = packflow_client(pipe, max_batch_size=8)`` returns a started client (the
    pipeline is built); every client made is shut down when the test ends.
    """
    from contextlib import ExitStack

    from packflow.testing.client import serve_client

    with ExitStack() as stack:

        def start(pipe: Any, **options: Any) -> Any:
            return stack.enter_context(serve_client(pipe, **options))

        yield start
