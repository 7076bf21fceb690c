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
from typing import Any, Protocol, runtime_checkable

import attrs

from packflow.runtime.contracts import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_LATENCY_MS,
    BatchOptions,
    Runner,
    check_positive_int,
    runner_name,
)
from packflow.runtime.isolation import ErrorRow, Mark, OnError, check_on_error, error_row
from packflow.runtime.streaming import Stream

__all__ = [
    "BadLine",
    "Engine",
    "Interrupted",
    "LineError",
    "LocalEngine",
    "RunSummary",
    "parse_line",
    "run_around",
    "run_lines",
    "serialize",
]

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

    @classmethod
    def of(cls, output: Any, number: int) -> LineError | None:
        """The failure that ``output`` (an engine's answer for line ``number``) stands for."""
        if type(output) is BadLine:
            return cls(number, "InvalidLine", output.problem, "input", output.index)
        found = ErrorRow.recognize(output)
        if found is None:
            return None
        return cls(number, found.type, found.message, found.stage, found.index)

    def error_row(self) -> ErrorRow:
        """The error row that stands for the line in the output."""
        return ErrorRow(self.type, self.message, self.stage, self.index, self.number)

    def row(self) -> dict[str, Any]:
        """The error row that stands for the line in the output, as a dict."""
        return self.error_row().as_row()

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


@attrs.frozen
class BadLine:
    """Stands among an engine's events for an input line that holds no record.

    An engine hands it back unchanged, in its place; it is small and picklable, so that
    it can travel to a worker and back.
    """

    #: The input line, from 1.
    number: int
    #: Why the line holds no record.
    problem: str
    #: Its position among the events (the non-blank lines).
    index: int


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large")
    return value


_INF = float("inf")
# A number can overflow a double only with an exponent of three digits or more, or with
# 309 digits or more. Looked for with C-speed bytes operations (a regular expression cost
# more than the parse itself): every digit folded to 0, E to e, and + dropped.
_FOLD = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_RUN = b"0" * 309


def _may_overflow(raw: bytes) -> bool:
    folded = raw.translate(_FOLD, b"+")
    return b"e000" in folded or (len(folded) >= 309 and _LONG_RUN in folded)


def parse_line(raw: str | bytes, number: int) -> dict[str, Any] | str | None:
    """The record on input line ``number``, ``None`` for a blank line, or why it is bad.

    Bytes are decoded as UTF-8 (a byte order mark is allowed on line 1 only), so that a
    line that is not UTF-8 fails alone. JSON is strict: ``NaN``, ``Infinity`` and a
    number too large for a float (``1e400``) are refused, and so is a value nested too
    deeply for the parser.
    """
    if isinstance(raw, bytes):
        big = _may_overflow(raw)
        try:
            raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 at byte {exc.start + 1}"
    else:
        big = _may_overflow(raw.encode("utf-8", "surrogatepass"))
    if not raw.strip():
        return None
    # Without its line end, so that an error's column is on this line, not "line 2".
    raw = raw.rstrip("\r\n")
    try:
        if not big:
            value = json.loads(raw, parse_constant=_reject_constant)
        else:
            value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    except RecursionError:
        return "not valid JSON: nested too deeply"
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
    """The events of a run over ``source``: records, or :class:`BadLine` markers.

    Blank lines are not events (they are written back in their place), so that an
    event's position is its position among the non-blank lines, whatever the engine.
    ``numbers`` tells the consumer where each output goes: an event's line number, and
    before it ``-n`` for the ``n`` blank lines that came first (a run of blank lines is
    one entry, so memory stays bounded whatever the input). ``read`` counts the lines
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
                yield parsed if isinstance(parsed, dict) else BadLine(number, parsed, events)
                events += 1
        finally:
            if blanks:
                numbers.append(-blanks)  # the blank lines after the last event


@runtime_checkable
class Engine(Protocol):
    """Where the records of a JSON Lines run are run: in process, on Ray, ...

    ``batches(events, options)`` takes the events (a record ``dict``, or a
    :class:`BadLine` to hand back unchanged in its place) and yields lists of outputs,
    one per event, in order, a list per batch it ran (so that the run can flush after
    each). A record that fails gets an error row (:class:`~packflow.runtime.isolation.
    ErrorRow`) whose ``index`` is the record's position among the events; with
    ``options.on_error == "row"`` nothing a record does may end the run. Closing the
    iterator stops the engine.
    """

    def batches(self, events: Iterator[Any], options: BatchOptions) -> Iterator[list[Any]]:
        """One list of outputs per batch run, in order."""
        ...


def run_around(
    runner: Runner, batch: list[Any], *, first_index: int = 0, mark: Mark | None = None
) -> list[Any]:
    """Run the records of ``batch`` isolating failures; :class:`BadLine` s stay in place.

    What every engine does with a batch of events: error rows count from
    ``first_index``, bad lines included.
    """
    keep = [i for i, event in enumerate(batch) if type(event) is not BadLine]
    if len(keep) == len(batch):
        return runner.run_rows(batch, first_index=first_index, mark=mark)
    outputs = list(batch)
    if not keep:
        return outputs
    where = [first_index + i for i in keep]
    make = mark

    def placed(exc: BaseException, index: int, attempted: int | None) -> Any:
        # ``index`` counts the records run; report the event's own position.
        at = where[index]
        if make is None:
            return error_row(exc, at, attempted_index=index if attempted is None else attempted)
        return make(exc, at, attempted)

    results = runner.run_rows([batch[i] for i in keep], mark=placed)
    for i, result in zip(keep, results, strict=True):
        outputs[i] = result
    return outputs


class _AroundLines:
    """A :class:`Runner` that hands :class:`BadLine` events back unrun."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.name = runner_name(runner)

    def run_batch(self, records: list[Any], *, on_error: OnError = "raise") -> list[Any]:
        return self._runner.run_batch(records, on_error=on_error)

    def run_rows(
        self, records: list[Any], *, first_index: int = 0, mark: Mark | None = None
    ) -> list[Any]:
        return run_around(self._runner, records, first_index=first_index, mark=mark)

    def last_metrics(self) -> Any:
        return self._runner.last_metrics()

    def credit_metrics(self, raw: Any) -> None:
        self._runner.credit_metrics(raw)


@attrs.frozen
class LocalEngine:
    """The in-process engine: a :class:`~packflow.runtime.streaming.Stream` over a runner.

    The source is read a few batches ahead by the stream's reader thread, so a slow
    source's records are answered within ``max_latency_ms``.
    """

    runner: Runner

    def batches(self, events: Iterator[Any], options: BatchOptions) -> Iterator[list[Any]]:
        """Run the events in micro-batches; one list of outputs per batch."""
        stream = Stream(_AroundLines(self.runner), events, attrs.evolve(options, on_error="row"))
        try:
            yield from stream.batches()
        finally:
            stream.close()


def run_lines(
    target: Runner | Engine,
    source: Iterable[str | bytes],
    write: Callable[[str], None],
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
    on_error: OnError = "row",
    max_errors: int | None = None,
    flush: Callable[[], None] | None = None,
    report: Callable[[LineError], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run the JSON Lines of ``source`` through a pipeline; ``write`` one line per line.

    This is the JSON Lines protocol, written once: parsing (UTF-8, a byte order mark on
    line 1, strict JSON), blank and bad lines, error rows with line numbers, the error
    limit and the summary. Where the records run is the engine's business.

    Parameters
    ----------
    target
        A built pipeline (or any :class:`~packflow.runtime.contracts.Runner`: a
        ``Pipeline``, a class backend), run in process; or an :class:`Engine`.
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
    ValueError
        For a bad option.
    """
    on_error = check_on_error(on_error)
    if max_errors is not None:
        check_positive_int("max_errors", max_errors)
    options = BatchOptions(max_batch_size, max_latency_ms, on_error)
    engine: Engine = LocalEngine(target) if isinstance(target, Runner) else target
    reader = _Lines(source)
    lines = reader.numbers
    batches = engine.batches(iter(reader), options)
    written = failed = answered = 0
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
        for outputs in batches:
            for output in outputs:
                written += blanks()
                number = lines.popleft()
                answered += 1
                problem = LineError.of(output, number)
                if problem is None:
                    try:
                        text = serialize(output)
                    except (TypeError, ValueError) as exc:
                        name, message = type(exc).__name__, str(exc)
                        problem = LineError(number, name, message, "output", answered - 1)
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
                # Counted first: an interrupt is raised after the write it arrived in,
                # which has reached the output by then (unbuffered output shows it).
                written += 1
                write(text)
                if max_errors is not None and failed >= max_errors:
                    stopped = f"{failed} failed lines (max_errors={max_errors})"
                    break
            if stopped is not None:
                break
            if flush is not None:
                flush()
            if progress is not None:
                progress(written, failed)
        else:
            written += blanks()  # the blank lines after the last event
    except KeyboardInterrupt as exc:
        _close(batches)
        if flush is not None:
            flush()
        summary = RunSummary(reader.read, written, failed, tuple(failures), "an interrupt")
        raise Interrupted(summary) from exc
    finally:
        _close(batches)
        if flush is not None:
            flush()
    return RunSummary(reader.read, written, failed, tuple(failures), stopped)


def _close(batches: Iterator[list[Any]]) -> None:
    close = getattr(batches, "close", None)
    if close is not None:
        close()
