"""The HTTP application: a pipeline behind ``POST /predict``, on Starlette.

Every record of every request goes through one shared
:class:`~packflow.serve.dispatch.Dispatcher`, so batches count records, not requests:
the records of concurrent requests share a batch, a large request is spread over
several, and each request gets back exactly its own outputs, in order. Failures are
isolated per record; each becomes an :class:`packflow.runtime.isolation.ErrorRow`
numbered from the start of its own request. An NDJSON body is read, run and answered
line by line (the rows of :mod:`packflow.runtime.jsonl`, as ``packflow run`` writes
them) with a bounded number of records in flight, so a body of any size streams through
in bounded memory.

The hot endpoint is a plain ASGI callable (no request object, no response class), and
the bookkeeping per request is a few integer updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from packflow._text import closest
from packflow.log import get_logger
from packflow.runtime.isolation import ErrorRow, is_record_error
from packflow.runtime.jsonl import LineError, parse_line, serialize
from packflow.serve.dispatch import Dispatcher, Failed
from packflow.serve.options import ServeOptions

if TYPE_CHECKING:
    from packflow.runtime.contracts import Instance

__all__ = ["NDJSON_TYPES", "create_app"]

#: The content types read (and answered) as JSON Lines, one record per line.
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})
_JSON = b"application/json"
_NDJSON = b"application/x-ndjson"
#: Records of one NDJSON request in flight, in batches (enough to fill the batches while
#: the request is read, few enough to bound memory whatever the body's size).
_STREAM_WINDOW = 4

logger = get_logger("serve")


# --------------------------------------------------------------------------- responses


def _problem(kind: str, message: str, **details: Any) -> bytes:
    """The body of an HTTP error: ``{"error": {"type", "message", ...}}``."""
    return json.dumps({"error": {"type": kind, "message": message, **details}}).encode()


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = _JSON,
    retry_after: int | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Failed:
    """What an endpoint hands back for a request it could not answer with records."""

    __slots__ = ("body", "retry_after", "status")

    def __init__(self, status: int, body: bytes, retry_after: int | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_body(body: bytes) -> tuple[str, list[Any]] | _Failed:
    """The request's shape (``object``, ``array``, ``instances``) and records, or a 400."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _Failed(
            400,
            _problem(
                "InvalidJSON", f"body is not valid UTF-8 at byte {exc.start}", position=exc.start
            ),
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        message = (
            f"malformed JSON at line {exc.lineno}, column {exc.colno} "
            f"(character {exc.pos}): {exc.msg}"
        )
        where = {"line": exc.lineno, "column": exc.colno, "position": exc.pos}
        return _Failed(400, _problem("InvalidJSON", message, **where))
    except ValueError as exc:
        return _Failed(400, _problem("InvalidJSON", f"malformed JSON: {exc}"))
    if type(value) is dict:
        if len(value) == 1 and "instances" in value:
            instances = value["instances"]
            if type(instances) is not list:
                return _Failed(400, _shape(f'"instances" is {_json_kind(instances)}', "instances"))
            return _records("instances", instances)
        return "object", [value]
    if type(value) is list:
        return _records("array", value)
    return _Failed(400, _shape(f"the body is {_json_kind(value)}", None))


def _records(kind: str, items: list[Any]) -> tuple[str, list[Any]] | _Failed:
    for index, item in enumerate(items):
        if type(item) is not dict:
            where = "instances" if kind == "instances" else "the array"
            found = f"element {index} of {where} is {_json_kind(item)}"
            return _Failed(400, _shape(found, kind, index=index))
    return kind, items


def _shape(found: str, kind: str | None, **details: Any) -> bytes:
    expected = 'a JSON object (one record), an array of objects, or {"instances": [objects]}'
    return _problem("InvalidShape", f"{found}; expected {expected}", **details)


def _json_kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _output_failure(exc: Exception, index: int) -> ErrorRow:
    """The error row of an output that cannot be written as JSON."""
    return ErrorRow(type(exc).__name__, str(exc), "output", index)


# --------------------------------------------------------------------------- the service


class _Service:
    """The state of one application: the pipeline, its batcher and the queue count."""

    def __init__(
        self,
        target: Any,
        config: dict[str, Any],
        options: ServeOptions,
        name: str,
        version: str | None,
    ) -> None:
        self.target = target
        self.config = config
        self.options = options
        self.name = name
        self.version = version
        self.limit = options.queue_limit
        self.window = _STREAM_WINDOW * options.max_batch_size
        #: The ready instance (a built pipeline, or a backend): it runs the batches and
        #: answers ready().
        self.built: Instance | None = None
        self.batcher: Dispatcher | None = None
        self.confirmed = False  # ready() has returned True once
        self.build_error: BaseException | None = None
        self._building: asyncio.Task[None] | None = None
        self._documents: dict[str, bytes] = {}

    # -- building --------------------------------------------------------------------

    def _build(self) -> Any:
        from packflow.parts import build_definition

        return build_definition(self.target, **self.config)

    async def start(self) -> None:
        """Build the pipeline (off the event loop) and start the batcher."""
        if self.built is not None:
            return
        try:
            instance = await asyncio.to_thread(self._build)
        except Exception as exc:
            self.build_error = exc
            logger.error("could not build pipeline %r: %s: %s", self.name, type(exc).__name__, exc)
            raise
        self.built = instance
        _export_metrics(instance)
        self.batcher = Dispatcher(instance, self.options.batching)
        logger.info("pipeline %r built; serving", self.name)

    def ensure_started(self) -> None:
        """Start building in the background when no lifespan did (a mounted app)."""
        if self.built is None and self._building is None and self.build_error is None:

            async def build() -> None:
                # A failure is kept in build_error, and reported by readiness and predict.
                with contextlib.suppress(Exception):
                    await self.start()

            self._building = asyncio.get_running_loop().create_task(build())

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.aclose()
        if self._building is not None:
            await asyncio.gather(self._building, return_exceptions=True)

    def is_ready(self) -> tuple[bool, str]:
        """Whether calls can be served, and why not."""
        if self.build_error is not None:
            error = self.build_error
            return False, f"the pipeline failed to build: {type(error).__name__}: {error}"
        if self.built is None:
            self.ensure_started()
            return False, f"pipeline {self.name!r} is being built"
        try:
            ready = bool(self.built.ready())
        except Exception as exc:
            logger.warning("ready() of %r raised %s: %s", self.name, type(exc).__name__, exc)
            return False, f"ready() raised {type(exc).__name__}: {exc}"
        if ready:
            self.confirmed = True
            return True, ""
        return False, f"pipeline {self.name!r} is not ready (its ready() returned False)"

    def not_ready(self) -> _Failed | None:
        if self.confirmed:
            return None
        ready, why = self.is_ready()
        if ready:
            return None
        return _Failed(503, _problem("NotReady", why), retry_after=self.options.retry_after)

    @property
    def queued(self) -> int:
        """Records admitted and not answered yet."""
        return self.batcher.queued if self.batcher is not None else 0

    def full(self, count: int) -> _Failed | None:
        """The 503 for a request of ``count`` records when the queue has no room for it."""
        queued = self.queued
        if queued == 0 or queued + count <= self.limit:
            return None
        message = (
            f"the queue is full ({queued} records waiting, max_queue={self.limit}); "
            f"retry after {self.options.retry_after} s"
        )
        return _Failed(503, _problem("QueueFull", message), retry_after=self.options.retry_after)

    def document(self, kind: str) -> bytes:
        """The OpenAPI document or the V2 metadata, made once."""
        cached = self._documents.get(kind)
        if cached is None:
            from packflow.parts import check_definition
            from packflow.serve.schema import api_document, model_metadata

            checked = check_definition(self.built)  # the check it was built from
            make = api_document if kind == "openapi" else model_metadata
            cached = json.dumps(make(self.name, self.version, checked)).encode()
            self._documents[kind] = cached
        return cached

    # -- running records ----------------------------------------------------------------

    async def run(self, records: list[Any]) -> list[Any]:
        """Each record's output, or a :class:`Failed` for it, in order."""
        assert self.batcher is not None
        return await self.batcher.submit(records)


# --------------------------------------------------------------------------- endpoints


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | bool:
    """The whole body; ``False`` when it grows over ``limit`` bytes, ``True`` when the
    client went away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return True
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return False
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class _Predict:
    """``POST /predict`` and ``POST /v1/models/{name}:predict``, as a plain ASGI app."""

    def __init__(self, service: _Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        name = scope.get("path_params", {}).get("name")
        if name is not None and name != service.name:
            hint = closest(name, [service.name])
            known = f"did you mean {hint!r}?" if hint else f"this server serves {service.name!r}"
            body = _problem("UnknownModel", f"no model named {name!r}; {known}")
            return await _answer(send, 404, body)
        failed = service.not_ready()
        if failed is not None:
            return await _answer(send, failed.status, failed.body, retry_after=failed.retry_after)
        content_type = _header(scope, b"content-type")
        if content_type is not None:
            kind = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
            if kind in NDJSON_TYPES:
                return await _stream_lines(service, scope, receive, send)
        limit = service.options.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _answer(send, 413, _too_large(int(length), limit))
        read = await _read_body(receive, limit)
        if read is True:
            return None
        if read is False:
            return await _answer(send, 413, _too_large(None, limit))
        assert isinstance(read, bytes)
        parsed = _parse_body(read)
        if type(parsed) is _Failed:
            return await _answer(send, parsed.status, parsed.body)
        assert type(parsed) is tuple
        kind, records = parsed
        failed = service.full(len(records))
        if failed is not None:
            return await _answer(send, failed.status, failed.body, retry_after=failed.retry_after)
        scope["packflow.records"] = len(records)
        results = await service.run(records) if records else []
        status, answer = _respond(service, kind, results)
        await _answer(send, status, answer)
        return None


def _too_large(length: int | None, limit: int) -> bytes:
    size = f" ({length} bytes)" if length is not None else ""
    return _problem(
        "BodyTooLarge",
        f"the body{size} is larger than max_body_bytes={limit}; send fewer records per "
        "request, or stream them as application/x-ndjson",
        limit=limit,
    )


def _respond(service: _Service, kind: str, results: list[Any]) -> tuple[int, bytes]:
    """The status and body of a JSON request's answer."""
    texts: list[str] = []
    for index, result in enumerate(results):
        if type(result) is Failed:
            if not is_record_error(result.error):
                return _batch_failure(service, result.error)
            row = result.row(index)
        else:
            try:
                texts.append(serialize(result))
                continue
            except (TypeError, ValueError) as exc:
                row = _output_failure(exc, index)
        text = json.dumps(row.as_row(), ensure_ascii=False)
        if service.options.on_error == "raise" or kind == "object":
            return 422, text.encode()
        texts.append(text)
    if kind == "object":
        return 200, texts[0].encode()
    joined = "[" + ",".join(texts) + "]"
    if kind == "instances":
        joined = '{"predictions":' + joined + "}"
    return 200, joined.encode()


def _batch_failure(service: _Service, exc: BaseException) -> tuple[int, bytes]:
    """A 500 for an error about a whole batch (the pipeline broke its contract)."""
    logger.error("pipeline %r failed a whole batch: %s: %s", service.name, type(exc).__name__, exc)
    return 500, _problem(type(exc).__name__, str(exc), stage=getattr(exc, "stage", None))


async def _stream_lines(service: _Service, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer an NDJSON body line by line, as it is read, in bounded memory."""
    failed = service.full(1)
    if failed is not None:
        return await _answer(send, failed.status, failed.body, retry_after=failed.retry_after)
    assert service.batcher is not None
    submit = service.batcher.submit
    line_limit = service.options.max_body_bytes
    stop_at_failure = service.options.on_error == "raise"
    # What each input line becomes, in order: "" for a blank line, a LineError for a
    # line that holds no record, or (line number, index, the running record). The reader
    # waits for room, so at most `window` lines are held whatever the body's size.
    slots: deque[Any] = deque()
    room = asyncio.Semaphore(service.window)
    arrived = asyncio.Event()
    done = False

    async def put(slot: Any) -> None:
        await room.acquire()
        slots.append(slot)
        arrived.set()

    async def read() -> None:
        nonlocal done
        number = index = 0
        pending = bytearray()
        skipping = False  # inside a line that is over the limit

        async def line(raw: bytes | None) -> None:
            nonlocal number, index
            number += 1
            if raw is None:
                message = f"the line is longer than max_body_bytes={line_limit}"
                await put(LineError(number, "InvalidLine", message, "input", index))
                index += 1
                return
            parsed = parse_line(raw, number)
            if parsed is None:
                await put("")
                return
            if type(parsed) is dict:
                await room.acquire()
                slots.append((number, index, submit([parsed])))
                arrived.set()
            else:
                await put(LineError(number, "InvalidLine", str(parsed), "input", index))
            index += 1

        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                start = 0
                while chunk:
                    end = chunk.find(b"\n", start)
                    if end < 0:
                        if not skipping:
                            pending += chunk[start:]
                            if len(pending) > line_limit:
                                pending.clear()
                                skipping = True
                        break
                    if skipping:
                        skipping = False
                        await line(None)
                    else:
                        pending += chunk[start:end]
                        await line(bytes(pending) if len(pending) <= line_limit else None)
                        pending.clear()
                    start = end + 1
                if not message.get("more_body", False):
                    if skipping:
                        await line(None)
                    elif pending:
                        await line(bytes(pending))
                    return
        finally:
            done = True
            arrived.set()

    reader = asyncio.ensure_future(read())
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", _NDJSON)]}
    await send(start)
    records = 0
    try:
        stopped = False
        while not stopped:
            if not slots:
                if done:
                    break
                arrived.clear()
                await arrived.wait()
                continue
            lines: list[str] = []
            # The first line waited for, then every following one already answered, in
            # one write.
            while slots:
                slot = slots[0]
                if lines and type(slot) is tuple and not slot[2].done():
                    break
                slots.popleft()
                room.release()
                text, failed_line = await _line_text(service, slot)
                lines.append(text)
                records += type(slot) is tuple
                if failed_line and stop_at_failure:
                    stopped = True
                    break
            body = ("\n".join(lines) + "\n").encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
    finally:
        if not reader.done():
            reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        for slot in slots:
            if type(slot) is tuple:
                slot[2].cancel()
        scope["packflow.records"] = records
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return None


async def _line_text(service: _Service, slot: Any) -> tuple[str, bool]:
    """The output line for one input line, and whether it is an error row."""
    if isinstance(slot, str):
        return slot, False
    if isinstance(slot, LineError):
        return json.dumps(slot.row(), ensure_ascii=False), True
    number, index, future = slot
    (output,) = await future
    if type(output) is Failed:
        if not is_record_error(output.error):
            error = output.error
            logger.error(
                "pipeline %r failed a whole batch: %s: %s",
                service.name,
                type(error).__name__,
                error,
            )
        row = output.row(index).with_line(number)
        return json.dumps(row.as_row(), ensure_ascii=False), True
    try:
        return serialize(output), False
    except (TypeError, ValueError) as exc:
        row = _output_failure(exc, index).with_line(number)
        return json.dumps(row.as_row(), ensure_ascii=False), True


# --------------------------------------------------------------------------- the rest


class _Guard:
    """Outermost of our middleware: the 500 for our own bugs, and one access line."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            logger.exception(
                "internal error answering %s %s: %s: %s",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                exc,
            )
            if status == 0:
                status = 500
                message = f"the server failed: {type(exc).__name__}: {exc} (see the server log)"
                await _answer(send, 500, _problem("InternalServerError", message))
        finally:
            if logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                records = scope.get("packflow.records")
                logger.info(
                    '%s "%s %s HTTP/%s" %d%s %.1f ms',
                    f"{client[0]}:{client[1]}" if client else "-",
                    scope.get("method"),
                    scope.get("path"),
                    scope.get("http_version", "1.1"),
                    status,
                    f" {records} record{'' if records == 1 else 's'}"
                    if records is not None
                    else "",
                    (perf_counter() - start) * 1000,
                )
        return None


def _json(status: int, value: Any, retry_after: int | None = None) -> Response:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return JSONResponse(value, status_code=status, headers=headers)


def _routes(service: _Service) -> list[Route]:
    def unknown(name: str) -> Response | None:
        if name == service.name:
            return None
        hint = closest(name, [service.name])
        known = f"did you mean {hint!r}?" if hint else f"this server serves {service.name!r}"
        message = f"no model named {name!r}; {known}"
        return _json(404, {"error": {"type": "UnknownModel", "message": message}})

    async def live(request: Request) -> Response:
        return _json(200, {"live": True})

    async def ready(request: Request) -> Response:
        is_ready, why = service.is_ready()
        if is_ready:
            return _json(200, {"ready": True})
        body = {"ready": False, "error": {"type": "NotReady", "message": why}}
        return _json(503, body, service.options.retry_after)

    async def model_ready(request: Request) -> Response:
        return unknown(request.path_params["name"]) or await ready(request)

    async def metadata(request: Request) -> Response:
        refused = unknown(request.path_params["name"]) or _not_built(service)
        if refused is not None:
            return refused
        return Response(service.document("metadata"), media_type="application/json")

    async def openapi(request: Request) -> Response:
        refused = _not_built(service)
        if refused is not None:
            return refused
        return Response(service.document("openapi"), media_type="application/json")

    async def metrics(request: Request) -> Response:
        if not _metrics_installed():
            message = (
                "Prometheus metrics need prometheus-client: pip install 'packflow[metrics]' "
                "(see docs/metrics-export.md)"
            )
            return _json(404, {"error": {"type": "NotFound", "message": message}})
        from packflow.observe.prometheus import prometheus_exposition

        # This worker's own registry, or every worker's files with PROMETHEUS_MULTIPROC_DIR.
        body, content_type = prometheus_exposition(accept=request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    predict = _Predict(service)
    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/v1/models/{name}:predict", predict, methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _metrics_installed() -> bool:
    """Whether prometheus-client (the ``metrics`` extra) is there, without importing it."""
    import importlib.util

    return importlib.util.find_spec("prometheus_client") is not None


def _export_metrics(instance: Any) -> None:
    """Record the served pipeline's calls in Prometheus metrics, when they can be served."""
    if _metrics_installed():
        from packflow.observe.prometheus import enable_prometheus

        enable_prometheus(instance)


def _not_built(service: _Service) -> Response | None:
    if service.built is not None:
        return None
    _, why = service.is_ready()
    body = {"error": {"type": "NotReady", "message": why}}
    return _json(503, body, service.options.retry_after)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = (
            f"no endpoint {request.url.path}; try POST /predict, GET /v2/health/ready, "
            "GET /openapi.json"
        )
    kind = "MethodNotAllowed" if exc.status_code == 405 else "NotFound"
    return JSONResponse(
        {"error": {"type": kind, "message": message}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _target_name(target: Any) -> str:
    name = getattr(target, "name", None)
    if isinstance(name, str) and name:
        return name
    cls = target if isinstance(target, type) else type(target)
    return cls.__name__


def _check_target(target: Any) -> None:
    from packflow.parts import is_definition

    if not is_definition(target):
        raise TypeError(
            "create_app() serves a Pipeline, a composed pipeline, a built pipeline, or an "
            f"InferenceBackend class or instance; got {type(target).__name__}"
        )


def create_app(
    pipeline: Any,
    *,
    config: dict[str, Any] | None = None,
    max_batch_size: int = 64,
    max_latency_ms: float = 5.0,
    max_queue: int | None = None,
    max_body_bytes: int | None = None,
    on_error: str = "row",
    retry_after: int = 1,
    version: str | None = None,
) -> Starlette:
    """The ASGI application (Starlette) that serves ``pipeline`` over HTTP.

    Run it with any ASGI server (``uvicorn.run(app)``), mount it in your own Starlette
    or FastAPI app, or test it with :func:`packflow.testing.serve_client`.

    Parameters
    ----------
    pipeline
        A ``Pipeline`` or composed pipeline (built with ``config`` when the app starts,
        off the event loop), a built pipeline, or an ``InferenceBackend`` class (made
        with ``config``) or instance.
    config
        Config overrides for building an unbuilt ``pipeline``.
    max_batch_size, max_latency_ms, max_queue, max_body_bytes, on_error, retry_after
        See :class:`packflow.serve.ServeOptions`.
    version
        The model version reported by ``/v2/models/{name}`` and ``/openapi.json``.

    Raises
    ------
    TypeError
        When ``pipeline`` is none of the above.
    ValueError
        For an invalid option.

    The app's startup raises what building raises (``ConfigError``,
    ``InferenceBackendInitializationError``, ``InferenceBackendLoadError`` for ``config``
    given with a pipeline that is already built, ...).

    Examples
    --------
    >>> app = create_app(pipe, max_batch_size=32)  # doctest: +SKIP
    >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
    """
    from packflow.serve.options import DEFAULT_MAX_BODY_BYTES

    overrides = dict(config or {})
    _check_target(pipeline)
    options = ServeOptions(
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        max_queue=max_queue,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes,
        on_error=on_error,  # type: ignore[arg-type]  # checked by ServeOptions
        retry_after=retry_after,
    )
    service = _Service(pipeline, overrides, options, _target_name(pipeline), version)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=_routes(service),
        middleware=[Middleware(_Guard)],
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=lifespan,
    )
    app.state.packflow = service
    return app
