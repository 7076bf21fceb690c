"""Optional model libraries: found without importing them, imported only when needed.

``import packflow.prebuilt`` and defining a prebuilt pipeline never import onnxruntime
or scikit-learn; defining one checks that the library is installed (without importing
it), and building it imports the library.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from packflow.exceptions import MissingExtraError

__all__ = ["import_extra", "require_extra"]


def _missing(module: str, extra: str, who: str) -> MissingExtraError:
    return MissingExtraError(
        f"{who} needs {module}, which is not installed; install it with "
        f"pip install 'packflow[{extra}]'",
        package=module,
        extra=extra,
    )


def require_extra(module: str, extra: str, who: str) -> None:
    """Refuse to go on when ``module`` is not installed, without importing it.

    Raises
    ------
    MissingExtraError
        Naming ``who`` needs it and the ``pip install 'packflow[<extra>]'`` command.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module, extra, who)


def import_extra(module: str, extra: str, who: str) -> ModuleType:
    """Import ``module``; as :func:`require_extra` when it is not installed.

    Raises
    ------
    MissingExtraError
        When the import fails because the module is missing.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        name = exc.name or module
        if name != module and not module.startswith(name + "."):
            raise  # the library is there, but something it needs is not: show that
        raise _missing(module, extra, who) from exc
