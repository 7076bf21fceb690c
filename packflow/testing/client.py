"""An in-process HTTP client for a served pipeline: real requests, no socket.

:func:`serve_client` wraps the app of :func:`packflow.serve.create_app` in Starlette's
test client (httpx underneath), so a test sends the same requests a user would and
reads the same status codes and bodies, with the app's startup (the build) and shutdown
run by the ``with`` block.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from packflow.prebuilt.extras import require_extra

if TYPE_CHECKING:
    from starlette.testclient import TestClient

__all__ = ["serve_client"]


def serve_client(pipeline: Any, **options: Any) -> TestClient:
    """A client that talks to ``create_app(pipeline, **options)`` in process.

    Use it in a ``with`` block, which builds the pipeline (the app's startup) and shuts
    the app down at the end. An error in the server's own code is answered with a 500,
    as a real server answers it, not raised in the test.

    Parameters
    ----------
    pipeline
        What :func:`packflow.serve.create_app` serves.
    **options
        Its keyword arguments (``config``, ``max_batch_size``, ``on_error``, ...).

    Raises
    ------
    MissingExtraError
        When the ``serve`` extra (Starlette, httpx) is not installed.

    Examples
    --------
    >>> with serve_client(pipe) as client:  # doctest: +SKIP
    ...     assert client.post("/predict", json={"x": 1}).status_code == 200
    """
    require_extra("starlette", "serve", "packflow.testing.serve_client")
    require_extra("httpx", "serve", "packflow.testing.serve_client")
    from packflow.serve import create_app

    with warnings.catch_warnings():
        # Starlette 1.x asks for httpx2 in its test client; httpx works all the same.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    app = create_app(pipeline, **options)
    return TestClient(app, raise_server_exceptions=False)
