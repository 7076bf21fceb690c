"""Output normalisation as in the original Packflow (``packflow.utils.normalize``).

The same functions as ``packflow.ensure_native_types`` and
``packflow.ensure_valid_output``, under the import paths that code written for the
original uses.
"""

from __future__ import annotations

from packflow.utils.normalize.normalize import ensure_native_types, ensure_valid_output

__all__ = ["ensure_native_types", "ensure_valid_output"]
