"""The ``packflow`` command line: a thin shell over projects, loaders and the runtime.

Every user mistake (a missing path, a bad name, a broken ``packflow.yaml``, a backend
that does not load) ends in one readable message on stderr and a non-zero exit code;
tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packflow.exceptions import PackflowError, PipelineDefinitionError
from packflow.log import LOGGER_NAME

if TYPE_CHECKING:
    from packflow.config import ConfigLayer
    from packflow.runtime.isolation import OnError
    from packflow.runtime.jsonl import LineError, RunSummary

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "add_config_options", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM, what a shell reports for a process that SIGTERM ended.
EXIT_TERMINATED = 143

#: ``run``'s records per pipeline call, in process.
DEFAULT_BATCH_SIZE = 64
#: run_lines' DEFAULT_MAX_LEADING_ERRORS, without importing the runtime to build the parser
#: (a test holds the two equal).
DEFAULT_MAX_LEADING_ERRORS = 50
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


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--set KEY=VALUE``: config for a command that builds or checks
    a pipeline (``check``, ``validate``, ``run``; ``serve`` too). :func:`main` applies them
    around the command with :func:`packflow.config.applied_layers`."""
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        default=None,
        help='JSON config in the override file\'s format ({"configs": {...}}), applied over '
        "BACKEND_CONFIG_FILE_PATH",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="KEY=VALUE",
        action="append",
        type=_setting,
        default=[],
        help="one config value, read as JSON when it is (verbose=true, "
        "feature_names='[\"a\"]'), else as text (repeatable; applied last)",
    )


def _setting(text: str) -> str:
    from packflow.config import parse_setting
    from packflow.exceptions import ConfigError

    try:
        parse_setting(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--set ")) from None
    return text


def _config_layers(args: argparse.Namespace) -> tuple[ConfigLayer, ...]:
    """The config layers the command line gives (none for a command without the options)."""
    config_file = getattr(args, "config_file", None)
    settings = getattr(args, "settings", None) or ()
    if config_file is None and not settings:
        return ()
    from packflow.config import command_line_layers

    return command_line_layers(config_file, settings)


def _show_verbose_metrics(backend: Any) -> Callable[[], None]:
    """With ``verbose: true``, let the pipeline's per-batch metrics (INFO) through to
    stderr whatever the log level; return the undo."""
    from collections.abc import Mapping

    from packflow.backend import built_pipeline

    built = built_pipeline(backend)
    config = built.config
    configs = list(config.values()) if isinstance(config, Mapping) else [config]
    logger = built.logger
    if not any(getattr(c, "verbose", False) for c in configs) or logger.isEnabledFor(logging.INFO):
        return lambda: None
    previous = logger.level
    logger.setLevel(logging.INFO)
    return lambda: logger.setLevel(previous)


# --------------------------------------------------------------------------- commands


def _interactive() -> bool:
    """Whether a person can answer questions: stdin and stdout are terminals."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced by a test, or closed
        return False


def _git_email() -> str | None:
    """``git config user.email``, or ``None`` when git or the setting is missing."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "config", "user.email"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    email = done.stdout.strip()
    return email if done.returncode == 0 and email else None


def _ask(question: str, default: str | None, check: Callable[[str], object] | None = None) -> str:
    """Ask until the answer passes ``check``; an empty answer takes ``default``."""
    shown = f" [{default}]" if default else ""
    while True:
        try:
            answer = input(f"{question}{shown}: ").strip()
        except EOFError:
            raise UserError(f"no answer for {question!r}; nothing was created") from None
        if not answer:
            if default is not None:
                return default
            _err(f"  {question} is required")
            continue
        if check is None:
            return answer
        try:
            check(answer)
        except (PackflowError, UserError) as exc:
            _err(f"  {exc}")
            continue
        return answer


def _ask_project_details(args: argparse.Namespace) -> None:
    """The ``create`` wizard (as in packflow 0.4.1): ask for what the command line left
    out. Only the standard library's ``input()``."""
    from packflow.projects.manifest import VERSION_CHARS, check_project_name

    def check_version(text: str) -> None:
        if not VERSION_CHARS.match(text):
            raise UserError(f"invalid version {text!r}: use letters, digits and . + ! - _")

    _out("Creating a packflow project (Enter keeps the [default]; Ctrl-C stops).")
    args.name = _ask("project name", None, check_project_name)
    if args.description is None:
        args.description = _ask("description", f"Inference code for {args.name}.")
    if args.project_version is None:
        args.project_version = _ask("version", "0.1.0", check_version)
    if not args.maintainer:
        email = _ask("maintainer e-mail", _git_email() or "")
        args.maintainer = [email] if email else []


def _cmd_create(args: argparse.Namespace) -> int:
    from packflow.projects import create_project

    if args.name is None:
        if args.no_input or not _interactive():
            _err(args.create_usage.rstrip())
            raise UsageError(
                "give the project NAME (packflow create NAME); it is asked for only in an "
                "interactive terminal without --no-input"
            )
        _ask_project_details(args)
    target = create_project(
        args.name,
        args.directory,
        description=args.description or "",
        version=args.project_version or "0.1.0",
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


def _cmd_check(args: argparse.Namespace) -> int:
    loader = _target(args.path)
    try:
        with redirect_stdout(sys.stderr):
            checked = loader.check()
    except PipelineDefinitionError as exc:
        _err(f"packflow: check failed for {loader.spec!r}:")
        _err(str(exc))
        return EXIT_FAILURE
    from packflow.render import render_text

    _out(render_text(checked))
    for note in _notes(checked):
        _out(f"note: {note}")
    _out("")
    _out(f"ok: {loader.spec} type-checks ({_check_summary(checked)})")
    return EXIT_OK


def _notes(checked: Any) -> tuple[str, ...]:
    # A composition gathers its parts' notes, each naming its part.
    return tuple(checked.notes)


def _check_summary(checked: Any) -> str:
    """``"2 parts, 3 stages, 1 initializer"``: what ``packflow check`` checked."""
    parts = [part for _, part in checked.parts]
    composed = len(parts) > 1
    stages = _count(sum(len(part.graph.stages) for part in parts), "stage")
    initializers = _count(sum(len(part.graph.initializers) for part in parts), "initializer")
    if composed:
        return f"{_count(len(parts), 'part')}, {stages}, {initializers}"
    return f"{stages}, {initializers}"


def _cmd_graph(args: argparse.Namespace) -> int:
    # What the user's module prints while it is imported must not end up in the rendering.
    with redirect_stdout(sys.stderr):
        checked = _target(args.path).check()
    from packflow.render import render_mermaid, render_text

    _out(render_mermaid(checked) if args.format == "mermaid" else render_text(checked))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from packflow.project import validate_project

    report = validate_project(args.path)
    # Findings go to stderr, the verdict to stdout: `packflow validate x > report` keeps
    # the one-line verdict and still shows what is wrong.
    for finding in report.findings:
        _err(f"  {finding}")
    errors, warnings = len(report.errors), len(report.warnings)
    failed = errors > 0 or (args.strict and warnings > 0)
    summary = f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    if report.samples_validated is not None:
        summary += f"; {report.samples_validated} sample records passed validate()"
    _out(f"{'FAILED' if failed else 'ok'}: {args.path}: {summary}")
    return EXIT_FAILURE if failed else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from packflow.projects import export_project
    from packflow.projects.bundle import BundleTarget

    if not args.with_deps and (args.platform or args.python_version):
        option = "--platform" if args.platform else "--python-version"
        raise UsageError(f"{option} names the target of the wheels: it needs --with-deps")
    target = BundleTarget(tuple(args.platform), args.python_version)
    result = export_project(args.path, args.output_dir, with_deps=args.with_deps, target=target)
    for finding in result.report.warnings if result.report else ():
        _err(f"  {finding}")
    for left in result.left_out:
        _err(f"  {left}")
    shown = os.path.relpath(result.archive)
    wheels = f", {_count(len(result.wheels), 'wheel')}" if args.with_deps else ""
    _out(f"wrote {shown} ({_count(len(result.files), 'file')}{wheels})")
    if args.with_deps:
        _out(
            "install it offline: unzip it, then pip install --no-index --find-links wheels "
            "-r requirements.txt (see INSTALL-OFFLINE.md)"
        )
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
        self.stream.write(f"packflow: {done} lines written{failures} ({rate:.0f}/s)\n")
        self.stream.flush()


def _stdin_lines(chunk: int = 1 << 16) -> Iterator[bytes | str]:
    """The lines of stdin as bytes, read from its file descriptor.

    Bytes, so that a line that is not UTF-8 fails alone, by its number. The stream's
    reader thread may still be blocked in a read when the command ends (Ctrl-C on a live
    stdin): reading the descriptor directly, not through ``sys.stdin.buffer``, leaves no
    buffer lock held for the interpreter's shutdown to trip on.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test or an embedder
        yield from getattr(sys.stdin, "buffer", sys.stdin)
        return
    pending = b""
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        pending += data
        if b"\n" in pending:
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
    if pending:
        yield pending


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
        raise UserError(f"{option} {path}: {exc.strerror or exc}") from exc


def _cmd_run(args: argparse.Namespace) -> int:
    from packflow.runtime.jsonl import Interrupted, run_lines

    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.concurrency is not None and args.engine != "ray":
        raise UsageError("--concurrency is for --engine ray")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.engine == "ray" and args.input == "-":
        raise UsageError("--engine ray reads a file: give --input FILE, not stdin")
    if args.engine == "ray" and (args.config_file is not None or args.settings):
        # The actors resolve their config in their own processes, which never see these.
        raise UsageError(
            "--config and --set are not supported with --engine ray; put the values in "
            "packflow.yaml's backend_config"
        )
    if not args.max_latency_ms >= 0 or args.max_latency_ms == float("inf"):
        raise UsageError(f"--max-latency-ms must be a number >= 0, got {args.max_latency_ms}")
    if args.max_errors is not None and args.max_errors < 1:
        raise UsageError(f"--max-errors must be at least 1, got {args.max_errors}")
    if args.max_leading_errors < 0:
        raise UsageError(f"--max-leading-errors must be 0 or more, got {args.max_leading_errors}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError(
            f"--metrics-port must be a port number (0-65535), got {args.metrics_port}"
        )
    if args.metrics_port is not None and args.engine == "ray":
        raise UsageError(
            "--metrics-port is for --engine local (Ray actors run in their own processes)"
        )
    if args.source is not None or args.sink is not None:
        return _run_stream(args)
    _refuse_stream_options(args)
    if args.input is None:
        raise UsageError("give --input FILE (or - for stdin), or --source URL and --sink URL")
    on_error: OnError = "raise" if args.fail_fast else args.on_error
    loader = _target(args.path)
    with ExitStack() as stack:
        source: Iterable[str | bytes]
        if args.input == "-":
            source = _stdin_lines()
        else:
            path = _input_path(args.input, _project_root(args.path))
            if path.is_dir():
                raise UserError(f"--input {args.input}: is a folder, not a JSON Lines file")
            if not path.is_file():
                raise UserError(f"--input {args.input}: no such file")
            if args.output != "-" and _same_file(path, Path(args.output)):
                raise UserError(
                    f"--output {args.output} is the input file; writing it would erase the "
                    "input before it is read"
                )
            source = stack.enter_context(_open(path, "rb", "--input"))
        sink: IO[str] = sys.stdout
        # What the user's code prints must not land among the output lines.
        stack.enter_context(redirect_stdout(sys.stderr))

        def report(problem: LineError) -> None:
            _err(str(problem))

        if args.engine == "ray":
            return _run_on_ray(args, loader, path, sink, stack, on_error, report)
        backend = loader.load()
        stack.callback(_show_verbose_metrics(backend))
        if args.metrics_port is not None:
            _serve_metrics(backend, args.metrics_host, args.metrics_port, stack)
        if args.output != "-":
            # Opened only now, so that a backend that fails to load leaves the file alone.
            sink = stack.enter_context(_open(Path(args.output), "w", "--output"))

        output = _Output(sink, args.output)
        progress = _Progress(sys.stderr)
        try:
            with _sigterm_interrupts():
                summary = run_lines(
                    backend,
                    source,
                    output.write,
                    max_batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
                    max_latency_ms=args.max_latency_ms,
                    on_error=on_error,
                    max_errors=args.max_errors,
                    max_leading_errors=args.max_leading_errors or None,
                    flush=output.flush,
                    report=report,
                    progress=progress.update,
                )
        except Interrupted as exc:
            done = exc.summary
            terminated = isinstance(exc.__cause__, _Terminated)
            _err(
                f"packflow: {'terminated' if terminated else 'interrupted'}; "
                f"{_count(done.written, 'line')} written of {done.read} read"
            )
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except OSError:
            if output.error is None or isinstance(output.error, BrokenPipeError):
                raise  # a reader that went away (`| head`) ends the run quietly, in main
            _err(f"packflow run: error: {output.failure()}")
            return EXIT_FAILURE
    return _finish(summary, progress.shown)


class _Terminated(KeyboardInterrupt):
    """SIGTERM during ``run``: stops it as Ctrl-C does, with its own exit code."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the block runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Output:
    """Where ``run`` writes its lines: counts the lines known written and, when a write
    fails (a full disk), cuts a regular file back to its last whole line.

    The text layer buffers, so a failed write may have put part of a line in the file;
    after each successful flush the file's size and the lines written are noted, and a
    failure truncates the file to that size. The file descriptor is then pointed at
    ``/dev/null`` so that the buffered rest never lands anywhere, not even at exit.
    """

    def __init__(self, sink: IO[str], name: str) -> None:
        self.sink = sink
        self.name = "standard output" if name == "-" else name
        self.lines = 0
        self.flushed = 0
        self.size = self._position()
        self.error: OSError | None = None

    def _position(self) -> int | None:
        import stat

        try:
            descriptor = self.sink.fileno()
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return None
            return os.lseek(descriptor, 0, os.SEEK_CUR)
        except (OSError, ValueError, AttributeError):
            return None

    def write(self, text: str) -> None:
        try:
            self.sink.write(text + "\n")
        except OSError as exc:
            self._failed(exc)
            raise
        self.lines += 1

    def flush(self) -> None:
        if self.error is not None:
            return  # what is left in the buffer goes to /dev/null, not into the count
        try:
            self.sink.flush()
        except OSError as exc:
            self._failed(exc)
            raise
        self.flushed = self.lines
        if self.size is not None:
            self.size = self._position()

    def _failed(self, error: OSError) -> None:
        if self.error is not None:
            return
        self.error = error
        try:
            descriptor = self.sink.fileno()
            if self.size is not None:
                os.ftruncate(descriptor, self.size)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, descriptor)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def failure(self) -> str:
        """What went wrong, for the user: the output, the error and the lines written."""
        assert self.error is not None
        reason = self.error.strerror or str(self.error)
        kept = ", the file cut back to them" if self.size is not None else ""
        return (
            f"cannot write to {self.name}: {reason}; {_count(self.flushed, 'line')} written{kept}"
        )


def _serve_metrics(backend: Any, host: str, port: int, stack: ExitStack) -> None:
    """``run --metrics-port``: Prometheus metrics of ``backend`` on ``host:port`` meanwhile."""
    from packflow.observe.prometheus import enable_prometheus, serve_prometheus

    exporter = enable_prometheus(backend)
    stack.callback(exporter.disable)
    try:
        server = serve_prometheus(port, host=host)
    except OSError as exc:
        raise UserError(f"--metrics-port {port}: {host}:{port}: {exc.strerror or exc}") from exc
    stack.callback(server.close)
    _err(f"packflow: metrics at {server.url}")


def _finish(summary: RunSummary, progress_shown: bool) -> int:
    """Say how ``run`` went on stderr; its exit code."""
    if summary.stopped is not None:
        _err(
            f"packflow: stopped after {summary.stopped}; {_count(summary.written, 'line')} "
            f"written of {summary.read} read"
        )
        return EXIT_FAILURE
    if summary.failed:
        numbers = [str(f.number) for f in summary.first_failures]
        more = ", ..." if summary.failed > len(numbers) else ""
        _err(
            f"packflow: {summary.failed} of {summary.written} lines failed "
            f"(lines {', '.join(numbers)}{more}); each has an error row in the output"
        )
        return EXIT_FAILURE
    if progress_shown:
        _err(f"packflow: done, {_count(summary.written, 'line')}")
    return EXIT_OK


def _run_on_ray(
    args: argparse.Namespace,
    loader: Any,
    path: Path,
    sink: IO[str],
    stack: ExitStack,
    on_error: OnError,
    report: Callable[[LineError], None],
) -> int:
    """``run --engine ray``: the same lines as in process, computed by Ray actors."""
    from packflow.ray import DEFAULT_BATCH_SIZE as RAY_BATCH_SIZE
    from packflow.ray import run_jsonl

    target = loader.resolve()
    config = getattr(loader, "backend_config", {})
    if args.output != "-":
        sink = stack.enter_context(_open(Path(args.output), "w", "--output"))
    summary = run_jsonl(
        target,
        path,
        sink,
        config=config,
        concurrency=args.concurrency or 2,
        batch_size=args.batch_size or RAY_BATCH_SIZE,
        on_error=on_error,
        max_errors=args.max_errors,
        report=report,
    )
    sink.flush()
    return _finish(summary, False)


# --------------------------------------------------------------------------- streams

#: ``run``'s options that only a stream run takes (``--group`` has a default).
_STREAM_OPTIONS = ("dead_letter", "consumer", "idle_timeout", "max_message_bytes")


def _refuse_stream_options(args: argparse.Namespace) -> None:
    given = [f"--{name.replace('_', '-')}" for name in _STREAM_OPTIONS if getattr(args, name)]
    if args.group != "packflow":
        given.append("--group")
    if given:
        raise UsageError(f"{', '.join(given)}: only with --source URL and --sink URL")


def _run_stream(args: argparse.Namespace) -> int:
    """``run --source URL --sink URL``: consume a message stream until stopped."""
    import gc
    import math
    import signal
    import threading

    if args.source is None or args.sink is None:
        missing = "--sink" if args.sink is None else "--source"
        raise UsageError(f"{missing} URL is needed too: --source and --sink go together")
    if args.input is not None:
        raise UsageError("--input and --source exclude each other: read a file or a stream")
    if args.output != "-":
        raise UsageError("--output is for --input; a stream's outputs go to --sink")
    if args.engine != "local":
        raise UsageError("--engine ray reads a file; a stream runs in this process")
    if args.idle_timeout is not None and not (
        args.idle_timeout >= 0 and math.isfinite(args.idle_timeout)
    ):
        raise UsageError(f"--idle-timeout must be a number >= 0, got {args.idle_timeout}")
    if args.max_message_bytes is not None and args.max_message_bytes < 1:
        raise UsageError(f"--max-message-bytes must be at least 1, got {args.max_message_bytes}")
    from packflow.exceptions import StreamError
    from packflow.streams import DEFAULT_MAX_MESSAGE_BYTES, parse_url, run_stream
    from packflow.streams.consume import DeadLetter, StreamSummary
    from packflow.streams.urls import default_consumer

    urls = [("--source", args.source), ("--sink", args.sink), ("--dead-letter", args.dead_letter)]
    for option, url in urls:
        if url is not None:
            try:
                parse_url(url)
            except StreamError as exc:
                raise UsageError(f"{option} {exc}") from exc
    on_error: OnError = "raise" if args.fail_fast else args.on_error
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, frame: Any) -> None:
        if stop.is_set():  # asked twice: stop now, leaving the batch in flight unacknowledged
            raise KeyboardInterrupt
        received.append(signal.Signals(number).name)
        stop.set()

    # Installed before the pipeline loads, so that a SIGTERM while it loads is a clean stop.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    with ExitStack() as stack:
        for sig, handler in previous.items():
            stack.callback(signal.signal, sig, handler)
        loader = _target(args.path)
        with redirect_stdout(sys.stderr):
            backend = loader.load()
        stack.callback(_show_verbose_metrics(backend))
        if args.metrics_port is not None:
            _serve_metrics(backend, args.metrics_host, args.metrics_port, stack)
        # The pipeline (a model runtime, its modules) lives as long as this process: out of
        # the collector's way, so that its passes over the per-message garbage stay short
        # (they were a third of the time on the iris model).
        gc.freeze()
        consumer = args.consumer or default_consumer()
        dead = f"; failures to {parse_url(args.dead_letter).shown}" if args.dead_letter else ""
        _err(
            f"packflow: consuming {parse_url(args.source).shown} as {consumer!r} of group "
            f"{args.group!r}; outputs to {parse_url(args.sink).shown}{dead}"
        )
        progress = _StreamProgress(sys.stderr)

        def report(failure: DeadLetter) -> None:
            _err(f"{failure} (dead-lettered)")

        summary: StreamSummary = run_stream(
            backend,
            args.source,
            args.sink,
            dead_letter=args.dead_letter,
            group=args.group,
            consumer=consumer,
            max_batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
            max_latency_ms=args.max_latency_ms,
            on_error=on_error,
            max_errors=args.max_errors,
            max_message_bytes=args.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
            idle_timeout=args.idle_timeout,
            stop=stop,
            report=report,
            progress=progress.update,
            notify=_err,
        )
    why = received[0] if received else summary.stopped
    _err(
        f"packflow: stopped ({why}); {summary.read} read, {summary.written} written, "
        f"{summary.dead_lettered} dead-lettered, {summary.acknowledged} acknowledged"
    )
    if received and received[0] == "SIGINT":
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if summary.failed else EXIT_OK


class _StreamProgress:
    """Progress of a stream run on stderr: at most one line per interval."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.last = self.start

    def update(self, summary: Any) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        rate = summary.read / max(now - self.start, 1e-9)
        self.stream.write(
            f"packflow: {summary.read} read, {summary.written} written, "
            f"{summary.dead_lettered} dead-lettered ({rate:.0f}/s)\n"
        )
        self.stream.flush()


def _cmd_serve(args: argparse.Namespace) -> int:
    from packflow.prebuilt.extras import require_extra

    require_extra("uvicorn", "serve", "packflow serve")
    require_extra("starlette", "serve", "packflow serve")
    from packflow.serve import ServeOptions
    from packflow.serve.server import serve

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        options = ServeOptions(
            max_batch_size=args.max_batch_size,
            max_latency_ms=args.max_latency_ms,
            max_queue=args.max_queue,
            max_body_bytes=args.max_body_bytes,
            on_error=args.on_error,
        )
    except ValueError as exc:
        name, _, rest = str(exc).partition(" ")
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from exc
    if Path(args.path).is_file():
        raise UserError(
            f"{args.path} is a file; give the project folder that holds packflow.yaml, or "
            "module:attribute"
        )
    _target(args.path)  # a missing folder or module is one line, before uvicorn starts
    try:
        serve(args.path, host=args.host, port=args.port, workers=args.workers, options=options)
    except SystemExit as exc:
        if exc.code in (0, None):
            return EXIT_OK
        _err("packflow serve: error: the server did not start (see the log above)")
        return EXIT_FAILURE
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
    create.add_argument(
        "name",
        nargs="?",
        default=None,
        help="letters, digits, - and _, starting with a letter (asked for in a terminal "
        "when left out)",
    )
    create.add_argument("--directory", "-d", default=None, help="where to create it")
    create.add_argument("--description", default=None, help="one line about the project")
    create.add_argument("--project-version", default=None, help="default: 0.1.0")
    create.add_argument(
        "--maintainer", action="append", default=[], help="e-mail of a maintainer (repeatable)"
    )
    create.add_argument("--force", action="store_true", help="write into an existing folder")
    create.add_argument(
        "--template",
        choices=("blank", "onnx", "sklearn", "xgboost", "lightgbm"),
        default="blank",
        help="blank: a pipeline to edit (default); onnx, sklearn, xgboost or lightgbm: a "
        "prebuilt model pipeline",
    )
    create.add_argument(
        "--no-input",
        action="store_true",
        help="never ask (without NAME, create asks for the details in a terminal)",
    )
    create.set_defaults(handler=_cmd_create, create_usage=create.format_usage())

    check = commands.add_parser("check", help="type-check the stages and print the graph")
    check.add_argument("path", nargs="?", default=".", help=path_help)
    add_config_options(check)
    check.set_defaults(handler=_cmd_check)

    validate = commands.add_parser("validate", help="check files, metadata and the backend")
    validate.add_argument("path", nargs="?", default=".", help="project folder")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    add_config_options(validate)
    validate.set_defaults(handler=_cmd_validate)

    run = commands.add_parser("run", help="run JSON Lines through the pipeline")
    run.add_argument("path", nargs="?", default=".", help=path_help)
    run.add_argument("--input", "-i", default=None, help="JSON Lines file, or - for stdin")
    run.add_argument("--output", "-o", default="-", help="JSON Lines file, or - for stdout")
    run.add_argument(
        "--batch-size",
        "--max-batch-size",
        "-b",
        type=int,
        default=None,
        help=f"most records per call (default: {DEFAULT_BATCH_SIZE}; 1024 on Ray)",
    )
    run.add_argument(
        "--max-latency-ms",
        type=float,
        default=10.0,
        help="longest a record waits for its batch to fill (default: 10)",
    )
    run.add_argument(
        "--on-error",
        choices=("row", "raise"),
        default="row",
        help="row: an error row for each failed line (default); raise: stop at the first",
    )
    run.add_argument(
        "--max-errors",
        type=int,
        default=None,
        metavar="N",
        help="stop after N failed lines (their error rows written)",
    )
    run.add_argument(
        "--max-leading-errors",
        type=int,
        default=DEFAULT_MAX_LEADING_ERRORS,
        metavar="N",
        help=(
            "stop when the first N records all fail with the same error type and stage, "
            f"a systematic failure (default {DEFAULT_MAX_LEADING_ERRORS}; 0: never)"
        ),
    )
    run.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actors (pip install 'packflow[ray]')",
    )
    run.add_argument(
        "--concurrency", type=int, default=None, metavar="N", help="Ray actors (default: 2)"
    )
    run.add_argument(
        "--fail-fast", action="store_true", help="stop at the first failed line (--on-error raise)"
    )
    streams = run.add_argument_group(
        "message streams",
        "consume a stream instead of --input (pip install 'packflow[redis]' or "
        "'packflow[kafka]'); see docs/streams.md",
    )
    streams.add_argument(
        "--source",
        metavar="URL",
        default=None,
        help="redis://host:port/STREAM or kafka://host:port[,host:port]/TOPIC to consume",
    )
    streams.add_argument(
        "--sink", metavar="URL", default=None, help="where outputs go (same URL forms)"
    )
    streams.add_argument(
        "--dead-letter",
        metavar="URL",
        default=None,
        help="where failed messages go, with their payload and error row (default: the sink)",
    )
    streams.add_argument("--group", default="packflow", help="consumer group (default: packflow)")
    streams.add_argument(
        "--consumer",
        default=None,
        help="this consumer's name in the group (default: host-pid); keep it across "
        "restarts so a restart takes back its own pending messages at once",
    )
    streams.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit once no message came for this long (default: run until SIGTERM/SIGINT)",
    )
    streams.add_argument(
        "--max-message-bytes",
        type=int,
        default=None,
        metavar="N",
        help="a larger payload is dead-lettered unread (default: 1048576)",
    )

    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve Prometheus metrics on this port while running, 0 for a free one "
        "(pip install 'packflow[metrics]')",
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address --metrics-port listens on (default: 127.0.0.1)",
    )
    add_config_options(run)
    run.set_defaults(handler=_cmd_run)

    serve = commands.add_parser("serve", help="serve the pipeline over HTTP (uvicorn)")
    serve.add_argument("path", nargs="?", default=".", help=path_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes, each building the pipeline once"
    )
    serve.add_argument(
        "--max-batch-size", type=int, default=64, help="most records per call (default: 64)"
    )
    serve.add_argument(
        "--max-latency-ms",
        type=float,
        default=5.0,
        help="longest a record waits for its batch to fill (default: 5)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=None,
        metavar="N",
        help="most records waiting; more is 503 (default: 16 x --max-batch-size)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=16 * 1024 * 1024,
        metavar="N",
        help="largest JSON body, longest NDJSON line; more is 413 (default: 16 MiB)",
    )
    serve.add_argument(
        "--on-error",
        choices=("row", "raise"),
        default="row",
        help="row: an error row per failed record (default); raise: 422 for the request",
    )
    serve.set_defaults(handler=_cmd_serve)

    export = commands.add_parser("export", help="zip the project for distribution")
    export.add_argument("path", nargs="?", default=".", help="project folder")
    export.add_argument(
        "--output-dir", default=None, help="where to write the zip (default: here)"
    )
    export.add_argument(
        "--with-deps",
        action="store_true",
        help="an offline bundle: wheels for every requirement, packflow's own included",
    )
    export.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help="with --with-deps: wheels for this platform (pip's tag, e.g. "
        "manylinux2014_x86_64; repeatable; default: this machine)",
    )
    export.add_argument(
        "--python-version",
        default=None,
        metavar="X.Y",
        help="with --with-deps: wheels for this Python (default: the running one)",
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
    2: a command-line usage error; 130: interrupted; 143: ``run`` terminated by SIGTERM.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    restore_logging = _configure_logging(args.debug)
    try:
        from packflow.config import applied_layers

        with applied_layers(_config_layers(args)):
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
