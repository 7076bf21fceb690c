"""A module imported on first attribute access, for the few libraries that cost more to
import than the code that uses them (numpy: about as much as all of packflow)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands for ``name`` in the namespace ``binding`` (a module's ``globals()``) under
    ``alias``, until the first attribute is read: then the real module is imported and
    put in its place, so that later reads cost what a plain global costs."""

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def _load(self) -> ModuleType:
        module = sys.modules.get(self._name) or importlib.import_module(self._name)
        self._namespace[self._alias] = module
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
