"""Packflow projects: the ``packflow.yaml`` model, scaffolding, validation and export.

A project is a folder holding ``packflow.yaml`` (metadata and how to load the backend),
``requirements.txt``, the inference code and its documentation. This module reads and
writes that folder; it never imports the CLI, and it loads user code only in
:func:`validate_project` (through :mod:`packflow.loaders`).
"""

from __future__ import annotations

import datetime
import difflib
import importlib.resources
import json
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from packflow.converter import converter
from packflow.exceptions import ConfigError, PackflowError

__all__ = [
    "DEFAULT_SAMPLE_FILE",
    "PROJECT_FILE",
    "RECOMMENDED_FILES",
    "REQUIRED_FILES",
    "ExportResult",
    "Finding",
    "ProjectConfig",
    "ProjectError",
    "ProjectReport",
    "RuntimeSettings",
    "archive_name",
    "check_project_name",
    "create_project",
    "dump_project_config",
    "export_project",
    "find_project_file",
    "list_project_files",
    "read_jsonl_samples",
    "read_project_config",
    "validate_project",
]

PROJECT_FILE = "packflow.yaml"
REQUIRED_FILES: tuple[str, ...] = (PROJECT_FILE, "requirements.txt")
RECOMMENDED_FILES: tuple[str, ...] = (
    "README.md",
    "MODEL_CARD.md",
    "LICENSE.txt",
    "validate.py",
    "test_inference.py",
)
DEFAULT_SAMPLE_FILE = "sample.jsonl"
LOADERS: tuple[str, ...] = ("local", "module")

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
# Characters that may appear in a version and so in an archive's file name.
_VERSION_CHARS = re.compile(r"[A-Za-z0-9.+!_-]+\Z")
# The public version scheme of PEP 440, loosely: 1.2, 1.2.3rc1, 2!1.0.post2.dev3+local.
_PEP440 = re.compile(
    r"v?(\d+!)?\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[A-Za-z0-9.]+)?\Z"
)
_PYTHON_VERSION = re.compile(r"3\.\d+(\.\d+)?\Z")
_BACKEND_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
# A requirement line: a distribution name, then extras, specifiers, a URL or markers.
_REQUIREMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(\[[\w,\s.-]*\])?\s*"
    r"(?:(?:[<>=!~]=?|===?)\s*[\w.*+!-]+\s*(?:,\s*(?:[<>=!~]=?|===?)\s*[\w.*+!-]+\s*)*"
    r"|@\s*\S+\s*)?(?:;.*)?\Z"
)


class ProjectError(PackflowError):
    """A project cannot be created, validated or exported.

    ``problems`` holds the :class:`Finding` values (or messages) that caused it.
    """

    def __init__(self, message: str, problems: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Any] = list(problems) if problems is not None else [message]


def check_project_name(name: str) -> str:
    """Return ``name`` if it is a valid project name, else raise.

    A name starts with a letter and continues with letters, digits, ``-`` and ``_``.

    Raises
    ------
    ProjectError
        When the name is empty or has another character.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProjectError(
            f"invalid project name {name!r}: a name starts with a letter and continues "
            "with letters, digits, '-' and '_'"
        )
    return name


def _name_validator(_instance: Any, _attribute: Any, value: str) -> None:
    try:
        check_project_name(value)
    except ProjectError as exc:
        raise ValueError(str(exc)) from None


@attrs.frozen(kw_only=True)
class RuntimeSettings:
    """How a project's backend is loaded (the ``runtime:`` section of ``packflow.yaml``)."""

    #: ``module:attribute`` naming a Pipeline, an InferenceBackend or a factory.
    inference_backend: str = "inference:pipe"
    #: ``local`` (a file in the project) or ``module`` (an installed package).
    loader: Literal["local", "module"] = "local"
    #: The Python version the project is meant for, e.g. ``"3.11"``.
    python_version: str | None = None


@attrs.frozen(kw_only=True)
class ProjectConfig:
    """The contents of ``packflow.yaml``.

    Keys packflow does not know are kept in ``custom`` (and written back by
    :func:`dump_project_config`), so that other tools can store their metadata there.
    """

    name: str = attrs.field(validator=_name_validator)
    version: str = "0.1.0"
    description: str = ""
    maintainers: list[str] = attrs.field(factory=list)
    runtime: RuntimeSettings = attrs.field(factory=RuntimeSettings)
    #: Config overrides handed to the backend when it is loaded from the project.
    backend_config: dict[str, Any] = attrs.field(factory=dict)
    #: A JSON Lines file of sample inputs, relative to the project folder.
    sample_inputs: str | None = None
    custom: dict[str, Any] = attrs.field(factory=dict)

    @property
    def archive_name(self) -> str:
        """The file name :func:`export_project` gives the archive."""
        return archive_name(self.name, self.version)


_TOP_LEVEL = tuple(f.name for f in attrs.fields(ProjectConfig) if f.name != "custom")
_RUNTIME_KEYS = tuple(f.name for f in attrs.fields(RuntimeSettings))


def archive_name(name: str, version: str) -> str:
    """``{name}-{version}.zip`` with hyphens in the name replaced by underscores.

    The underscore keeps the hyphen before the version unambiguous (as in PEP 625).
    """
    return f"{name.replace('-', '_')}-{version}.zip"


def find_project_file(path: str | os.PathLike[str]) -> Path:
    """The ``packflow.yaml`` of a project folder (or the file itself, if given).

    Raises
    ------
    ConfigError
        When the folder does not exist or holds no ``packflow.yaml``.
    """
    given = Path(path)
    if given.is_dir():
        candidate = given / PROJECT_FILE
    elif given.name == PROJECT_FILE or given.suffix in (".yaml", ".yml"):
        candidate = given
    elif not given.exists():
        raise ConfigError(f"no project at {given}: the folder does not exist", path=str(given))
    else:
        raise ConfigError(
            f"{given} is a file, not a project folder (a folder holding {PROJECT_FILE})",
            path=str(given),
        )
    if not candidate.is_file():
        where = candidate.parent
        if not where.exists():
            raise ConfigError(f"no project at {where}: the folder does not exist", path=str(where))
        raise ConfigError(
            f"no project at {where}: {PROJECT_FILE} is missing "
            "(create one with `packflow create NAME`)",
            path=str(candidate),
        )
    return candidate


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return f"a {type(value).__name__}"


def _file_error(where: Path, message: str, field: str | None = None) -> ConfigError:
    """A ``ConfigError`` about ``packflow.yaml`` that starts with the file's path."""
    return ConfigError(f"{where}: {message}", field=field, path=str(where))


def _expect_str(value: Any, key: str, where: Path) -> str:
    if isinstance(value, str):
        return value
    hint = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hint = f'; YAML read it as a number, so quote it: {key.rsplit(".", 1)[-1]}: "{value}"'
    raise _file_error(where, f"`{key}` must be a string, got {_type_name(value)}{hint}", key)


def _unknown_key_error(key: str, known: Iterable[str], section: str, where: Path) -> ConfigError:
    matches = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean `{matches[0]}`?" if matches else f"; known keys: {', '.join(known)}"
    return _file_error(where, f"unknown key `{key}` in `{section}`{hint}", f"{section}.{key}")


def _normalise(raw: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """Check the types of the known keys and split off the unknown ones."""
    data: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    runtime_raw: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise _file_error(where, f"keys must be strings, got {key!r}")
        if key in _RUNTIME_KEYS:
            # The original packflow.yaml kept these at the top level; accept both places.
            runtime_raw[key] = value
        elif key == "runtime":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise _file_error(
                    where, f"`runtime` must be a mapping, got {_type_name(value)}", "runtime"
                )
            for sub, subvalue in value.items():
                if sub not in _RUNTIME_KEYS:
                    raise _unknown_key_error(str(sub), _RUNTIME_KEYS, "runtime", where)
                runtime_raw[sub] = subvalue
        elif key in _TOP_LEVEL:
            data[key] = value
        else:
            custom[key] = value
    if "name" not in data or data["name"] is None:
        raise _file_error(where, "`name` is missing", "name")
    try:
        check_project_name(_expect_str(data["name"], "name", where))
    except ProjectError as exc:
        raise _file_error(where, str(exc), "name") from None
    for key in ("version", "description", "sample_inputs"):
        if data.get(key) is None:
            data.pop(key, None)
        else:
            data[key] = _expect_str(data[key], key, where)
    if "version" in data and not _VERSION_CHARS.match(data["version"]):
        raise _file_error(
            where,
            f"invalid version {data['version']!r}: use letters, digits and . + ! - _",
            "version",
        )
    maintainers = data.get("maintainers")
    if maintainers is None:
        data.pop("maintainers", None)
    elif isinstance(maintainers, str):
        data["maintainers"] = [maintainers]
    elif isinstance(maintainers, list):
        for index, item in enumerate(maintainers):
            _expect_str(item, f"maintainers[{index}]", where)
    else:
        raise _file_error(
            where,
            f"`maintainers` must be a list of strings, got {_type_name(maintainers)}",
            "maintainers",
        )
    backend_config = data.get("backend_config")
    if backend_config is None:
        data.pop("backend_config", None)
    elif not isinstance(backend_config, Mapping):
        raise _file_error(
            where,
            f"`backend_config` must be a mapping, got {_type_name(backend_config)}",
            "backend_config",
        )
    runtime: dict[str, Any] = {}
    for key, value in runtime_raw.items():
        if value is None:
            continue
        runtime[key] = _expect_str(value, f"runtime.{key}", where)
    if "loader" in runtime and runtime["loader"] not in LOADERS:
        raise _file_error(
            where,
            f"`runtime.loader` is {runtime['loader']!r}; choose one of {', '.join(LOADERS)}",
            "runtime.loader",
        )
    spec = runtime.get("inference_backend")
    if spec is None:
        # No default: guessing `inference:pipe` would blame a name the user never wrote.
        raise _file_error(
            where,
            "`runtime.inference_backend` is missing; name the backend as "
            "'module:attribute', e.g. inference_backend: inference:pipe",
            "runtime.inference_backend",
        )
    if not _BACKEND_SPEC.match(spec):
        raise _file_error(
            where,
            f"`runtime.inference_backend` is {spec!r}; expected 'module:attribute', "
            "e.g. 'inference:pipe'",
            "runtime.inference_backend",
        )
    data["runtime"] = runtime
    data["custom"] = custom
    return data


def read_project_config(path: str | os.PathLike[str]) -> ProjectConfig:
    """Read and check a project's ``packflow.yaml``.

    Parameters
    ----------
    path
        The project folder, or the ``packflow.yaml`` file itself.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, or a key has the wrong type or value;
        the message names the file and the key.
    """
    where = find_project_file(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}", path=str(where)) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}", path=str(where)) from exc
    if raw is None:
        raise ConfigError(f"{where}: the file is empty; it needs at least `name`", path=str(where))
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of keys to values, got {_type_name(raw)}",
            path=str(where),
        )
    data = _normalise(raw, where)
    return converter.structure(data, ProjectConfig)


def dump_project_config(config: ProjectConfig) -> str:
    """The text of ``packflow.yaml`` for ``config``, with comments explaining each part."""

    def block(value: Mapping[str, Any]) -> str:
        return yaml.safe_dump(
            dict(value), sort_keys=False, default_flow_style=False, allow_unicode=True
        )

    runtime = {k: v for k, v in converter.unstructure(config.runtime).items() if v is not None}
    parts = [
        "# packflow project file: read by `packflow check`, `validate`, `run` and `export`.",
        "# Keys packflow does not know are kept as custom metadata.",
        "",
        "# === METADATA ===",
        block(
            {
                "name": config.name,
                "version": config.version,
                "description": config.description,
                "maintainers": list(config.maintainers),
            }
        ),
        "# === RUNTIME ===",
        "# inference_backend: 'module:attribute' of a Pipeline, an InferenceBackend class or",
        "# instance, or a factory returning one; loader: local (a file in this folder) or",
        "# module (an installed package).",
        block({"runtime": runtime}),
        "# === BACKEND CONFIG ===",
        "# Config values for the backend; keyword arguments given when loading win over these.",
        block({"backend_config": dict(config.backend_config)}),
    ]
    if config.sample_inputs is not None:
        parts += [
            "# === SAMPLES ===",
            "# JSON Lines inputs that `packflow validate` runs through the backend.",
            block({"sample_inputs": config.sample_inputs}),
        ]
    if config.custom:
        parts += ["# === CUSTOM METADATA ===", block(config.custom)]
    return "\n".join(parts)


# --------------------------------------------------------------------------- scaffolding

_TEMPLATES = "templates/project"
# Template file -> file written into the new project.
_SCAFFOLD: tuple[tuple[str, str], ...] = (
    ("inference.py.tmpl", "inference.py"),
    ("validate.py.tmpl", "validate.py"),
    ("test_inference.py.tmpl", "test_inference.py"),
    ("README.md.tmpl", "README.md"),
    ("MODEL_CARD.md.tmpl", "MODEL_CARD.md"),
    ("requirements.txt.tmpl", "requirements.txt"),
    ("sample.jsonl.tmpl", DEFAULT_SAMPLE_FILE),
    ("gitignore.tmpl", ".gitignore"),
)


def _template(name: str) -> str:
    return (importlib.resources.files("packflow") / _TEMPLATES / name).read_text("utf-8")


def _packflow_version() -> str:
    from packflow import __version__

    return str(__version__)


def create_project(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    description: str = "",
    version: str = "0.1.0",
    maintainers: Sequence[str] = (),
    force: bool = False,
) -> Path:
    """Scaffold a new project folder ``directory/name`` and return its path.

    The project holds ``packflow.yaml``, ``requirements.txt``, an ``inference.py`` with a
    working pipeline, ``README.md``, ``MODEL_CARD.md``, an empty ``LICENSE.txt``,
    ``validate.py``, ``test_inference.py``, ``sample.jsonl`` and a ``.gitignore``.

    Parameters
    ----------
    name
        The project name: a letter, then letters, digits, ``-`` and ``_``.
    directory
        Where to create the folder; the working directory by default.
    force
        Write into an existing, non-empty folder; files that already exist there are
        kept as they are, only the missing ones are written.

    Raises
    ------
    ProjectError
        When the name is invalid, the folder exists and is not empty (without
        ``force``), or the files cannot be written.
    """
    check_project_name(name)
    if not _VERSION_CHARS.match(version):
        raise ProjectError(f"invalid version {version!r}: use letters, digits and . + ! - _")
    target = Path(directory if directory is not None else Path.cwd()) / name
    if target.exists() and not target.is_dir():
        raise ProjectError(f"cannot create project {name!r}: {target} is a file")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ProjectError(
            f"cannot create project {name!r}: {target} already exists and is not empty "
            "(pass --force to write into it)"
        )
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    config = ProjectConfig(
        name=name,
        version=version,
        description=description,
        maintainers=list(maintainers),
        runtime=RuntimeSettings(python_version=python_version),
        sample_inputs=DEFAULT_SAMPLE_FILE,
    )
    values = {
        "name": name,
        "title": name.replace("-", " ").replace("_", " ").strip().title(),
        "description": description or f"Inference code for {name}.",
        "version": version,
        "packflow_version": _packflow_version(),
        "python_version": python_version,
        "year": str(datetime.date.today().year),
    }
    # LICENSE.txt is empty on purpose: the license is the author's choice; validation
    # reminds them.
    files = {PROJECT_FILE: dump_project_config(config), "LICENSE.txt": ""}
    for template, filename in _SCAFFOLD:
        text = _template(template)
        for key, value in values.items():
            text = text.replace("{{ " + key + " }}", value)
        files[filename] = text
    try:
        target.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            # With force, what the folder already holds is the user's work: keep it.
            if not (target / filename).exists():
                (target / filename).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProjectError(
            f"cannot create project {name!r} in {target.parent}: {exc.strerror or exc}"
        ) from exc
    return target


# --------------------------------------------------------------------------- validation


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
                raise ValueError(f"line {number}: expected a JSON object, got {_type_name(value)}")
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
        if not _REQUIREMENT.match(line):
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
        if not _PEP440.match(config.version):
            add(
                "warning",
                "packflow.yaml: version",
                f"{config.version!r} is not a PEP 440 version (e.g. 1.0.0)",
            )
        wanted = config.runtime.python_version
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        if wanted is not None:
            if not _PYTHON_VERSION.match(wanted):
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
    problem = _validation_problem(backend, [record for _, record in samples])
    if problem is None:
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


def _validation_problem(backend: Any, records: list[dict[str, Any]]) -> str | None:
    try:
        backend.validate(records)
    except Exception as exc:
        return str(exc) if isinstance(exc, PackflowError) else f"{type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------- export

# Folders that never belong in an archive: version control, caches, virtualenvs.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".ipynb_checkpoints",
        ".tox",
        ".nox",
        ".eggs",
        ".venv",
        "venv",
        "env",
        ".idea",
        ".vscode",
    }
)
_SKIP_FILES = frozenset(
    {
        ".DS_Store",
        "Thumbs.db",
        ".netrc",
        ".pypirc",
        ".npmrc",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        ".coverage",
    }
)
_SKIP_SUFFIXES = (".pyc", ".pyo", ".pem", ".key", ".p12", ".pfx")
# `.env.example` and friends are templates meant to be shared, unlike `.env.local`.
_SHAREABLE_ENV = (".example", ".sample", ".template", ".dist")


def _always_skipped(name: str, is_dir: bool, path: Path) -> bool:
    if is_dir:
        return name in _SKIP_DIRS or name.endswith(".egg-info") or (path / "pyvenv.cfg").is_file()
    if name in _SKIP_FILES or name.endswith(_SKIP_SUFFIXES):
        return True
    return name == ".env" or (name.startswith(".env.") and not name.endswith(_SHAREABLE_ENV))


@attrs.frozen
class _IgnoreRule:
    base: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    def matches(self, relpath: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not relpath.startswith(self.base + "/"):
                return False
            relpath = relpath[len(self.base) + 1 :]
        return self.regex.fullmatch(relpath) is not None


def _glob_to_regex(pattern: str) -> str:
    if pattern == "**":
        # "/**" (anchored, everything below the .gitignore's folder) once "/" is gone.
        return ".*"
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif char == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif char == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _parse_gitignore(text: str, base: str) -> list[_IgnoreRule]:
    rules: list[_IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        # Trailing spaces are ignored unless escaped with a backslash.
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith(("\\!", "\\#")):
            # "\!" and "\#" escape a leading "!" or "#" that is part of the name.
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        if not anchored:
            line = "**/" + line
        rules.append(_IgnoreRule(base, re.compile(_glob_to_regex(line)), negate, dir_only))
    return rules


def _walk(root: Path, extra_skip: Callable[[str], bool]) -> Iterator[str]:
    rules: list[_IgnoreRule] = []

    def ignored(relpath: str, is_dir: bool) -> bool:
        verdict = False
        for rule in rules:
            if rule.matches(relpath, is_dir):
                verdict = not rule.negate
        return verdict

    def visit(folder: Path, rel: str) -> Iterator[str]:
        gitignore = folder / ".gitignore"
        if gitignore.is_file():
            rules.extend(_parse_gitignore(gitignore.read_text("utf-8", "replace"), rel))
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        for entry in entries:
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                # A link may point anywhere (a home folder, a key); only keep links that
                # stay inside the project.
                target = path.resolve()
                if root.resolve() not in target.parents or not target.is_file():
                    continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if _always_skipped(entry.name, is_dir, path) or ignored(relpath, is_dir):
                continue
            if is_dir:
                yield from visit(path, relpath)
            elif not extra_skip(relpath):
                yield relpath

    yield from visit(root, "")


def list_project_files(
    path: str | os.PathLike[str], *, exclude: Callable[[str], bool] | None = None
) -> list[str]:
    """The files :func:`export_project` puts in the archive, as sorted POSIX paths.

    Skips what ``.gitignore`` files ignore, version-control folders, caches,
    virtualenvs, compiled Python files and secrets (``.env``, private keys, ``.netrc``).
    ``exclude`` can skip more (it receives each relative path).
    """
    root = Path(path)
    return sorted(_walk(root, exclude or (lambda _relpath: False)))


@attrs.frozen
class ExportResult:
    """The archive :func:`export_project` wrote and the files it holds."""

    archive: Path
    files: tuple[str, ...]
    report: ProjectReport | None


def export_project(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    validate: bool = True,
) -> ExportResult:
    """Zip a project into ``{name}-{version}.zip`` (hyphens in the name become ``_``).

    Parameters
    ----------
    path
        The project folder.
    output_dir
        Where to write the archive; the working directory by default.
    validate
        Run :func:`validate_project` first and refuse to export when it finds errors.

    Raises
    ------
    ConfigError
        When ``packflow.yaml`` is missing or broken.
    ProjectError
        When validation finds errors (``problems`` lists them) or the archive cannot be
        written.
    """
    root = Path(path)
    report: ProjectReport | None = None
    if validate:
        report = validate_project(root)
        if len(report.errors) == 1:
            only = report.errors[0]
            raise ProjectError(
                f"not exporting {root}: validation found an error: {only.subject}: {only.message}",
                report.errors,
            )
        if report.errors:
            lines = "\n".join(f"  {finding}" for finding in report.errors)
            raise ProjectError(
                f"not exporting {root}: validation found {len(report.errors)} errors:\n{lines}",
                report.errors,
            )
    config = read_project_config(root)
    destination = Path(output_dir) if output_dir is not None else Path.cwd()
    archive = destination / config.archive_name
    old_archives = re.compile(re.escape(config.name.replace("-", "_")) + r"-[^/]*\.zip\Z")
    files = list_project_files(root, exclude=lambda relpath: bool(old_archives.match(relpath)))
    needed = [*REQUIRED_FILES]
    if config.runtime.loader == "local":
        from packflow.loaders import LocalLoader

        module_file = LocalLoader(config.runtime.inference_backend, base_dir=root).path
        needed.append(module_file.relative_to(root).as_posix())
    left_out = [name for name in needed if name not in files and (root / name).is_file()]
    if left_out:
        raise ProjectError(
            f"not exporting {root}: the archive would leave out {', '.join(left_out)}, "
            "which the project needs to load; .gitignore (or a secret or cache rule) "
            "excludes it"
        )
    try:
        destination.mkdir(parents=True, exist_ok=True)
        # Written next to the target and renamed, so a failed export leaves no broken zip.
        handle, temp_name = tempfile.mkstemp(suffix=".zip.part", dir=destination)
        os.close(handle)
        try:
            with zipfile.ZipFile(temp_name, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
                for relpath in files:
                    zipped.write(root / relpath, relpath)
            os.replace(temp_name, archive)
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
    except OSError as exc:
        raise ProjectError(f"cannot write {archive}: {exc}") from exc
    return ExportResult(archive, tuple(files), report)
