"""``packflow serve``: a pipeline as an HTTP service, on Starlette and uvicorn.

- :func:`create_app` returns the ASGI application (Starlette) for a pipeline.
- :class:`ServeOptions` holds the batching and the bounds it runs with.
- :func:`packflow.serve.server.serve` runs it on uvicorn (what ``packflow serve`` does).

Starlette and uvicorn are the extra ``serve`` (``pip install 'packflow[serve]'``);
``import packflow`` does not import this package.
"""

from __future__ import annotations

from packflow.prebuilt.extras import require_extra

require_extra("starlette", "serve", "packflow.serve")

from packflow.serve.app import create_app  # noqa: E402
from packflow.serve.options import ServeOptions  # noqa: E402

__all__ = ["ServeOptions", "create_app"]
