"""Shipping a pipeline to another process: the whole pickling policy, in one place.

A pipeline is pickled like a function: as "the attribute ``pipe`` of module
``inference``" (*by reference*), so that a worker process imports the same definition
and builds its own instance. Guessing that module from the pipeline's functions is not
enough: the functions of ``pipe = a >> b``, of a ``replace()`` copy or of a prebuilt
factory's result live elsewhere than the line that binds the pipeline. So every pipeline
remembers the modules that made it (:func:`caller_modules`, read once at definition), and
pickling looks for it among their globals (:func:`find_binding`). When it is bound nowhere
(made inside a function, say), it is pickled *by value*: its definition, whose functions
pickle by reference in turn.

Each front end (``Pipeline``, a composition, a class backend instance) supplies its
by-value form through one hook, ``__packflow_by_value__() -> ByValue``: how to rebuild it,
and what it holds, labelled (``"stage execute"``, ``"config threshold"``), so that what
cannot be pickled can be named. Nothing here knows the front ends' insides.

For a worker on another interpreter (Ray), :func:`shipper` makes a cloudpickle pickler
that also sends by value what a worker cannot import (:func:`importable`): ``__main__``,
a module made at run time, a project file that ``LocalLoader`` loaded from a folder it
put on ``sys.path``; with ``from __future__ import annotations``, the globals that a
function's string annotations name travel with it. :func:`ship` pickles a pipeline and
its config and, when that fails, raises :class:`~packflow.exceptions.
UnpicklablePipelineError` naming each part that could not be pickled.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import os
import pickle
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from packflow.exceptions import UnpicklablePipelineError
from packflow.parts import is_definition

__all__ = [
    "ByValue",
    "Shippable",
    "caller_modules",
    "find_binding",
    "import_definition",
    "importable",
    "reduce",
    "ship",
    "shipper",
    "unpicklable_parts",
]


# --------------------------------------------------------------------------- the hook


@attrs.frozen
class ByValue:
    """How a front end is pickled by value: ``rebuild(*args)`` makes it again.

    ``members`` names what it holds (functions, config values, classes, parts), so that
    what cannot be pickled can be reported by name; a member that is itself
    :class:`Shippable` is searched in turn, its labels prefixed with its key and a dot.
    """

    rebuild: Callable[..., Any]
    args: tuple[Any, ...]
    members: Mapping[str, Any] = attrs.field(factory=dict)

    def reduced(self) -> tuple[Any, ...]:
        """The ``__reduce__`` value: ``(rebuild, args)``."""
        return (self.rebuild, self.args)


@runtime_checkable
class Shippable(Protocol):
    """A front end that can be pickled by value."""

    def __packflow_by_value__(self) -> ByValue:
        """Its by-value form."""
        ...


def _shippable(obj: Any) -> bool:
    # Classes carry the hook as a plain function: only instances are shippable.
    return not isinstance(obj, type) and callable(getattr(obj, "__packflow_by_value__", None))


# --------------------------------------------------------------------------- by reference


def caller_modules(limit: int = 3) -> tuple[str, ...]:
    """The first ``limit`` distinct modules on the call stack outside packflow itself."""
    found: list[str] = []
    frame = sys._getframe(1)
    while frame is not None and len(found) < limit:
        name = frame.f_globals.get("__name__")
        if (
            isinstance(name, str)
            and name != "packflow"
            and not name.startswith("packflow.")
            and name not in found
        ):
            found.append(name)
        frame = frame.f_back  # type: ignore[assignment]
    return tuple(found)


def find_binding(obj: Any, *candidates: Iterable[str]) -> tuple[str, str] | None:
    """``(module, attribute)`` of a global of one of the ``candidates`` that is ``obj``.

    Candidates are module names, searched in order (the first iterable first); modules
    that are not imported are skipped. ``None`` when ``obj`` is bound in none of them.
    """
    seen: set[str] = set()
    for names in candidates:
        for module_name in names:
            if not module_name or module_name in seen:
                continue
            seen.add(module_name)
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for attribute, value in list(vars(module).items()):
                if value is obj and not attribute.startswith("__"):
                    return module_name, attribute
    return None


def import_definition(module_name: str, attribute: str) -> Any:
    """The pipeline bound to ``attribute`` of ``module_name``: unpickling by reference.

    Raises
    ------
    pickle.UnpicklingError
        When that attribute is not a pipeline.
    """
    module = importlib.import_module(module_name)
    definition = getattr(module, attribute)
    if not is_definition(definition):
        raise pickle.UnpicklingError(
            f"{module_name}.{attribute} is {type(definition).__name__}, not a pipeline"
        )
    return definition


def reduce(obj: Shippable, *candidates: Iterable[str]) -> tuple[Any, ...]:
    """``obj.__reduce__()``: by reference where one of ``candidates`` binds it, else by value.

    A front end's ``__reduce__`` is ``return shipping.reduce(self, <its modules>)``.
    """
    reference = find_binding(obj, *candidates)
    if reference is not None:
        return (import_definition, reference)
    return obj.__packflow_by_value__().reduced()


# --------------------------------------------------------------------------- importable


@functools.lru_cache(maxsize=4)
def _fresh_path(pythonpath: str | None) -> tuple[str, ...] | None:
    """``sys.path`` of a fresh interpreter of this environment: what a worker starts with.

    Entries the driver added at run time (``sys.path.insert``, a project folder that
    ``LocalLoader`` put there, pytest's rootdir) are not in it; ``None`` when it cannot
    be found out.
    """
    del pythonpath  # the cache key: a fresh interpreter reads it from the environment
    # Imported here: pipelines import this module, and most never leave the process.
    import json
    import subprocess

    try:
        done = subprocess.run(
            [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return tuple(str(entry) for entry in found)


_IMPORTABLE: dict[tuple[str, str | None], bool] = {}


def importable(module_name: str) -> bool:
    """Whether a worker could import ``module_name`` by name and get the same file.

    ``__main__``, a module made at run time (no import spec) and one found only through
    a ``sys.path`` entry the driver added are not: what they define must travel by
    value.
    """
    if module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return True
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return False
    key = (module_name.partition(".")[0], os.environ.get("PYTHONPATH"))
    known = _IMPORTABLE.get(key)
    if known is None:
        known = _IMPORTABLE[key] = _found_by_fresh_interpreter(key[0])
    return known


def _found_by_fresh_interpreter(top: str) -> bool:
    if top in sys.builtin_module_names:
        return True
    module = sys.modules.get(top)
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(origin, str) or not os.path.isabs(origin):
        return True  # frozen or namespace: nothing to compare
    path = _fresh_path(os.environ.get("PYTHONPATH"))
    if path is None:
        return True
    import importlib.machinery

    found = importlib.machinery.PathFinder.find_spec(top, list(path))
    if found is None or not isinstance(found.origin, str):
        return False
    return os.path.realpath(found.origin) == os.path.realpath(origin)


# --------------------------------------------------------------------------- the pickler


@functools.lru_cache(maxsize=2)
def shipper(cloudpickle: Any) -> type:
    """A pickler class over ``cloudpickle`` (a module) for workers of other interpreters.

    What a worker cannot import travels by value: a pipeline bound in such a module is
    pickled as its definition (its :class:`ByValue` form) rather than by reference, and
    the functions, classes and module objects of such a module by value, with the
    globals their string annotations name.
    """

    class Shipper(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if _shippable(obj):
                reduced = obj.__reduce__()
                if reduced[0] is import_definition and not importable(reduced[1][0]):
                    return obj.__packflow_by_value__().reduced()
                return reduced
            if isinstance(obj, (types.FunctionType, type, types.ModuleType)):
                name = obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__
                module = sys.modules.get(name) if isinstance(name, str) else None
                if module is not None and name != "__main__" and not importable(name):
                    cloudpickle.register_pickle_by_value(module)
            reduced = super().reducer_override(obj)
            if isinstance(obj, types.FunctionType) and isinstance(reduced, tuple):
                _add_annotation_globals(obj, reduced)
            return reduced

    return Shipper


def _add_annotation_globals(func: types.FunctionType, reduced: tuple[Any, ...]) -> None:
    """Ship the globals that ``func``'s string annotations name, when it goes by value.

    cloudpickle sends only the globals a function's code uses; with ``from __future__
    import annotations`` the annotations are strings naming other globals (``Records``,
    a config class), which the type check in the worker must resolve.
    """
    import ast

    try:
        slotstate = reduced[2][1]
        shipped = slotstate["__globals__"]
    except (IndexError, KeyError, TypeError):
        return
    for annotation in func.__annotations__.values():
        if not isinstance(annotation, str):
            continue
        try:
            tree = ast.parse(annotation, mode="eval")
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in func.__globals__:
                shipped.setdefault(node.id, func.__globals__[node.id])


def _dumps(obj: Any, cloudpickle: Any) -> bytes:
    buffer = io.BytesIO()
    shipper(cloudpickle)(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


# --------------------------------------------------------------------------- naming


def _describe(obj: Any) -> str:
    try:
        where = f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        where = "?"
    return f"`{getattr(obj, '__qualname__', obj)}` ({where})"


def _why(obj: Any, cloudpickle: Any) -> str | None:
    try:
        _dumps(obj, cloudpickle)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _function_problems(what: str, func: Any, cloudpickle: Any) -> list[str]:
    reason = _why(func, cloudpickle)
    if reason is None:
        return []
    try:
        seen = inspect.getclosurevars(func)
    except (TypeError, ValueError):
        seen = None
    found: list[str] = []
    if seen is not None:
        for kind, names in (("closure variable", seen.nonlocals), ("global", seen.globals)):
            for name, value in names.items():
                why = _why(value, cloudpickle)
                if why is not None:
                    found.append(
                        f"{what} {_describe(func)}: its {kind} `{name}` "
                        f"({type(value).__name__}) cannot be pickled: {why}"
                    )
    return found or [f"{what} {_describe(func)} cannot be pickled: {reason}"]


def unpicklable_parts(obj: Any, cloudpickle: Any, prefix: str = "") -> list[str]:
    """What in ``obj`` (a front end, or a class) cannot be pickled, each named.

    Searches a :class:`Shippable`'s members (recursively), a class's attributes, a
    function's closure variables and globals. Empty when nothing was found to blame.
    """
    found: list[str] = []
    if _shippable(obj):
        for label, member in obj.__packflow_by_value__().members.items():
            if _shippable(member) or isinstance(member, type):
                found += unpicklable_parts(member, cloudpickle, f"{prefix}{label}.")
            elif isinstance(member, types.FunctionType):
                found += _function_problems(f"{prefix}{label}", member, cloudpickle)
            else:
                why = _why(member, cloudpickle)
                if why is not None:
                    found.append(f"{prefix}{label} ({type(member).__name__}): {why}")
    elif isinstance(obj, type):
        for attribute, value in vars(obj).items():
            if attribute.startswith("__"):
                continue
            why = _why(value, cloudpickle)
            if why is not None:
                found.append(f"{prefix}{obj.__name__}.{attribute} ({type(value).__name__}): {why}")
    return found


def ship(pipeline: Any, config: Mapping[str, Any], cloudpickle: Any) -> bytes:
    """``(pipeline, config)`` pickled for workers of another interpreter.

    Raises
    ------
    UnpicklablePipelineError
        Naming each stage, initializer, closure variable, config value or config
        override that cannot be pickled.
    """
    try:
        return _dumps((pipeline, dict(config)), cloudpickle)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        found = unpicklable_parts(pipeline, cloudpickle)
        for key, value in config.items():
            why = _why(value, cloudpickle)
            if why is not None:
                found.append(f"config override {key!r} ({type(value).__name__}): {why}")
        name = getattr(pipeline, "name", getattr(pipeline, "__name__", repr(pipeline)))
        problems = found or [reason]
        raise UnpicklablePipelineError(
            f"pipeline {name!r} cannot be sent to other processes: it must be pickled, and "
            + "; ".join(problems),
            problems,
        ) from exc
