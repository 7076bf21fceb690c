"""Per-record error isolation: ``on_error="row"``.

When a batch fails because of some of its records, it is split to find them: each bad
record gets an *error row* in its place and every other record its real output, in
order, so the output still lines up one to one with the input and nothing is lost.

The search costs little: a failing batch of ``n`` records with ``k`` bad ones takes at
most about ``2·k·log2(n) + 1`` attempts (each failing range is halved until the bad
record is alone), and fewer when the error names its record (the preprocessor's
``PreprocessorRuntimeError.index``): that record is set aside at once and the records
on either side are retried. A record whose range succeeded is never run again.

Only errors about records are isolated: a stage that raised (``StageError``), a record
the preprocessor or the run-time checks refused, a row that is not a dict. An error
about the whole batch (an output list that does not line up with its input) is raised
as it would be with ``on_error="raise"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Literal

import attrs

from packflow.exceptions import (
    InferenceBackendRuntimeError,
    PreprocessorRuntimeError,
    RuntimeTypeError,
    StageError,
)

__all__ = [
    "ERROR_KEY",
    "ON_ERROR_CHOICES",
    "ErrorRow",
    "Mark",
    "OnError",
    "aisolate",
    "check_on_error",
    "error_row",
    "is_error_row",
    "is_not_a_record",
    "is_record_error",
    "isolate",
    "mark_not_a_record",
]

OnError = Literal["raise", "row"]
ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "row")

#: The key of an error row: ``{"error": {"type", "message", "stage", "index"}}``.
ERROR_KEY = "error"


def check_on_error(value: Any) -> OnError:
    """``value`` if it is ``"raise"`` or ``"row"``.

    Raises
    ------
    ValueError
        For anything else, naming the choices.
    """
    if value == "raise" or value == "row":
        return value  # type: ignore[no-any-return]
    raise ValueError(f"on_error must be 'raise' or 'row', got {value!r}")


def is_record_error(exc: BaseException) -> bool:
    """Whether ``exc`` can be about some records of a batch rather than the whole batch."""
    if isinstance(exc, (StageError, RuntimeTypeError, PreprocessorRuntimeError)):
        return True
    return isinstance(exc, InferenceBackendRuntimeError) and exc.index is not None


#: The keys of an error row's body, without and with the line number of ``packflow run``.
_BODY_KEYS = frozenset({"type", "message", "stage", "index"})
_LINE_BODY_KEYS = _BODY_KEYS | {"line"}


@attrs.frozen
class ErrorRow:
    """What stands in the output for a record that failed: the one home of its shape.

    As a row it is ``{"error": {"type", "message", "stage", "index"}}``, plus ``"line"``
    where the record came from a numbered input line (``packflow run``, NDJSON over HTTP).
    Everything that writes or reads error rows (``on_error="row"``, the batchers, the JSON
    Lines protocol, the engines and servers) makes them and recognises them here.
    """

    #: The error's class name (the user's exception when a stage raised).
    type: str
    #: What went wrong, counting records in the caller's numbering.
    message: str
    #: The step that failed (``"execute"``, ``"b.preprocess"``), ``"input"`` for a
    #: record that is not a dict or a line that holds none, ``"output"`` for an output
    #: that cannot be written.
    stage: str
    #: The record's position in the caller's batch or stream; ``None`` when there is none.
    index: int | None
    #: The input line the record came from, from 1, where there are lines.
    line: int | None = None

    @classmethod
    def from_exception(
        cls, exc: BaseException, index: int | None, *, attempted_index: int | None = None
    ) -> ErrorRow:
        """The error row for record ``index`` that failed with ``exc``.

        ``type`` and ``message`` are those of the user's exception when a stage raised
        (the ``StageError``'s cause), else of the packflow error. ``attempted_index`` is
        the record's position in the batch that was attempted, when the message counts
        from there (it is rewritten to count from ``index``).
        """
        cause = exc.__cause__ if isinstance(exc, StageError) else None
        reported = cause if cause is not None else exc
        message = str(reported)
        named = _record_index(exc)
        if index is not None and (cause is None or named is not None):
            # A packflow error about one record counts it in the batch that was attempted.
            old = attempted_index if attempted_index is not None else named
            message = _reindexed(message, old, index)
        stage = getattr(exc, "stage", None)
        return cls(
            type(reported).__name__,
            message,
            str(stage) if stage is not None else "preprocess",
            index,
        )

    @classmethod
    def recognize(cls, row: Any) -> ErrorRow | None:
        """The error row that ``row`` is, or ``None`` when it is an ordinary output.

        An output record may hold a key ``"error"`` of its own: only the exact shape
        counts.
        """
        if type(row) is not dict or len(row) != 1:
            return None
        body = row.get(ERROR_KEY)
        if type(body) is not dict:
            return None
        keys = body.keys()
        if keys != _BODY_KEYS and keys != _LINE_BODY_KEYS:
            return None
        return cls(body["type"], body["message"], body["stage"], body["index"], body.get("line"))

    def with_line(self, line: int) -> ErrorRow:
        """The same error, for a record read from input line ``line``."""
        return attrs.evolve(self, line=line)

    def body(self) -> dict[str, Any]:
        """The ``"error"`` object of the row."""
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        body["stage"] = self.stage
        body["index"] = self.index
        if self.line is not None:
            body["line"] = self.line
        return body

    def as_row(self) -> dict[str, Any]:
        """The row: ``{"error": {...}}``."""
        return {ERROR_KEY: self.body()}


#: Marks the run-time contract's "an output row is not a dict" error, which ``validate``
#: reports as a validation error (as the original Packflow did). A marker rather than a
#: subclass, so that the error's type, and the ``type`` of its error rows, stay
#: ``InferenceBackendRuntimeError``.
_NOT_A_RECORD = "_packflow_not_a_record"


def mark_not_a_record(error: InferenceBackendRuntimeError) -> None:
    """Mark ``error`` as "an output row is not a dict" (see :func:`is_not_a_record`)."""
    vars(error)[_NOT_A_RECORD] = True


def is_not_a_record(error: BaseException) -> bool:
    """Whether ``error`` says that an output row is not a dict."""
    return bool(getattr(error, _NOT_A_RECORD, False))


def is_error_row(row: Any) -> bool:
    """Whether ``row`` is an error row (see :class:`ErrorRow`)."""
    return ErrorRow.recognize(row) is not None


def _reindexed(message: str, old: int | None, new: int) -> str:
    # Messages about a record start with (or contain) "record <index>", counted in the
    # batch that was attempted; count from the caller's batch instead.
    if old is None or old == new:
        return message
    return message.replace(f"record {old}", f"record {new}", 1)


def error_row(
    exc: BaseException, index: int, *, attempted_index: int | None = None
) -> dict[str, Any]:
    """The error row (a dict) that stands for record ``index`` that failed with ``exc``.

    The row of :meth:`ErrorRow.from_exception`; ``stage`` is the step label
    (``"execute"``, ``"b.preprocess"``, ``"input"`` for a record that is not a dict) and
    ``index`` the record's position in the caller's batch.
    """
    return ErrorRow.from_exception(exc, index, attempted_index=attempted_index).as_row()


def _record_index(exc: BaseException) -> int | None:
    """The record a packflow error is about, counted in the batch that raised it.

    A stage's own error counts when it is packflow's (a prebuilt stage's
    ``RecordFieldError``): a user's exception may have an ``index`` meaning anything.
    """
    if isinstance(exc, StageError) and exc.index is None:
        cause = exc.__cause__
        if not isinstance(cause, InferenceBackendRuntimeError):
            return None
        exc = cause
    index = getattr(exc, "index", None)
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    return None


def _named_index(exc: BaseException, size: int) -> int | None:
    index = _record_index(exc)
    if index is not None and 0 <= index < size:
        return index
    return None


#: Makes what stands in the output for a record that failed: (error, the record's index
#: in the caller's batch, its index in the attempted batch when the error counts from
#: there). :func:`error_row` by default; the batchers keep the exception itself.
Mark = Callable[[BaseException, int, "int | None"], Any]


def _mark_row(exc: BaseException, index: int, attempted_index: int | None) -> Any:
    return error_row(exc, index, attempted_index=attempted_index)


def isolate(
    attempt: Callable[[list[Any]], list[Any]],
    batch: list[Any],
    indices: Sequence[int],
    *,
    mark: Mark = _mark_row,
    failed_with: Exception | None = None,
) -> tuple[list[Any], int]:
    """Run ``batch`` through ``attempt``, isolating the records that fail.

    Parameters
    ----------
    attempt
        Runs a non-empty list of records and returns one output per record, or raises.
    batch
        The records (already known to be dicts).
    indices
        Each record's position in the caller's batch (what error rows report).
    mark
        Makes what stands in the output for a failed record (an error row by default).
    failed_with
        What the whole batch already raised when the caller attempted it (so that it is
        not attempted again).

    Returns
    -------
    tuple[list, int]
        One output or error row per record, in order, and the number of error rows.

    Raises
    ------
    Exception
        Whatever ``attempt`` raised when it is not about records (see
        :func:`is_record_error`).
    """
    size = len(batch)
    search = _search(size, indices, mark, failed_with)
    try:
        lo, hi = next(search)
        while True:
            try:
                result = attempt(batch if hi - lo == size else batch[lo:hi])
            except Exception as exc:
                lo, hi = search.throw(exc)
            else:
                lo, hi = search.send(result)
    except StopIteration as done:
        found: tuple[list[Any], int] = done.value
        return found


async def aisolate(
    attempt: Callable[[list[Any]], Awaitable[list[Any]]],
    batch: list[Any],
    indices: Sequence[int],
    *,
    mark: Mark = _mark_row,
    failed_with: Exception | None = None,
) -> tuple[list[Any], int]:
    """:func:`isolate` for an ``attempt`` that is awaited (a pipeline with async steps).

    The same search, the same attempts in the same order; each attempt is awaited in
    turn.
    """
    size = len(batch)
    search = _search(size, indices, mark, failed_with)
    try:
        lo, hi = next(search)
        while True:
            try:
                result = await attempt(batch if hi - lo == size else batch[lo:hi])
            except Exception as exc:
                lo, hi = search.throw(exc)
            else:
                lo, hi = search.send(result)
    except StopIteration as done:
        found: tuple[list[Any], int] = done.value
        return found


def _search(
    size: int, indices: Sequence[int], mark: Mark, failed_with: Exception | None
) -> Generator[tuple[int, int], Any, tuple[list[Any], int]]:
    """The search, apart from running: yields each range to attempt, and is sent its
    outputs or thrown what it raised; returns the outputs and the number of errors.

    Written once for :func:`isolate` and :func:`aisolate`.
    """
    outputs: list[Any] = [None] * size
    errors = 0
    # Ranges still to run, the leftmost on top, so that records run in their order.
    pending: list[tuple[int, int]] = [(0, size)]
    while pending:
        lo, hi = pending.pop()
        try:
            if failed_with is not None:
                first, failed_with = failed_with, None
                raise first
            outputs[lo:hi] = yield lo, hi
        except Exception as exc:
            if not is_record_error(exc):
                raise
            named = _named_index(exc, hi - lo)
            if named is None and hi - lo > 1:
                middle = (lo + hi) // 2
                pending += [(middle, hi), (lo, middle)]
                continue
            bad = lo + (named or 0)
            outputs[bad] = mark(exc, indices[bad], named)
            errors += 1
            pending += [r for r in ((bad + 1, hi), (lo, bad)) if r[0] < r[1]]
    return outputs, errors
