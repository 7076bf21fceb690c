"""Moved to :mod:`packflow.shipping`, the one home of the pickling policy."""

from packflow.shipping import caller_modules, find_binding, import_definition

__all__ = ["caller_modules", "find_binding", "import_definition"]
