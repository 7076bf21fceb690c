"""Loaders: find a pipeline or backend by ``"module:attribute"`` and make it ready.

- :class:`LocalLoader` imports a file relative to a folder (the working directory by
  default; ``models.inference`` is ``models/inference.py``);
- :class:`ModuleLoader` imports an installed module;
- :func:`load` picks one of them: a local file if there is one, else an installed module;
- :meth:`InferenceBackendLoader.from_project` reads a project's ``packflow.yaml``.

The attribute may be a :class:`~packflow.Pipeline`, an :class:`InferenceBackend`
subclass or instance, a built pipeline, or a zero-argument factory returning one of
these. Every failure to find or import it is an :class:`InferenceBackendLoadError` that
names the module or file and the cause.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

from packflow._text import closest
from packflow.backend import InferenceBackend, missing_execute
from packflow.compose import ComposedPipeline
from packflow.exceptions import ConfigError, InferenceBackendLoadError
from packflow.graph import CheckedComposition, CheckedPipeline
from packflow.parts import build_definition, check_definition, is_definition
from packflow.pipeline import Pipeline
from packflow.runtime import BuiltPipeline

__all__ = [
    "InferenceBackendLoader",
    "LoadedBackend",
    "LocalLoader",
    "ModuleLoader",
    "ProjectLoader",
    "load",
    "loader_for_spec",
]

#: What ``load()`` returns: a ready instance of either front end.
LoadedBackend: TypeAlias = "BuiltPipeline | InferenceBackend"
# What a spec may name once factories are called.
_Target: TypeAlias = (
    "Pipeline | ComposedPipeline | BuiltPipeline | InferenceBackend | type[InferenceBackend]"
)

_WANTED = (
    "a Pipeline (or a composition a >> b), an InferenceBackend subclass or instance, or "
    "a zero-argument factory returning one"
)


def _parse_spec(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str):
        raise InferenceBackendLoadError(
            f"a backend spec is a string 'module:attribute', got {type(spec).__name__} {spec!r}"
        )
    module, sep, attr = spec.strip().partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if not sep or not module or not attr or not all(p.isidentifier() for p in parts):
        raise InferenceBackendLoadError(
            f"invalid backend spec {spec!r}: expected 'module:attribute' such as "
            "'inference:pipe' (module path with dots, then a colon, then the name)"
        )
    return module, attr


def _describe_exception(exc: BaseException) -> str:
    """``file:line: Type: message`` for the innermost frame of the user's code."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}: " if exc.filename else ""
        return f"{where}SyntaxError: {exc.msg}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ") and frame.filename != __file__
    ]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"


class InferenceBackendLoader:
    """Finds the object a ``"module:attribute"`` spec names and makes it ready.

    Subclasses say how the module is imported (:class:`LocalLoader`,
    :class:`ModuleLoader`).
    """

    _not_installed_hint = " (a file in the working directory is loaded with LocalLoader)"
    #: Where the spec was written, for a name the module does not define (a project's
    #: ``packflow.yaml``); empty when the caller gave the spec.
    _spec_hint = ""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.module_name, self.attribute = _parse_spec(spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    @property
    def where(self) -> str:
        """Where the module comes from, for messages."""
        return f"module {self.module_name!r}"

    def import_module(self) -> ModuleType:
        """Import the module the spec names.

        Raises
        ------
        InferenceBackendLoadError
            When the module cannot be found or raises while it is imported.
        """
        return _import_installed(self.spec, self.module_name, self._not_installed_hint)

    def resolve(self) -> _Target:
        """The object the spec names, with factories called; nothing is built.

        Raises
        ------
        InferenceBackendLoadError
            When the module cannot be imported, has no such attribute, or the attribute
            is not something packflow can load.
        """
        module = self.import_module()
        target: Any = module
        for index, part in enumerate(self.attribute.split(".")):
            try:
                target = getattr(target, part)
            except AttributeError:
                owner = self.where if index == 0 else repr(self.attribute.rsplit(".", 1)[0])
                raise InferenceBackendLoadError(
                    f"cannot load {self.spec!r}: {owner} has no attribute {part!r}"
                    f"{_suggest(part, target)}{self._spec_hint}"
                ) from None
        return self._accept(target)

    def load_backend_module(self) -> _Target:
        """The original Packflow's name for :meth:`resolve`: the object the spec names.

        Nothing is built: a class comes back as the class, a pipeline unbuilt.
        """
        return self.resolve()

    def _accept(self, target: Any) -> _Target:
        if _is_loadable(target):
            return target  # type: ignore[no-any-return]
        if callable(target) and not isinstance(target, type):
            return self._call_factory(target)
        raise InferenceBackendLoadError(
            f"cannot load {self.spec!r}: it is {_kind(target)}; expected {_WANTED}"
        )

    def _call_factory(self, factory: Any) -> _Target:
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            required = [
                p.name
                for p in signature.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            if required:
                raise InferenceBackendLoadError(
                    f"cannot load {self.spec!r}: it is a function that needs arguments "
                    f"({', '.join(required)}); a factory must take none"
                )
        try:
            made = factory()
        except Exception as exc:
            raise InferenceBackendLoadError(
                f"cannot load {self.spec!r}: the factory raised {_describe_exception(exc)}"
            ) from exc
        if not _is_loadable(made):
            raise InferenceBackendLoadError(
                f"cannot load {self.spec!r}: the factory returned {_kind(made)}; "
                f"expected {_WANTED}"
            )
        return made  # type: ignore[no-any-return]

    def load(self, **config: Any) -> LoadedBackend:
        """Import, resolve and build: return a ready instance.

        ``config`` overrides the config of the pipeline or backend.

        Raises
        ------
        InferenceBackendLoadError
            When the object cannot be found (see :meth:`resolve`), or ``config`` is
            given for an instance that was already built from a pipeline.
        ConfigError, PipelineDefinitionError, PipelineTypeError
            When the config is invalid or the stages do not fit together.
        InferenceBackendInitializationError
            When an initializer (or ``initialize``) raises.
        """
        return _build(self.resolve(), config, self.spec)

    def check(self, **config: Any) -> CheckedPipeline | CheckedComposition:
        """Type-check what the spec names without building it or running its code.

        An instance that is already built was checked when it was built; its check is
        returned.

        Raises
        ------
        InferenceBackendLoadError, ConfigError, PipelineDefinitionError, PipelineTypeError
            As :meth:`load`.
        """
        target = self.resolve()
        try:
            return check_definition(target, **config)
        except TypeError as exc:
            raise InferenceBackendLoadError(f"cannot load {self.spec!r}: {exc}") from None

    @classmethod
    def for_project(cls, path: str | os.PathLike[str] = ".") -> ProjectLoader:
        """The loader a project's ``packflow.yaml`` describes (nothing is imported yet).

        Raises
        ------
        InferenceBackendLoadError
            When ``packflow.yaml`` is missing or broken; the ``ConfigError`` is chained.
        """
        from packflow.projects.manifest import find_project_file, read_project_config

        root = Path(path)
        try:
            project = read_project_config(root)
        except ConfigError as exc:
            # The ConfigError already names the folder or file and what is wrong with it.
            raise InferenceBackendLoadError(str(exc)) from exc
        spec = project.runtime.inference_backend
        loader: InferenceBackendLoader
        if project.runtime.loader == "module":
            loader = ModuleLoader(spec)
            loader._not_installed_hint = (
                f" ({root / 'packflow.yaml'} says `loader: module`; use `loader: local` "
                "for a file in the project folder)"
            )
        else:
            loader = LocalLoader(spec, base_dir=root)
        loader._spec_hint = (
            f"; the name comes from runtime.inference_backend in {root / 'packflow.yaml'}"
        )
        return ProjectLoader(
            loader, project.backend_config, source=find_project_file(root), env=project.env
        )

    @classmethod
    def from_project(cls, path: str | os.PathLike[str] = ".", **config: Any) -> LoadedBackend:
        """Load the backend a project's ``packflow.yaml`` names, ready for calls.

        The config is, lowest to highest: the defaults, ``backend_config:`` of
        ``packflow.yaml``, ``config`` given here, and the file named by
        ``BACKEND_CONFIG_FILE_PATH``.

        Raises
        ------
        InferenceBackendLoadError
            When ``packflow.yaml`` is missing or broken or the backend cannot be found.
        ConfigError, PipelineDefinitionError, PipelineTypeError,
        InferenceBackendInitializationError
            As :meth:`load`.
        """
        return cls.for_project(path).load(**config)


class ProjectLoader:
    """A project's loader together with the ``backend_config`` of its ``packflow.yaml``.

    ``source`` is that ``packflow.yaml``: a config error caused by a value of
    ``backend_config`` names it. ``env`` (its ``env:`` section) is written into the
    environment before the backend's module is imported.
    """

    def __init__(
        self,
        loader: InferenceBackendLoader,
        backend_config: dict[str, Any],
        *,
        source: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.loader = loader
        self.backend_config = dict(backend_config)
        self.source = source
        self.env = dict(env or {})

    def _apply_env(self) -> None:
        if self.env:
            from packflow.projects.manifest import PROJECT_FILE, apply_project_env

            apply_project_env(self.env, self.source or PROJECT_FILE)

    def __repr__(self) -> str:
        return f"ProjectLoader({self.loader!r})"

    @property
    def spec(self) -> str:
        return self.loader.spec

    def resolve(self) -> _Target:
        """As :meth:`InferenceBackendLoader.resolve`."""
        self._apply_env()
        return self.loader.resolve()

    def load(self, **config: Any) -> LoadedBackend:
        """As :meth:`InferenceBackendLoader.load`, over the project's ``backend_config``."""
        self._apply_env()
        with self._blaming_backend_config(config):
            return _build(self.loader.resolve(), {**self.backend_config, **config}, self.spec)

    def check(self, **config: Any) -> CheckedPipeline | CheckedComposition:
        """As :meth:`InferenceBackendLoader.check`, over the project's ``backend_config``."""
        self._apply_env()
        with self._blaming_backend_config(config):
            return self.loader.check(**{**self.backend_config, **config})

    @contextmanager
    def _blaming_backend_config(self, config: dict[str, Any]) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:
            from_yaml = set(self.backend_config) - set(config)
            named = {exc.field, *(p.split(":", 1)[0].split(".")[0] for p in exc.problems)}
            if self.source is None or exc.path is not None or not named & from_yaml:
                raise
            raise ConfigError(
                f"{self.source}: backend_config: {exc}",
                field=exc.field,
                path=str(self.source),
                problems=exc.problems,
            ) from exc


class ModuleLoader(InferenceBackendLoader):
    """Load from an installed module: ``ModuleLoader("my_package.models:scorer")``."""


class LocalLoader(InferenceBackendLoader):
    """Load from a Python file relative to a folder.

    ``LocalLoader("inference:pipe")`` imports ``./inference.py``;
    ``LocalLoader("models.text:pipe")`` imports ``./models/text.py`` (or
    ``./models/text/__init__.py``). The folder is the working directory at construction
    unless ``base_dir`` is given; it is put on ``sys.path`` so that the file can import
    its neighbours. The file is executed afresh by every :meth:`load`.
    """

    def __init__(self, path_spec: str, *, base_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path_spec)
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()

    @property
    def path(self) -> Path:
        """The file the spec names (it may not exist)."""
        parts = self.module_name.split(".")
        as_file = self.base_dir.joinpath(*parts[:-1], parts[-1] + ".py")
        as_package = self.base_dir.joinpath(*parts, "__init__.py")
        if not as_file.is_file() and as_package.is_file():
            return as_package
        return as_file

    @property
    def where(self) -> str:
        return str(self.path)

    def import_module(self) -> ModuleType:
        path = self.path
        if not path.is_file():
            raise InferenceBackendLoadError(
                f"cannot load {self.spec!r}: {path} does not exist"
                f"{_nearby_python_files(self.base_dir)}"
            )
        base = str(self.base_dir.resolve())
        if base not in sys.path:
            sys.path.insert(0, base)
        is_package = path.name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            self.module_name,
            path,
            submodule_search_locations=[str(path.parent)] if is_package else None,
        )
        if spec is None or spec.loader is None:  # pragma: no cover - only for odd suffixes
            raise InferenceBackendLoadError(f"cannot load {self.spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(self.module_name)
        # Registered before it runs, as `import` does, so that dataclasses, pickling by
        # reference and `typing.get_type_hints` can find the module by name.
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            if previous is None:
                sys.modules.pop(self.module_name, None)
            else:
                sys.modules[self.module_name] = previous
            raise InferenceBackendLoadError(
                f"cannot load {self.spec!r}: importing {path} raised {_describe_exception(exc)}"
            ) from exc
        return module


def _import_installed(spec: str, module_name: str, hint: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        missing = getattr(exc, "name", None) or ""
        if isinstance(exc, ModuleNotFoundError) and (
            module_name == missing or module_name.startswith(missing + ".")
        ):
            raise InferenceBackendLoadError(
                f"cannot load {spec!r}: no module named {missing!r} is installed{hint}"
            ) from exc
        raise InferenceBackendLoadError(
            f"cannot load {spec!r}: importing module {module_name!r} raised "
            f"{_describe_exception(exc)}"
        ) from exc


_is_loadable = is_definition


def _kind(target: Any) -> str:
    if isinstance(target, type):
        return f"the class {target.__qualname__}, which is not an InferenceBackend subclass"
    if isinstance(target, ModuleType):
        return f"the module {target.__name__}"
    return f"{type(target).__name__} {_short_repr(target)}"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(name: str, owner: Any) -> str:
    candidates = (
        [
            attr
            for attr, value in vars(owner).items()
            if not attr.startswith("_")
            and _is_loadable(value)
            and not (isinstance(value, type) and missing_execute(value))
        ]
        if hasattr(owner, "__dict__")
        else []
    )
    close = closest(name, candidates or dir(owner))
    if close is not None:
        return f" (did you mean {close!r}?)"
    if candidates:
        return f"; it defines {', '.join(sorted(candidates))}"
    return ""


def _nearby_python_files(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.glob("*.py"))
    except OSError:
        return ""
    if not names:
        return f" (no .py files in {folder})"
    return f" (python files in {folder}: {', '.join(names[:8])})"


def _build(target: _Target, config: dict[str, Any], spec: str) -> LoadedBackend:
    try:
        built: LoadedBackend = build_definition(target, **config)  # type: ignore[assignment]
    except TypeError as exc:
        if isinstance(target, type) and missing_execute(target):
            raise InferenceBackendLoadError(f"cannot load {spec!r}: {exc}") from None
        raise
    except InferenceBackendLoadError as exc:
        raise InferenceBackendLoadError(f"{spec!r}: {exc}") from None
    return built


def load(spec: str, **config: Any) -> LoadedBackend:
    """Load ``"module.path:attribute"`` and return a ready instance.

    A file for the module in the working directory (``module/path.py``) is loaded with
    :class:`LocalLoader`; otherwise the installed module is imported
    (:class:`ModuleLoader`).

    Parameters
    ----------
    spec
        ``"module.path:attribute"``; the attribute may be a Pipeline, an
        InferenceBackend subclass or instance, or a zero-argument factory returning one.
    **config
        Config overrides.

    Raises
    ------
    InferenceBackendLoadError
        When the module or the attribute cannot be found or imported, or is not
        something packflow can load.
    ConfigError, PipelineDefinitionError, PipelineTypeError,
    InferenceBackendInitializationError
        When building the pipeline or backend fails.

    Examples
    --------
    >>> scorer = load("inference:pipe", verbose=True)  # doctest: +SKIP
    """
    return loader_for_spec(spec).load(**config)


def loader_for_spec(spec: str) -> InferenceBackendLoader:
    """The loader :func:`load` uses: local if the file exists, else the installed module."""
    local = LocalLoader(spec)
    if local.path.is_file():
        return local
    loader = ModuleLoader(spec)
    relative = local.path.relative_to(local.base_dir).as_posix()
    loader._not_installed_hint = f", and there is no {relative} in {local.base_dir}"
    return loader
