"""Running a pipeline's app on uvicorn: what ``packflow serve`` does.

With one worker the app runs in this process. With ``workers > 1`` uvicorn starts that
many processes that share the listening socket; each imports the pipeline and builds it
once, at startup (the settings travel in the environment variable
:data:`SETTINGS_ENV_VAR`, read by :func:`app_from_env`).

With several workers and prometheus-client installed, every worker writes its
Prometheus figures to one directory (``PROMETHEUS_MULTIPROC_DIR``: a temporary one made
for the run unless it is set), so that ``GET /metrics`` on any worker answers for all.

SIGTERM stops accepting connections, answers every request already accepted (a
streaming NDJSON response included), runs what the batcher holds, and returns, so the
command exits 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import attrs

from packflow.log import LOGGER_NAME
from packflow.serve.app import create_app
from packflow.serve.options import ServeOptions

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["SETTINGS_ENV_VAR", "app_from_env", "load_app", "serve"]

#: How the settings reach the worker processes.
SETTINGS_ENV_VAR = "PACKFLOW_SERVE_SETTINGS"


def _loader(path: str) -> Any:
    from packflow.exceptions import InferenceBackendLoadError
    from packflow.loaders import InferenceBackendLoader, loader_for_spec

    given = Path(path)
    if given.is_dir():
        return InferenceBackendLoader.for_project(given)
    if ":" in path and not given.exists():
        return loader_for_spec(path)
    raise InferenceBackendLoadError(
        f"{path}: not a project folder; give a folder holding packflow.yaml, or module:attribute"
    )


def _project_version(path: str) -> str | None:
    if not Path(path).is_dir():
        return None
    from packflow.projects.manifest import read_project_config

    return read_project_config(Path(path)).version


def load_app(path: str, options: ServeOptions | None = None) -> Starlette:
    """The app for ``path`` (a project folder or ``module:attribute``), not built yet.

    The pipeline is imported (so a missing module or attribute fails here) and built
    when the app starts, with the project's ``backend_config``.

    Raises
    ------
    InferenceBackendLoadError
        When ``path`` names nothing that can be served.
    """
    options = options or ServeOptions()
    loader = _loader(path)
    target = loader.resolve()
    config = dict(getattr(loader, "backend_config", {}) or {})
    return create_app(
        target,
        config=config or None,
        version=_project_version(path),
        **attrs.asdict(options),
    )


def _show_logs(level: str | None) -> None:
    """Access lines and errors of the ``packflow`` logger on stderr (one handler)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, logging.StreamHandler) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    if level is not None:
        logger.setLevel(level)


def app_from_env() -> Starlette:
    """The app a worker process serves, from :data:`SETTINGS_ENV_VAR` (set by :func:`serve`)."""
    settings = json.loads(os.environ[SETTINGS_ENV_VAR])
    _show_logs(settings["log_level"])
    return load_app(settings["path"], ServeOptions(**settings["options"]))


def _log_level() -> str | None:
    """INFO (one access line per request) unless ``PACKFLOW_LOG_LEVEL`` says otherwise."""
    return None if "PACKFLOW_LOG_LEVEL" in os.environ else "INFO"


def serve(
    path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    options: ServeOptions | None = None,
) -> None:
    """Serve ``path`` (a project folder or ``module:attribute``) on uvicorn until SIGTERM.

    Raises
    ------
    InferenceBackendLoadError
        When ``path`` cannot be imported (checked before any worker starts).
    ValueError
        When ``workers`` or ``port`` is out of range.
    SystemExit
        With uvicorn's code 3 when the app fails to start (e.g. the build failed).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    import uvicorn

    options = options or ServeOptions()
    level = _log_level()
    _show_logs(level)
    app = load_app(path, options)  # a user mistake fails here, before any worker
    common: dict[str, Any] = dict(
        host=host,
        port=port,
        lifespan="on",
        access_log=False,  # the packflow logger writes one line per request
        timeout_graceful_shutdown=None,  # every accepted request is answered
        log_level="info",
    )
    # uvicorn raises the signal that stopped it again once it has shut down; caught
    # here, a SIGTERM ends the command normally (exit 0) after the graceful shutdown.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        if workers == 1:
            uvicorn.run(app, **common)
            return
        settings = {"path": path, "options": attrs.asdict(options), "log_level": level}
        os.environ[SETTINGS_ENV_VAR] = json.dumps(settings)
        with _metrics_directory():
            uvicorn.run(
                "packflow.serve.server:app_from_env", factory=True, workers=workers, **common
            )
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """For several workers: one empty directory for all their Prometheus figures.

    Made (and removed after the run) unless ``PROMETHEUS_MULTIPROC_DIR`` names one
    already, or prometheus-client is not installed. The workers inherit it.
    """
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or not importlib.util.find_spec(
        "prometheus_client"
    ):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="packflow-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn shut down gracefully: nothing left to do."""
