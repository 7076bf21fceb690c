"""Where a pipeline is bound, so that it can be pickled by reference.

A pipeline is pickled like a function: as "the attribute ``pipe`` of module
``inference``", so that a worker process imports the same definition and builds its own
instance. Guessing that module from the pipeline's functions is not enough: the
functions of ``pipe = a >> b``, of a ``replace()`` copy or of a prebuilt factory's
result live elsewhere than the line that binds the pipeline. So every pipeline remembers
the modules that made it (the first callers outside packflow, read once at definition:
for a project's ``inference.py`` loaded by ``LocalLoader``, that module), and pickling
looks for it among the globals of those modules and of the modules of its functions.
When it is bound nowhere (made inside a function, say), it is pickled by value instead:
its definition, whose functions pickle by reference in turn (a lambda or a local
function then needs a pickler that pickles code, such as cloudpickle).
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Iterable
from typing import Any

from packflow.parts import is_definition

__all__ = ["caller_modules", "find_binding", "import_definition"]


def import_definition(module_name: str, attribute: str) -> Any:
    """The pipeline bound to ``attribute`` of ``module_name``: how a reference unpickles.

    Raises
    ------
    pickle.UnpicklingError
        When the attribute is not a pipeline (the module changed since it was pickled).
    """
    module = importlib.import_module(module_name)
    definition = getattr(module, attribute)
    if not is_definition(definition):
        raise pickle.UnpicklingError(
            f"{module_name}.{attribute} is {type(definition).__name__}, not a pipeline"
        )
    return definition


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
