"""The async machinery: running ``async def`` steps from plain calls, plain steps off the loop.

A pipeline may mix ``async def`` and plain stages and initializers. Two ways run it:

- **The async path** (``await built.acall(...)``, the async batcher): ``async def``
  steps are awaited on the caller's event loop; plain stages run in a worker thread
  (:func:`in_thread`) so that a slow one never stalls the loop, unless marked with
  :func:`packflow.run_inline`; the preprocessor, packflow's own and cheap, runs on the
  loop.
- **Plain calls** (``built(...)``, ``stream``, the thread batcher, ``packflow run``, a
  Ray actor): plain steps run in the calling thread as always; each ``async def`` step
  is run to completion on *packflow's loop* (:func:`run_blocking`), one event loop in a
  background thread per process, where the async initializers ran too. One loop for
  every plain call means an async client made by an initializer (a connection pool, a
  session) keeps working from any thread, and calls from many threads overlap their
  I/O there. Inside a running loop a plain call raises
  :class:`~packflow.exceptions.RunningLoopError`, pointing to ``acall``: blocking the
  loop for a whole call would stall every other task on it.

This module imports ``asyncio``; ``import packflow`` does not import it (a pipeline
without async steps never does).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["CancelledError", "in_thread", "loop_is_running", "own_cancellation", "run_blocking"]

T = TypeVar("T")

CancelledError = asyncio.CancelledError


def loop_is_running() -> bool:
    """Whether an event loop runs in the calling thread."""
    return asyncio._get_running_loop() is not None


class _Portal:
    """packflow's event loop, in a daemon thread, started on first use (anew after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                started = threading.Event()
                made: list[asyncio.AbstractEventLoop] = []

                def serve() -> None:
                    loop = asyncio.new_event_loop()
                    asyncio.set_event_loop(loop)
                    made.append(loop)
                    started.set()
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="packflow-loop", daemon=True)
                thread.start()
                started.wait()
                self._loop, self._pid = made[0], os.getpid()
            return self._loop


_portal = _Portal()


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on packflow's loop; wait for it in this thread.

    Used for the ``async def`` steps of a plain call and for async initializers (which
    run when a pipeline is built, wherever that is). Interrupting the wait
    (``KeyboardInterrupt``) cancels the coroutine.
    """
    future = asyncio.run_coroutine_threadsafe(coroutine, _portal.loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def in_thread(func: Callable[[Any], T], data: Any) -> T:
    """``func(data)`` in the loop's default worker threads, in a copy of this context.

    What ``asyncio.to_thread`` does, without its ``*args``/``**kwargs`` handling.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, data)
    return await loop.run_in_executor(None, call)


def own_cancellation() -> bool:
    """Whether the current task is being cancelled (rather than a stage having raised
    ``CancelledError`` of its own accord).

    Python 3.10 cannot tell the two apart: there every ``CancelledError`` counts as a
    cancellation.
    """
    task = asyncio.current_task()
    if task is None:
        return True
    cancelling = getattr(task, "cancelling", None)
    return True if cancelling is None else bool(cancelling())
