"""The installed distribution's version, read once and only when asked for.

``importlib.metadata`` costs more to import than the rest of ``import packflow`` apart
from numpy, so it is imported here, on the first call, not when packflow is imported.
"""

from __future__ import annotations

import functools

__all__ = ["package_version"]


@functools.cache
def package_version() -> str:
    """The version of the installed ``packflow``; ``"0.0.0"`` in a never-installed tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("packflow")
    except PackageNotFoundError:
        return "0.0.0"
