"""The project manifest: ``packflow.yaml`` as a value, read, checked and written.

The lowest layer of :mod:`packflow.projects`: it knows the project's file names, the
:class:`ProjectConfig` model and its YAML form, and imports neither the loaders nor any
user code, so that :mod:`packflow.loaders` can read a project through it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from packflow._text import closest
from packflow.converter import converter
from packflow.exceptions import ConfigError, ProjectError, ProjectExistsError

__all__ = [
    "DEFAULT_SAMPLE_FILE",
    "PROJECT_FILE",
    "RECOMMENDED_FILES",
    "REQUIRED_FILES",
    "ProjectConfig",
    "ProjectError",
    "ProjectExistsError",
    "RuntimeSettings",
    "apply_project_env",
    "archive_name",
    "check_project_name",
    "dump_project_config",
    "find_project_file",
    "read_project_config",
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
#: Characters that may appear in a version and so in an archive's file name.
VERSION_CHARS = re.compile(r"[A-Za-z0-9.+!_-]+\Z")
#: The public version scheme of PEP 440, loosely: 1.2, 1.2.3rc1, 2!1.0.post2.dev3+local.
PEP440 = re.compile(
    r"v?(\d+!)?\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[A-Za-z0-9.]+)?\Z"
)
#: A Python version a project may ask for: ``3.11`` or ``3.11.7``.
PYTHON_VERSION_PATTERN = re.compile(r"3\.\d+(\.\d+)?\Z")
# What a POSIX shell accepts as a variable name (Windows accepts more, but then the same
# project would not run on Linux).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BACKEND_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
#: A requirement line: a distribution name, then extras, specifiers, a URL or markers.
REQUIREMENT_PATTERN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(\[[\w,\s.-]*\])?\s*"
    r"(?:(?:[<>=!~]=?|===?)\s*[\w.*+!-]+\s*(?:,\s*(?:[<>=!~]=?|===?)\s*[\w.*+!-]+\s*)*"
    r"|@\s*\S+\s*)?(?:;.*)?\Z"
)


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
    #: Environment variables set before the backend is loaded (``env:``, as in 0.4.1).
    env: dict[str, str] = attrs.field(factory=dict)
    #: Free-form metadata for other tools (``extra:``, as in 0.4.1), kept as written.
    extra: dict[str, Any] = attrs.field(factory=dict)
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


def json_type_name(value: Any) -> str:
    """What a YAML or JSON value is, in words, for messages (``"a list"``)."""
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
    raise _file_error(where, f"`{key}` must be a string, got {json_type_name(value)}{hint}", key)


def _unknown_key_error(key: str, known: Iterable[str], section: str, where: Path) -> ConfigError:
    known = list(known)
    match = closest(key, known)
    hint = (
        f"; did you mean `{match}`?" if match is not None else f"; known keys: {', '.join(known)}"
    )
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
                    where, f"`runtime` must be a mapping, got {json_type_name(value)}", "runtime"
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
    if "version" in data and not VERSION_CHARS.match(data["version"]):
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
            f"`maintainers` must be a list of strings, got {json_type_name(maintainers)}",
            "maintainers",
        )
    backend_config = data.get("backend_config")
    if backend_config is None:
        data.pop("backend_config", None)
    elif not isinstance(backend_config, Mapping):
        raise _file_error(
            where,
            f"`backend_config` must be a mapping, got {json_type_name(backend_config)}",
            "backend_config",
        )
    _normalise_env(data, where)
    extra = data.get("extra")
    if extra is None:
        data.pop("extra", None)
    elif not isinstance(extra, Mapping):
        raise _file_error(
            where, f"`extra` must be a mapping, got {json_type_name(extra)}", "extra"
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


def _normalise_env(data: dict[str, Any], where: Path) -> None:
    env = data.get("env")
    if env is None:
        data.pop("env", None)
        return
    if not isinstance(env, Mapping):
        raise _file_error(
            where, f"`env` must be a mapping of names to strings, got {json_type_name(env)}", "env"
        )
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise _file_error(
                where,
                f"`env`: {name!r} is not an environment variable name (letters, digits and "
                "_, not starting with a digit)",
                "env",
            )
        # The value itself is never quoted back: env: is where secrets tend to go.
        if not isinstance(value, str):
            kind = json_type_name(value).split(" (")[0]
            hint = ""
            if isinstance(value, (bool, int, float)):
                hint = f'; YAML read it as {kind}, so quote it: {name}: "..."'
            elif value is None:
                hint = f'; write {name}: "" for an empty value'
            raise _file_error(
                where, f"`env.{name}` must be a string, got {kind}{hint}", f"env.{name}"
            )


def apply_project_env(
    variables: Mapping[str, str],
    where: str | os.PathLike[str] = PROJECT_FILE,
    environ: os._Environ[str] | dict[str, str] | None = None,
) -> None:
    """Write a project's ``env:`` section into the environment (before its backend loads).

    A variable already set to a different value is overwritten with a warning on the
    ``packflow`` logger that names the variable and ``where`` (the ``packflow.yaml``),
    never either value: ``env:`` is where secrets tend to go.
    """
    env = os.environ if environ is None else environ
    for name, value in variables.items():
        current = env.get(name)
        if current is not None and current != value:
            logging.getLogger("packflow").warning(
                "%s: env: %s overwrites the value already set in the environment",
                where,
                name,
            )
        env[name] = value


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key = key
        self.first = first
        self.second = second


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML would keep
    the last one silently: a second ``runtime:`` block would drop the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if first is not None:
                raise _DuplicateKey(str(key), first, line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


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
        # A SafeLoader subclass: as safe as yaml.safe_load.
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{where}: the key `{exc.key}` is given twice in one mapping (lines {exc.first} "
            f"and {exc.second}); YAML would keep only the second, so say it once",
            field=exc.key,
            path=str(where),
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}", path=str(where)) from exc
    if raw is None:
        raise ConfigError(f"{where}: the file is empty; it needs at least `name`", path=str(where))
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of keys to values, got {json_type_name(raw)}",
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
    if config.env:
        parts += [
            "# === ENVIRONMENT ===",
            "# Set in the environment before the backend is loaded.",
            block({"env": dict(config.env)}),
        ]
    if config.extra:
        parts += ["# === EXTRA ===", block({"extra": dict(config.extra)})]
    if config.custom:
        parts += ["# === CUSTOM METADATA ===", block(config.custom)]
    return "\n".join(parts)
