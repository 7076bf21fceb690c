"""JSON Lines through a pipeline: what ``packflow run`` does, as a library function.

:func:`run_lines` reads lines (text or bytes), runs the records on them through a built
pipeline's :class:`~packflow.runtime.streaming.Stream` and writes one output line per
input line, in order, so output line N always belongs to input line N:

- a record's output is its JSON;
- a blank input line stays blank;
- a line that is not a JSON object, or a record that fails in the pipeline, or an
  output that cannot be written as JSON gets an error row in its place,
  ``{"error": {"type", "message", "stage", "index", "line"}}``: the shape of the
  library's error rows (``index`` counts records, ``None`` for a line that holds none)
  plus the line number.

Records go through the pipeline in micro-batches with ``on_error="row"`` semantics: a
failing batch is split to find the records that fail, so the others run once and are
answered (their side effects are not repeated). The source is read by a background
thread a few batches ahead, so memory stays bounded on an unbounded stdin and a slow
source's records are answered within ``max_latency_ms``; the sink is flushed after each
batch.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from packflow.runtime.isolation import ERROR_KEY, OnError, check_on_error
from packflow.runtime.streaming import Stream

if TYPE_CHECKING:
    from packflow.runtime.built import BuiltPipeline
    from packflow.surface import Runtime

__all__ = ["Interrupted", "LineError", "RunSummary", "parse_line", "run_lines", "serialize"]

#: How many failed line numbers a summary keeps (the count is always exact).
KEPT_FAILED_LINES = 10


@attrs.frozen
class LineError:
    """Why line ``number`` has an error row: what :func:`run_lines` reports for it."""

    #: The input line, from 1.
    number: int
    type: str
    message: str
    #: ``"input"`` for a line that holds no record, ``"output"`` for an output that is
    #: not JSON, else the pipeline step that failed.
    stage: str
    #: The line's position among the input's non-blank lines, from 0.
    index: int | None

    def row(self) -> dict[str, Any]:
        """The error row that stands for the line in the output."""
        body = {"type": self.type, "message": self.message, "stage": self.stage}
        return {ERROR_KEY: {**body, "index": self.index, "line": self.number}}

    def __str__(self) -> str:
        # A line that holds no record is named by its line alone.
        record = self.index is not None and self.stage != "input"
        where = f"record {self.index}, " if record else ""
        # One line on a terminal; the error row keeps the whole message.
        first = self.message.strip().split("\n", 1)[0]
        return f"line {self.number}: {where}{self.stage}: {self.type}: {first}"


@attrs.frozen
class RunSummary:
    """What a run did: lines read and written, and which lines failed."""

    #: Input lines read and handed to the pipeline (blank and bad lines included).
    read: int
    #: Output lines written (one per input line answered, error rows included).
    written: int
    #: How many lines got an error row (or, with ``on_error="raise"``, stopped the run).
    failed: int
    #: The first :data:`KEPT_FAILED_LINES` failures, in order.
    first_failures: tuple[LineError, ...]
    #: Why the run stopped before the end of the input, or ``None``.
    stopped: str | None = None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_lines`, after the lines answered so far were written."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(f"interrupted after {summary.written} output lines were written")
        #: What was read and written before the interrupt.
        self.summary = summary


class _Line:
    """Stands in the stream for an input line that holds no record."""

    __slots__ = ("index", "number", "problem")

    def __init__(self, number: int, problem: str, index: int) -> None:
        self.number = number
        self.problem = problem
        self.index = index  # its position in the stream


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(raw: str | bytes, number: int) -> dict[str, Any] | str | None:
    """The record on input line ``number``, ``None`` for a blank line, or why it is bad.

    Bytes are decoded as UTF-8 (a byte order mark is allowed on line 1 only), so that a
    line that is not UTF-8 fails alone. JSON is strict: ``NaN`` and ``Infinity`` are
    refused.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 at byte {exc.start + 1}"
    if not raw.strip():
        return None
    # Without its line end, so that an error's column is on this line, not "line 2".
    raw = raw.rstrip("\r\n")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    return value


def serialize(output: Any) -> str:
    """One output row as a line of JSON.

    Raises
    ------
    TypeError, ValueError
        When the row cannot be written as strict JSON; the message names the key path
        (``scores[2]``) and the value, as ``validate()`` does.
    """
    from packflow.outputs import ensure_native_types, find_invalid_value

    native = ensure_native_types(output)
    try:
        return json.dumps(native, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        found = find_invalid_value([native])
        if found is None:
            raise
        _, path, reason = found
        where = f"at {path}: " if path else ""
        raise type(exc)(f"{where}{reason}") from None


class _Lines:
    """The events of a stream over ``source``: records, or markers for bad lines.

    Blank lines are not events (they are written back in their place), so that an
    event's position in the stream is its position among the non-blank lines, as on
    Ray. ``numbers`` tells the consumer where each output goes: an event's line number,
    and before it ``-n`` for the ``n`` blank lines that came first (a run of blank lines
    is one entry, so memory stays bounded whatever the input). ``read`` counts the lines
    read so far.
    """

    def __init__(self, source: Iterable[str | bytes]) -> None:
        self.source = source
        self.numbers: deque[int] = deque()
        self.read = 0

    def __iter__(self) -> Iterator[Any]:
        numbers = self.numbers
        events = blanks = 0
        try:
            for number, raw in enumerate(self.source, 1):
                self.read = number
                parsed = parse_line(raw, number)
                if parsed is None:
                    blanks += 1
                    continue
                if blanks:
                    numbers.append(-blanks)
                    blanks = 0
                numbers.append(number)
                yield parsed if isinstance(parsed, dict) else _Line(number, parsed, events)
                events += 1
        finally:
            if blanks:
                numbers.append(-blanks)  # the blank lines after the last event


def run_lines(
    built: BuiltPipeline | Runtime,
    source: Iterable[str | bytes],
    write: Callable[[str], None],
    *,
    max_batch_size: int = 64,
    max_latency_ms: float = 10.0,
    on_error: OnError = "row",
    max_errors: int | None = None,
    flush: Callable[[], None] | None = None,
    report: Callable[[LineError], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run the JSON Lines of ``source`` through ``built``; ``write`` one line per line.

    Parameters
    ----------
    built
        The built pipeline (or anything whose ``_runtime()`` gives one).
    source
        The input lines, ``str`` or ``bytes``, with or without their line ends.
    write
        Called with each output line, without its line end, in input order.
    max_batch_size, max_latency_ms
        The micro-batching of :meth:`~packflow.BuiltPipeline.stream`.
    on_error
        ``"row"``: a failed line gets an error row and the run goes on. ``"raise"``: the
        first failed line stops the run; it and the lines after it are not written.
    max_errors
        With ``on_error="row"``, stop after this many failed lines (their error rows
        written); ``None``: never stop.
    flush
        Called after each batch's lines are written.
    report
        Called with each failed line, as it is written.
    progress
        Called after each batch with (lines written, lines failed).

    Returns
    -------
    RunSummary
        What was read and written, and which lines failed.

    Raises
    ------
    Interrupted
        On Ctrl-C (a ``KeyboardInterrupt``), after the lines answered so far are written
        and flushed; its ``summary`` says how many.
    """
    on_error = check_on_error(on_error)
    if max_errors is not None and (
        isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1
    ):
        raise ValueError(f"max_errors must be an integer >= 1 or None, got {max_errors!r}")
    from packflow.surface import Runtime

    if isinstance(built, Runtime):
        built = built._runtime()
    reader = _Lines(source)
    lines = reader.numbers
    stream = Stream(
        built,
        iter(reader),
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        on_error="row",
        passthrough=_Line,
    )
    written = failed = 0
    failures: list[LineError] = []
    stopped: str | None = None

    def blanks() -> int:
        """Write the blank lines due before the next event's line; how many."""
        count = 0
        while lines and lines[0] < 0:
            for _ in range(-lines.popleft()):
                count += 1
                write("")
        return count

    try:
        for output in stream:
            written += blanks()
            number = lines.popleft()
            problem = _problem(output, number)
            if problem is None:
                try:
                    text = serialize(output)
                except (TypeError, ValueError) as exc:
                    name, message = type(exc).__name__, str(exc)
                    problem = LineError(number, name, message, "output", stream.answered - 1)
            if problem is not None:
                failed += 1
                if len(failures) < KEPT_FAILED_LINES:
                    failures.append(problem)
                if report is not None:
                    report(problem)
                if on_error == "raise":
                    stopped = f"line {number} failed (on_error='raise')"
                    break
                text = json.dumps(problem.row(), ensure_ascii=False)
            # Counted first: an interrupt is raised after the write it arrived in, which
            # has reached the output by then (unbuffered output shows it at once).
            written += 1
            write(text)
            if max_errors is not None and failed >= max_errors:
                stopped = f"{failed} failed lines (max_errors={max_errors})"
                break
            if stream.answered == stream.received:  # the last line of a batch
                if flush is not None:
                    flush()
                if progress is not None:
                    progress(written, failed)
        else:
            written += blanks()  # the blank lines after the last event
    except KeyboardInterrupt as exc:
        stream.close()
        if flush is not None:
            flush()
        summary = RunSummary(reader.read, written, failed, tuple(failures), "an interrupt")
        raise Interrupted(summary) from exc
    finally:
        stream.close()
        if flush is not None:
            flush()
    return RunSummary(reader.read, written, failed, tuple(failures), stopped)


def _problem(output: Any, number: int) -> LineError | None:
    """The failure that ``output`` (the stream's answer for line ``number``) stands for."""
    if type(output) is _Line:
        return LineError(number, "InvalidLine", output.problem, "input", output.index)
    if type(output) is dict and len(output) == 1 and ERROR_KEY in output:
        body = output[ERROR_KEY]
        if type(body) is dict and body.keys() == {"type", "message", "stage", "index"}:
            return LineError(number, body["type"], body["message"], body["stage"], body["index"])
    return None
