"""The ``packflow`` command line: a thin shell over projects, loaders and the runtime.

Every user mistake (a missing path, a bad name, a broken ``packflow.yaml``, a backend
that does not load) ends in one readable message on stderr and a non-zero exit code;
tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import IO, Any

from packflow.exceptions import PackflowError, PipelineDefinitionError
from packflow.log import LOGGER_NAME

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: ``run`` prints progress on stderr once this many records went through.
PROGRESS_AFTER = 1000
PROGRESS_INTERVAL = 1.0


class UsageError(Exception):
    """A mistake in how the command was called (reported like argparse's own errors)."""


class UserError(Exception):
    """A user mistake the command found (a path that does not exist, a file given where
    a folder is expected): one line on stderr and exit code 1, like a broken project."""


# --------------------------------------------------------------------------- helpers


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _target(path: str) -> Any:
    """A project folder's loader, or a loader for a ``module:attribute`` spec."""
    from packflow.loaders import InferenceBackendLoader, loader_for_spec

    given = Path(path)
    if given.is_dir():
        return InferenceBackendLoader.for_project(given)
    if ":" in path and not given.exists():
        return loader_for_spec(path)
    if not given.exists():
        raise UserError(
            f"{path}: no such project folder (give a folder holding packflow.yaml, or "
            "module:attribute)"
        )
    raise UserError(
        f"{path} is a file; give the project folder that holds packflow.yaml, or module:attribute"
    )


def _project_root(path: str) -> Path | None:
    given = Path(path)
    return given if given.is_dir() else None


# --------------------------------------------------------------------------- commands


def _cmd_create(args: argparse.Namespace) -> int:
    from packflow.projects import create_project

    target = create_project(
        args.name,
        args.directory,
        description=args.description,
        version=args.project_version,
        maintainers=args.maintainer,
        force=args.force,
        template=args.template,
    )
    shown = os.path.relpath(target) if not os.path.relpath(target).startswith("..") else target
    _out(f"created project {args.name!r} in {shown}")
    _out("next steps:")
    _out(f"  packflow check {shown}")
    _out(f"  packflow validate {shown}")
    _out(f"  packflow run {shown} --input {Path(shown) / 'sample.jsonl'}")
    return EXIT_OK


def _parts(checked: Any) -> list[tuple[str | None, Any]]:
    """A checked pipeline as ``[(None, it)]``, a composition as its named parts."""
    parts = getattr(checked, "parts", None)
    return [(None, checked)] if parts is None else list(parts)


def _render(checked: Any, mermaid: bool = False) -> str:
    from packflow.render import render_mermaid, render_text

    render = render_mermaid if mermaid else render_text
    parts = _parts(checked)
    if len(parts) == 1 and parts[0][0] is None:
        return render(parts[0][1])
    # One graph per part of a composition a >> b, in run order.
    mark = "%%" if mermaid else "#"
    shown = [
        f"{mark} part {n} of {len(parts)}: {name!r}\n{render(part)}"
        for n, (name, part) in enumerate(parts, 1)
    ]
    return "\n\n".join(shown)


def _cmd_check(args: argparse.Namespace) -> int:
    loader = _target(args.path)
    try:
        with redirect_stdout(sys.stderr):
            checked = loader.check()
    except PipelineDefinitionError as exc:
        _err(f"packflow: check failed for {loader.spec!r}:")
        _err(str(exc))
        return EXIT_FAILURE
    _out(_render(checked))
    notes = checked.notes if hasattr(checked, "parts") else checked.report.notes
    for note in notes or ():
        _out(f"note: {note}")
    parts = _parts(checked)
    stages = _count(sum(len(part.graph.stages) for _, part in parts), "stage")
    initializers = _count(sum(len(part.graph.initializers) for _, part in parts), "initializer")
    composed = f"{len(parts)} parts, " if len(parts) > 1 else ""
    _out("")
    _out(f"ok: {loader.spec} type-checks ({composed}{stages}, {initializers})")
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    # What the user's module prints while it is imported must not end up in the rendering.
    with redirect_stdout(sys.stderr):
        checked = _target(args.path).check()
    _out(_render(checked, mermaid=args.format == "mermaid"))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from packflow.project import validate_project

    report = validate_project(args.path)
    for finding in report.findings:
        _out(f"  {finding}")
    errors, warnings = len(report.errors), len(report.warnings)
    failed = errors > 0 or (args.strict and warnings > 0)
    summary = f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    if report.samples_validated is not None:
        summary += f"; {report.samples_validated} sample records passed validate()"
    _out(f"{'FAILED' if failed else 'ok'}: {args.path}: {summary}")
    return EXIT_FAILURE if failed else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from packflow.projects import export_project

    result = export_project(args.path, args.output_dir)
    for finding in result.report.warnings if result.report else ():
        _err(f"  {finding}")
    shown = os.path.relpath(result.archive)
    _out(f"wrote {shown} ({_count(len(result.files), 'file')})")
    return EXIT_OK


class _Progress:
    """Progress on stderr for long inputs: at most one line per interval."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, done: int, failed: int) -> None:
        now = time.monotonic()
        if done < PROGRESS_AFTER or now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        self.shown = True
        rate = done / max(now - self.start, 1e-9)
        failures = f", {failed} failed" if failed else ""
        self.stream.write(f"packflow: {done} records processed{failures} ({rate:.0f}/s)\n")
        self.stream.flush()


#: The key of the row that stands in the output for an input line that failed.
ERROR_KEY = "packflow_error"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_line(raw: str | bytes, number: int) -> dict[str, Any] | str | None:
    """The record on one input line, ``None`` for a blank line, or why the line is bad."""
    if isinstance(raw, bytes):
        try:
            # A BOM is legal only at the start of the file.
            raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 at byte {exc.start + 1}"
    if not raw.strip():
        return None
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    return value


def _run_lines(
    backend: Any,
    lines: Iterable[str | bytes],
    write: Callable[[str], None],
    batch_size: int,
    report: Callable[[str], None],
    progress: _Progress,
) -> tuple[int, list[int]]:
    """Run JSON Lines through ``backend``; return (records written, failed line numbers).

    Output line N belongs to input line N: a blank line stays blank and a line that fails
    becomes an error row ``{"packflow_error": {"line": N, "message": ...}}``, so the output
    never drifts out of line with the input.
    """
    from packflow.outputs import ensure_native_types

    failed: list[int] = []
    written = 0
    # Lines read but not yet written: (number, record or None, why it failed or None).
    pending: list[tuple[int, dict[str, Any] | None, str | None]] = []
    waiting = 0

    def fail(number: int, message: str) -> None:
        report(f"line {number}: {message}")
        failed.append(number)
        write(json.dumps({ERROR_KEY: {"line": number, "message": message}}, ensure_ascii=False))

    def emit(number: int, output: Any) -> None:
        nonlocal written
        try:
            text = json.dumps(ensure_native_types(output), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            fail(number, f"the output is not JSON-serializable: {exc}")
            return
        write(text)
        written += 1

    def run_one(record: dict[str, Any]) -> tuple[Any, str | None]:
        try:
            return backend([record])[0], None
        except Exception as exc:
            return None, _one_line(exc)

    def flush() -> None:
        nonlocal waiting
        batch = [record for _, record, _ in pending if record is not None]
        results: list[tuple[Any, str | None]]
        try:
            results = [(output, None) for output in backend(batch)] if batch else []
        except Exception as exc:
            # Run the records one by one so that only the bad ones fail.
            results = [run_one(r) for r in batch] if len(batch) > 1 else [(None, _one_line(exc))]
        answers = iter(results)
        for number, record, problem in pending:
            if problem is not None:
                fail(number, problem)
            elif record is None:
                write("")
            else:
                output, error = next(answers)
                if error is None:
                    emit(number, output)
                else:
                    fail(number, error)
        pending.clear()
        waiting = 0
        progress.update(written + len(failed), len(failed))

    for number, line in enumerate(lines, 1):
        parsed = _parse_line(line, number)
        if isinstance(parsed, str):
            pending.append((number, None, parsed))
        else:
            pending.append((number, parsed, None))
            waiting += parsed is not None
        # Bad and blank lines count too, so that memory stays bounded on any input.
        if waiting >= batch_size or len(pending) >= 2 * batch_size:
            flush()
    flush()
    return written, failed


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    return f"{name}: {first}" if not isinstance(exc, PackflowError) else first or name


def _input_path(given: str, project: Path | None) -> Path:
    path = Path(given)
    if path.exists() or path.is_absolute() or project is None:
        return path
    # `packflow run x --input sample.jsonl` finds the project's own sample file.
    inside = project / path
    return inside if inside.exists() else path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and a.samefile(b)
    except OSError:
        return False


def _open(path: Path, mode: str, option: str) -> IO[Any]:
    try:
        return open(path, mode, encoding=None if "b" in mode else "utf-8")
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from exc


def _cmd_run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    loader = _target(args.path)
    with ExitStack() as stack:
        source: Iterable[str | bytes]
        if args.input == "-":
            # Bytes, so that a line that is not UTF-8 fails alone, by its number.
            source = getattr(sys.stdin, "buffer", sys.stdin)
        else:
            path = _input_path(args.input, _project_root(args.path))
            if path.is_dir():
                raise UsageError(f"--input {args.input}: is a folder, not a JSON Lines file")
            if not path.is_file():
                raise UsageError(f"--input {args.input}: no such file")
            if args.output != "-" and _same_file(path, Path(args.output)):
                raise UsageError(
                    f"--output {args.output} is the input file; writing it would erase the "
                    "input before it is read"
                )
            source = stack.enter_context(_open(path, "rb", "--input"))
        sink: IO[str] = sys.stdout
        # What the user's code prints must not land among the output lines.
        stack.enter_context(redirect_stdout(sys.stderr))
        backend = loader.load()
        if args.output != "-":
            # Opened only now, so that a backend that fails to load leaves the file alone.
            sink = stack.enter_context(_open(Path(args.output), "w", "--output"))

        def write(text: str) -> None:
            sink.write(text + "\n")

        progress = _Progress(sys.stderr)
        written, failed = _run_lines(backend, source, write, args.batch_size, _err, progress)
        sink.flush()
    total = written + len(failed)
    if failed:
        shown = ", ".join(str(n) for n in failed[:10]) + (", ..." if len(failed) > 10 else "")
        _err(
            f"packflow: {len(failed)} of {total} lines failed (lines {shown}); "
            f"each has a {ERROR_KEY} row in the output"
        )
        return EXIT_FAILURE
    if progress.shown:
        _err(f"packflow: done, {written} records")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _version() -> str:
    from packflow._version import package_version

    return package_version()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``packflow`` command."""
    parser = argparse.ArgumentParser(
        prog="packflow",
        description="Create, check, validate, run and export packflow projects.",
    )
    parser.add_argument("--version", action="version", version=f"packflow {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs on errors"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    path_help = "project folder (default: the working directory) or module:attribute"

    create = commands.add_parser("create", help="scaffold a new project folder")
    create.add_argument("name", help="letters, digits, - and _, starting with a letter")
    create.add_argument("--directory", "-d", default=None, help="where to create it")
    create.add_argument("--description", default="", help="one line about the project")
    create.add_argument("--project-version", default="0.1.0", help="default: 0.1.0")
    create.add_argument(
        "--maintainer", action="append", default=[], help="e-mail of a maintainer (repeatable)"
    )
    create.add_argument("--force", action="store_true", help="write into an existing folder")
    create.add_argument(
        "--template",
        choices=("blank", "onnx", "sklearn"),
        default="blank",
        help="blank: a pipeline to edit (default); onnx or sklearn: a prebuilt model pipeline",
    )
    create.add_argument(
        "--no-input", action="store_true", help="accepted for compatibility; create never asks"
    )
    create.set_defaults(handler=_cmd_create)

    check = commands.add_parser("check", help="type-check the stages and print the graph")
    check.add_argument("path", nargs="?", default=".", help=path_help)
    check.set_defaults(handler=_cmd_check)

    validate = commands.add_parser("validate", help="check files, metadata and the backend")
    validate.add_argument("path", nargs="?", default=".", help="project folder")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    validate.set_defaults(handler=_cmd_validate)

    run = commands.add_parser("run", help="run JSON Lines through the pipeline")
    run.add_argument("path", nargs="?", default=".", help=path_help)
    run.add_argument("--input", "-i", required=True, help="JSON Lines file, or - for stdin")
    run.add_argument("--output", "-o", default="-", help="JSON Lines file, or - for stdout")
    run.add_argument("--batch-size", "-b", type=int, default=64, help="records per call")
    run.set_defaults(handler=_cmd_run)

    export = commands.add_parser("export", help="zip the project for distribution")
    export.add_argument("path", nargs="?", default=".", help="project folder")
    export.add_argument(
        "--output-dir", default=None, help="where to write the zip (default: here)"
    )
    export.set_defaults(handler=_cmd_export)

    graph = commands.add_parser("graph", help="print the stage graph")
    graph.add_argument("path", nargs="?", default=".", help=path_help)
    graph.add_argument("--format", choices=("text", "mermaid"), default="text")
    graph.set_defaults(handler=_cmd_graph)
    return parser


def _configure_logging(debug: bool) -> Callable[[], None]:
    """Show packflow's log records on stderr for this command; return the undo."""
    logger = logging.getLogger(LOGGER_NAME)
    previous = logger.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    elif "PACKFLOW_LOG_LEVEL" not in os.environ:
        logger.setLevel(logging.WARNING)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``packflow`` command; return the exit code.

    0: success; 1: a failure (a user mistake, a failed check, failed lines in ``run``);
    2: a command-line usage error; 130: interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    restore_logging = _configure_logging(args.debug)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _err(f"packflow {args.command}: error: {exc}")
        return EXIT_USAGE
    except UserError as exc:
        _err(f"packflow {args.command}: error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _err("packflow: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`packflow run ... | head`): stop quietly.
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, (PackflowError, OSError)):
            _err(f"packflow {args.command}: error: {exc}")
        else:
            _err(
                f"packflow {args.command}: unexpected {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback)"
            )
        return EXIT_FAILURE
    finally:
        restore_logging()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
