"""Backend configuration: the ``BackendConfig`` model and its resolution.

A config is resolved from three layers, lowest to highest: the class defaults, the
keyword arguments given in code, and the ``"configs"`` object of the JSON file named by
the ``BACKEND_CONFIG_FILE_PATH`` environment variable (deep-merged: objects merge key by
key, lists and scalars replace). The merged values are structured with the package's
cattrs converter, with strict scalar hooks so that ``"false"`` never becomes ``True``.
Every problem is collected and raised at once as one ``ConfigError``.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from packflow._lazy import LazyModule
from packflow._text import closest
from packflow.converter import converter, on_first_use
from packflow.exceptions import ConfigError

if TYPE_CHECKING:
    import cattrs
    import cattrs.errors as cattrs_errors
else:  # cattrs is imported by the first structuring or error, not by `import packflow`
    cattrs = LazyModule("cattrs", globals(), "cattrs")
    cattrs_errors = LazyModule("cattrs.errors", globals(), "cattrs_errors")

__all__ = [
    "CONFIG_FILE_ENV_VAR",
    "BackendConfig",
    "ConfigLayer",
    "InputFormat",
    "OverrideFile",
    "applied_layers",
    "command_line_layers",
    "resolve_config",
]

#: The environment variable naming the JSON override file.
CONFIG_FILE_ENV_VAR = "BACKEND_CONFIG_FILE_PATH"


class InputFormat(str, enum.Enum):
    """How records are preprocessed before the first stage."""

    PASSTHROUGH = "passthrough"
    RECORDS = "records"
    NUMPY = "numpy"

    def __str__(self) -> str:
        return self.value


def _suggestion(word: str, choices: Sequence[str]) -> str:
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close is not None else ""


def parse_input_format(value: Any) -> InputFormat:
    """The ``InputFormat`` that ``value`` names (the one parser of it in the package).

    Raises
    ------
    ValueError
        Listing the formats, with a suggestion for a near miss.
    """
    if isinstance(value, InputFormat):
        return value
    choices = [f.value for f in InputFormat]
    if isinstance(value, str) and value in choices:
        return InputFormat(value)
    listed = ", ".join(repr(c) for c in choices)
    hint = _suggestion(value, choices) if isinstance(value, str) else ""
    raise ValueError(f"{value!r} is not an input format (choose one of {listed}){hint}")


@attrs.frozen(kw_only=True)
class BackendConfig:
    """The settings every pipeline has; subclass it (with attrs) to add your own.

    Attributes
    ----------
    verbose
        Log per-call metrics at INFO level.
    input_format
        The preprocessor: ``"passthrough"``, ``"records"`` (default) or ``"numpy"``.
    rename_fields
        ``{"old": "new"}``: the value moves to the new key, the old key is gone.
    feature_names
        Keep only these fields, in this order (the columns, for ``numpy``); ``records``
        also keeps every renamed field, after them.
    flatten_nested_inputs
        Flatten nested dicts into delimiter-joined keys (``{"a": {"b": 1}}`` ->
        ``{"a.b": 1}``).
    flatten_lists
        When flattening, also flatten lists (``{"a": [5]}`` -> ``{"a.0": 5}``).
    nested_field_delimiter
        The delimiter of nested paths and flattened keys.
    ignore_delimiter_collisions
        Do not report keys that contain the delimiter when nested paths are requested;
        names then find such keys too (the nested path first).
    numpy_dtype
        The dtype of the ``numpy`` preprocessor's array (e.g. ``"float64"``); values are
        cast to it. ``None`` infers the dtype and refuses mixed types.
    output_keys
        Keys every output record should have (as in packflow 0.4.1): a call whose
        outputs lack one logs a warning on the ``packflow`` logger, once per key per
        call; ``packflow validate`` reports it on the project's samples. Nothing is
        refused or changed.
    """

    verbose: bool = False
    input_format: InputFormat = attrs.field(
        default=InputFormat.RECORDS, converter=parse_input_format
    )
    rename_fields: dict[str, str] = attrs.field(factory=dict)
    feature_names: list[str] = attrs.field(factory=list)
    flatten_nested_inputs: bool = False
    flatten_lists: bool = False
    nested_field_delimiter: str = "."
    ignore_delimiter_collisions: bool = False
    numpy_dtype: str | None = None
    output_keys: list[str] = attrs.field(factory=list)


on_first_use(
    lambda made: made.register_structure_hook(
        InputFormat, lambda value, _: parse_input_format(value)
    )
)

C = TypeVar("C", bound=BackendConfig)


def check_config_model(model: Any, what: str) -> None:
    """Refuse a config model that is not an attrs subclass of :class:`BackendConfig`.

    ``what`` names where it was given (``"pipeline 'p': config_model"``).

    Raises
    ------
    ConfigError
        Naming ``what``, with a hint for a subclass that was not decorated with attrs.
    """
    # attrs.has() is also true for an undecorated subclass of an attrs class, whose own
    # field declarations attrs would silently ignore: ask for the class's own attrs.
    if (
        isinstance(model, type)
        and issubclass(model, BackendConfig)
        and "__attrs_attrs__" in model.__dict__
    ):
        return
    hint = ""
    if isinstance(model, type) and issubclass(model, BackendConfig):
        hint = (
            "; decorate it with @attrs.frozen(kw_only=True), as BackendConfig is "
            "(packflow config models are attrs classes, not pydantic models)"
        )
    raise ConfigError(
        f"{what} must be an attrs subclass of packflow.BackendConfig, got {model!r}{hint}",
        field=what.rsplit(" ", 1)[-1].rsplit(".", 1)[-1],
    )


@attrs.frozen
class OverrideFile:
    """The config layers above the keyword arguments, read once: the override file named
    by ``BACKEND_CONFIG_FILE_PATH``, then the command line's (:func:`applied_layers`).

    A composition reads them once per build and hands them to each part, so that every
    part sees the same values and the file is parsed once.
    """

    #: The file's path, ``None`` when no override file is set.
    path: str | None
    #: Its ``"configs"`` object (empty without a file).
    configs: Mapping[str, Any] = attrs.field(factory=dict)
    #: The layers given on the command line (``--config``, ``--set``), above the file.
    layers: tuple[ConfigLayer, ...] = ()

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> OverrideFile:
        """The override file the environment names (``os.environ`` by default).

        Raises
        ------
        ConfigError
            For a file that is missing, unreadable, not valid JSON or without a
            ``"configs"`` object.
        """
        env = os.environ if environ is None else environ
        path = env.get(CONFIG_FILE_ENV_VAR) or None
        configs = _read_override_file(path) if path is not None else {}
        return cls(path, configs, _layers.get())

    @property
    def origin(self) -> str:
        """Where the values come from, for messages: the file and the command line."""
        sources = [self.path] if self.path is not None else []
        return ", ".join([*sources, *(layer.source for layer in self.layers)])

    def part_names(self) -> list[str]:
        """The keys of ``"configs"`` of the file and every layer: a composition's parts."""
        keys = list(self.configs)
        for layer in self.layers:
            keys.extend(key for key in layer.configs if key not in keys)
        return keys


def resolve_config(
    model: type[C],
    overrides: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    section: str | None = None,
    file: OverrideFile | None = None,
) -> C:
    """Resolve a config of class ``model`` from defaults, ``overrides`` and the file.

    Layers, lowest to highest: the class defaults, ``overrides`` (each key replaces a
    whole field), then the ``"configs"`` object of the JSON file named by
    ``environ["BACKEND_CONFIG_FILE_PATH"]``, deep-merged over the result (objects merge
    key by key, including into dict and attrs defaults; lists and scalars replace).

    Parameters
    ----------
    model
        ``BackendConfig`` or an attrs subclass of it.
    overrides
        Field values given in code (e.g. keyword arguments of ``Pipeline(...)``).
    environ
        Where to look up ``BACKEND_CONFIG_FILE_PATH``; ``os.environ`` by default. An
        unset or empty variable means no override file.
    section
        For a part of a composition: the override file's ``"configs"`` holds one object
        per part, and ``configs[section]`` is the one for this config (none is fine).
    file
        The override file, already read (see :class:`OverrideFile`); read from
        ``environ`` when not given.

    Returns
    -------
    C
        The validated, frozen config.

    Raises
    ------
    ConfigError
        Listing every problem at once in ``.problems``: unknown keys (with a "did you
        mean" suggestion), values of the wrong type, missing required fields of a
        custom config, and an override file that is missing, unreadable, not valid JSON
        or without a ``"configs"`` object. ``.field`` names the first offending field
        and ``.path`` the override file when it is involved.

    Examples
    --------
    >>> resolve_config(BackendConfig, {"feature_names": ["a"]}, environ={}).feature_names
    ['a']
    """
    if not (isinstance(model, type) and attrs.has(model)):
        raise ConfigError(f"config model {model!r} is not an attrs class")
    if file is None:
        file = OverrideFile.read(environ)
    path = file.path
    values: dict[str, Any] = {key: _plain(value) for key, value in overrides.items()}
    # Each key given by a file or the command line -> where its value was last given.
    origins: dict[str, str] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((path, dict(file.configs)))
    layers.extend((layer.source, dict(layer.configs)) for layer in file.layers)
    for origin, configs in layers:
        if section is not None:
            configs = _section(configs, section, origin)
        for key, value in configs.items():
            base = values[key] if key in values else _default_of(model, key)
            values[key] = _deep_merge(base, value)
            origins[key] = origin

    def source(name: str) -> str:
        return f" (from {origins[name]})" if name in origins else ""

    fields = {a.name: a for a in attrs.fields(model) if a.init}
    problems: list[tuple[str, str]] = []
    for key in values:
        if key not in fields:
            problems.append(
                (
                    str(key),
                    f"{key}: unknown config key for {model.__name__}{source(key)}"
                    f"{_suggestion(str(key), list(fields))}",
                )
            )
    known = {key: value for key, value in values.items() if key in fields}
    try:
        config = cast(C, converter.structure(known, model))
    except cattrs.BaseValidationError as exc:
        for where, message in _walk(exc, ()):
            name = str(where[0]) if where else ""
            location = _format_location(where)
            problems.append((name, f"{location}: {message}{source(name)}"))
    except (ValueError, TypeError) as exc:
        # Raised by the class itself after structuring: an attrs validator or converter.
        name = _attribute_name(exc, model)
        label = f"{name}: " if name else ""
        problems.append((name, f"{label}{exc}{source(name)}"))
    else:
        if not problems:
            return config
    from_path = path is not None and path in origins.values()
    raise _config_error(model, problems, path if from_path else None)


def _section(configs: dict[str, Any], section: str, origin: str) -> dict[str, Any]:
    value = configs.get(section, {})
    if not isinstance(value, dict):
        where = (
            f"config override file {origin!r} (named by {CONFIG_FILE_ENV_VAR})"
            if not origin.startswith("-")
            else origin
        )
        raise ConfigError(
            f'{where}: "configs"."{section}" must be a JSON object (the config of part '
            f"{section!r}), found {_json_type(value)}",
            path=None if origin.startswith("-") else origin,
            field=section,
        )
    return value


# --- config given on the command line (--config FILE, --set key=value) ---------------


@attrs.frozen
class ConfigLayer:
    """Config values given on the command line: a layer above the override file.

    ``source`` says where the values come from, for messages (``"--config cfg.json"``,
    ``"--set"``); ``configs`` has the shape of the override file's ``"configs"`` object
    (one object per part name for a composition). A layer is a plain, picklable value, so
    that a command that starts worker processes can hand its layers on.
    """

    source: str
    configs: dict[str, Any]


_layers: contextvars.ContextVar[tuple[ConfigLayer, ...]] = contextvars.ContextVar(
    "packflow_config_layers", default=()
)


def command_line_layers(
    config_file: str | None = None, settings: Sequence[str] = ()
) -> tuple[ConfigLayer, ...]:
    """The layers that ``--config FILE`` and ``--set key=value`` (repeatable) give.

    The file has the override file's format (``{"configs": {...}}``) and is checked the
    same way. A setting's value is read as JSON when it is JSON (``true``, ``3``,
    ``["a", "b"]``, ``{"x": "y"}``, ``"007"``) and as a string otherwise (``numpy``); a
    dotted key sets a nested value (``rename_fields.old=new``; ``part.key=value`` for a
    part of a composition). Later settings win over earlier ones. The values themselves
    are validated when a config is resolved, exactly as the override file's are.

    Raises
    ------
    ConfigError
        For a file that is missing, unreadable or not a valid override file, and for a
        setting without ``=`` or with an empty key.
    """
    layers: list[ConfigLayer] = []
    if config_file is not None:
        origin = f"config file {config_file!r} (given by --config)"
        layers.append(
            ConfigLayer(f"--config {config_file}", _read_override_file(config_file, origin))
        )
    if settings:
        merged: Any = {}
        for setting in settings:
            merged = _deep_merge(merged, parse_setting(setting))
        layers.append(ConfigLayer("--set", merged))
    return tuple(layers)


def parse_setting(setting: str) -> dict[str, Any]:
    """``"a.b=1"`` -> ``{"a": {"b": 1}}``: one ``--set`` (the value read as JSON if it is).

    Raises
    ------
    ConfigError
        When there is no ``=`` or the key (or a part of a dotted key) is empty.
    """
    key, sep, text = setting.partition("=")
    key = key.strip()
    if not sep or not key or not all(part.strip() for part in key.split(".")):
        raise ConfigError(
            f"--set {setting!r}: expected key=value, e.g. --set verbose=true or "
            '--set feature_names=\'["a", "b"]\'',
            field=key or None,
        )
    try:
        value: Any = json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, _DuplicateKeyError):
        value = text
    for part in reversed(key.split(".")):
        value = {part.strip(): value}
    return cast(dict[str, Any], value)


@contextlib.contextmanager
def applied_layers(layers: Sequence[ConfigLayer]) -> Iterator[None]:
    """Within the ``with`` block, every config resolved in this context gets ``layers``
    over the override file (lowest to highest: defaults, keyword arguments, the file
    named by ``BACKEND_CONFIG_FILE_PATH``, then each layer in order)."""
    token = _layers.set((*_layers.get(), *layers))
    try:
        yield
    finally:
        _layers.reset(token)


def _config_error(
    model: type[Any], problems: list[tuple[str, str]], path: str | None
) -> ConfigError:
    count = len(problems)
    header = f"invalid config for {model.__name__} ({count} problem{'s' if count != 1 else ''})"
    lines = [header + ":"] + [f"  - {text}" for _, text in problems]
    first_field = next((name for name, _ in problems if name), None)
    return ConfigError(
        "\n".join(lines),
        field=first_field,
        path=path,
        problems=[text for _, text in problems],
    )


def _plain(value: Any) -> Any:
    """Unstructure attrs instances given in code so that they merge and structure."""
    if attrs.has(type(value)):
        return converter.unstructure(value)
    return value


def _default_of(model: type[Any], key: str) -> Any:
    """The unstructured class default of ``key``, or ``None`` when it has none."""
    field = getattr(attrs.fields(model), key, None) if key.isidentifier() else None
    if field is None or field.default is attrs.NOTHING:
        return None
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return None
        default = default.factory()
    return converter.unstructure(default)


def _deep_merge(base: Any, top: Any) -> Any:
    if not (isinstance(base, Mapping) and isinstance(top, Mapping)):
        return top
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _deep_merge(merged[key], value) if key in merged else value
    return merged


def _read_override_file(path: str, origin: str | None = None) -> dict[str, Any]:
    if origin is None:
        origin = f"config override file {path!r} (named by {CONFIG_FILE_ENV_VAR})"
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte order mark.
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{origin} does not exist", path=path) from None
    except IsADirectoryError:
        raise ConfigError(f"{origin} is a directory, not a file", path=path) from None
    except OSError as exc:
        raise ConfigError(f"{origin} cannot be read: {exc.strerror}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{origin} is not UTF-8 text: {exc.reason}", path=path) from exc
    if not text.strip():
        raise ConfigError(
            f'{origin} is empty; it must hold a JSON object with a "configs" object',
            path=path,
        )
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        raise ConfigError(
            f"{origin} gives the key {exc.key!r} twice in one object; JSON parsers keep "
            f"only one of them, so say it once",
            path=path,
            field=exc.key,
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            path=path,
        ) from exc
    if not isinstance(document, dict):
        raise ConfigError(
            f'{origin} must hold a JSON object with a "configs" object, '
            f"found {_json_type(document)}",
            path=path,
        )
    if "configs" not in document:
        found = ", ".join(repr(k) for k in document) or "none"
        raise ConfigError(f'{origin} has no "configs" object (top-level keys: {found})', path=path)
    others = [key for key in document if key != "configs"]
    if others:
        # Deployment tools may keep their own keys beside "configs", so this is not an
        # error; but a setting put there by mistake must not vanish without a word.
        logging.getLogger("packflow").warning(
            '%s: top-level keys %s are ignored; only the "configs" object is read',
            origin,
            ", ".join(repr(key) for key in others),
        )
    configs = document["configs"]
    if not isinstance(configs, dict):
        raise ConfigError(
            f'{origin}: "configs" must be a JSON object, found {_json_type(configs)}',
            path=path,
        )
    return configs


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice (``json`` keeps the last)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(key)
        document[key] = value
    return document


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


# --- strict structuring -------------------------------------------------------------


# --- reading cattrs' exception groups -----------------------------------------------

_Step = str | int


def _walk(exc: BaseException, where: tuple[_Step, ...]) -> list[tuple[tuple[_Step, ...], str]]:
    """Flatten a cattrs exception tree into ``(location, message)`` pairs."""
    found: list[tuple[tuple[_Step, ...], str]] = []
    if isinstance(exc, cattrs_errors.ForbiddenExtraKeysError):
        choices = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            found.append(
                (
                    (*where, key),
                    f"unknown key for {exc.cl.__name__}{_suggestion(key, choices)}",
                )
            )
        return found
    if isinstance(exc, cattrs.BaseValidationError):
        for child in exc.exceptions:
            step: _Step | None = None
            for note in getattr(child, "__notes__", ()):
                if isinstance(note, cattrs_errors.AttributeValidationNote):
                    step = note.name
                elif isinstance(note, cattrs_errors.IterableValidationNote):
                    step = note.index
            cl = getattr(exc, "cl", None)
            if (
                step is None
                and not isinstance(child, cattrs.BaseValidationError)
                and isinstance(cl, type)
                and attrs.has(cl)
            ):
                # An attrs validator failed in __init__, after cattrs structured the fields.
                step = _attribute_name(child, cl) or None
            found.extend(_walk(child, where if step is None else (*where, step)))
        return found
    if isinstance(exc, KeyError) and where:
        return [(where, "missing required field")]
    return [(where, str(exc))]


def _format_location(where: tuple[_Step, ...]) -> str:
    if not where:
        return "config"
    text = str(where[0])
    for step in where[1:]:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def _attribute_name(exc: BaseException, model: type[Any]) -> str:
    """The field an attrs validator error is about, or ``""`` when it cannot be told.

    ``instance_of`` and friends pass the ``Attribute`` as ``args[1]``; the comparison
    validators only quote the name at the start of their message.
    """
    if len(exc.args) > 1 and isinstance(exc.args[1], attrs.Attribute):
        return str(exc.args[1].name)
    quoted = re.match(r"'([^']+)'", str(exc))
    names = {a.name for a in attrs.fields(model)}
    return quoted.group(1) if quoted and quoted.group(1) in names else ""
