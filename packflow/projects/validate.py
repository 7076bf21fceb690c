"""Validation: what a project folder lacks or gets wrong, as errors and warnings.

The one part of :mod:`packflow.projects` that runs the project's code (through
:mod:`packflow.loaders`, when the backend is loaded and validated on the samples).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from packflow.exceptions import ConfigError, PackflowError
from packflow.projects.manifest import (
    DEFAULT_SAMPLE_FILE,
    PEP440,
    PROJECT_FILE,
    PYTHON_VERSION_PATTERN,
    RECOMMENDED_FILES,
    REQUIRED_FILES,
    REQUIREMENT_PATTERN,
    ProjectConfig,
    json_type_name,
    read_project_config,
)

__all__ = ["Finding", "ProjectReport", "read_jsonl_samples", "validate_project"]


@attrs.frozen
class Finding:
    """One result of a project validation: an error (blocks export) or a warning."""

    level: Literal["error", "warning"]
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.subject}: {self.message}"


@attrs.frozen
class ProjectReport:
    """What :func:`validate_project` found; ``ok`` when there are no errors."""

    path: Path
    findings: tuple[Finding, ...]
    config: ProjectConfig | None = None
    #: How many sample records passed the backend's ``validate()`` (None: not run).
    samples_validated: int | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


def read_jsonl_samples(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON Lines file of records (blank lines are skipped).

    Raises
    ------
    ValueError
        When a line is not valid JSON or not a JSON object; the message names the line.
    """
    return [record for _, record in _numbered_samples(path)]


def _numbered_samples(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """The records of a JSON Lines file with the line number of each."""
    records: list[tuple[int, dict[str, Any]]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not valid JSON: {exc.msg}") from exc
            if not isinstance(value, dict):
                raise ValueError(
                    f"line {number}: expected a JSON object, got {json_type_name(value)}"
                )
            records.append((number, value))
    return records


def _check_requirements(path: Path, add: Callable[[str, str, str], None]) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        add("error", path.name, f"cannot read: {exc}")
        return
    names: set[str] = set()
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            # pip options (-r other.txt, --index-url ...) are pip's business.
            continue
        if "://" in line and "@" not in line:
            continue
        if not REQUIREMENT_PATTERN.match(line):
            add("error", f"{path.name}:{number}", f"not a valid requirement: {line!r}")
            continue
        names.add(re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0].lower().replace("_", "-"))
    if "packflow" not in names:
        add("warning", path.name, "does not list packflow")


def validate_project(path: str | os.PathLike[str], *, load_backend: bool = True) -> ProjectReport:
    """Check a project folder and report errors and warnings.

    Errors: a missing ``packflow.yaml`` or ``requirements.txt``, a broken
    ``packflow.yaml``, an invalid requirement line, a missing inference module, a backend
    that fails to load or to type-check, and sample inputs that fail the backend's
    ``validate()``. Warnings: missing or empty recommended files, incomplete metadata,
    a Python version other than the running one, no sample inputs.

    Parameters
    ----------
    load_backend
        Load the backend (this runs the project's code: imports and initializers) and
        validate it on the project's sample inputs, when it has some.
    """
    root = Path(path)
    findings: list[Finding] = []

    def add(level: str, subject: str, message: str) -> None:
        findings.append(Finding("error" if level == "error" else "warning", subject, message))

    if not root.is_dir():
        what = "is a file, not a project folder" if root.exists() else "no such project folder"
        add("error", str(root), what)
        return ProjectReport(root, tuple(findings))

    config: ProjectConfig | None = None
    if (root / PROJECT_FILE).is_file():
        try:
            config = read_project_config(root)
        except ConfigError as exc:
            add("error", PROJECT_FILE, str(exc).removeprefix(f"{root / PROJECT_FILE}: "))
    else:
        add("error", PROJECT_FILE, "missing (required)")
    for filename in REQUIRED_FILES[1:]:
        if not (root / filename).is_file():
            add("error", filename, "missing (required)")
    for filename in RECOMMENDED_FILES:
        file = root / filename
        if not file.is_file():
            add("warning", filename, "missing (recommended)")
        elif not file.read_bytes().strip():
            add("warning", filename, "is empty")
    if (root / "requirements.txt").is_file():
        _check_requirements(root / "requirements.txt", add)

    samples_validated: int | None = None
    if config is not None:
        if not config.description.strip():
            add("warning", "packflow.yaml: description", "is empty")
        if not config.maintainers:
            add("warning", "packflow.yaml: maintainers", "none listed")
        if not PEP440.match(config.version):
            add(
                "warning",
                "packflow.yaml: version",
                f"{config.version!r} is not a PEP 440 version (e.g. 1.0.0)",
            )
        wanted = config.runtime.python_version
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        if wanted is not None:
            if not PYTHON_VERSION_PATTERN.match(wanted):
                add(
                    "warning",
                    "packflow.yaml: runtime.python_version",
                    f"{wanted!r} is not a Python version such as 3.11",
                )
            elif not (wanted + ".").startswith(running + "."):
                add(
                    "warning",
                    "packflow.yaml: runtime.python_version",
                    f"the project asks for Python {wanted}; this is Python {running}",
                )
        spec = config.runtime.inference_backend
        from packflow.loaders import LocalLoader

        module_file = LocalLoader(spec, base_dir=root).path
        local = config.runtime.loader == "local"
        if local and not module_file.is_file():
            add(
                "error",
                "packflow.yaml: runtime.inference_backend",
                f"{spec!r} names {module_file.relative_to(root).as_posix()}, which does not exist",
            )
        elif load_backend:
            samples_validated = _validate_backend(root, config, add)
    return ProjectReport(root, tuple(findings), config, samples_validated)


def _validate_backend(
    root: Path, config: ProjectConfig, add: Callable[[str, str, str], None]
) -> int | None:
    from packflow.loaders import InferenceBackendLoader

    try:
        backend = InferenceBackendLoader.from_project(root)
    except Exception as exc:
        # Any failure of the project's own code is a finding, not a crash of `validate`.
        message = str(exc) if isinstance(exc, PackflowError) else f"{type(exc).__name__}: {exc}"
        add("error", "backend", f"does not load: {message}")
        return None
    sample_name = config.sample_inputs
    if sample_name is None:
        if not (root / DEFAULT_SAMPLE_FILE).is_file():
            add(
                "warning",
                "samples",
                f"no sample inputs ({DEFAULT_SAMPLE_FILE}); validate() was not run",
            )
            return None
        sample_name = DEFAULT_SAMPLE_FILE
    sample_file = root / sample_name
    if not sample_file.is_file():
        add("error", "packflow.yaml: sample_inputs", f"{sample_name} does not exist")
        return None
    try:
        samples = _numbered_samples(sample_file)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        add("error", sample_name, str(exc))
        return None
    if not samples:
        add("warning", sample_name, "holds no records; validate() was not run")
        return None
    outputs: list[Any] = []
    problem = _validation_problem(backend, [record for _, record in samples], outputs)
    if problem is None:
        _check_output_keys(backend, samples, outputs, sample_name, add)
        return len(samples)
    # Find the lines at fault, as `packflow run` does, so the user knows where to look.
    for number, record in samples:
        single = _validation_problem(backend, [record])
        if single is not None:
            add("error", f"{sample_name}:{number}", f"validate() failed: {single}")
            problem = None
    if problem is not None:
        add("error", sample_name, f"validate() failed: {problem}")
    return None


def _validation_problem(
    backend: Any, records: list[dict[str, Any]], outputs: list[Any] | None = None
) -> str | None:
    try:
        result = backend.validate(records)
    except Exception as exc:
        return str(exc) if isinstance(exc, PackflowError) else f"{type(exc).__name__}: {exc}"
    if outputs is not None:
        outputs.extend(result)
    return None


def _check_output_keys(
    backend: Any,
    samples: list[tuple[int, dict[str, Any]]],
    outputs: list[Any],
    sample_name: str,
    add: Callable[[str, str, str], None],
) -> None:
    """A warning for each declared ``output_keys`` entry that a sample's output lacks."""
    from packflow.backend import built_pipeline

    for key in built_pipeline(backend).output_keys:
        lines = [
            number
            for (number, _), row in zip(samples, outputs, strict=True)
            if isinstance(row, dict) and key not in row
        ]
        if lines:
            shown = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
            add(
                "warning",
                f"{sample_name}",
                f"output_keys: {key!r} is missing from the output of "
                f"{len(lines)} of {len(samples)} sample(s) (line{'s' if len(lines) > 1 else ''} "
                f"{shown})",
            )
