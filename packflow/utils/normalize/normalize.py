"""The original Packflow's import path ``packflow.utils.normalize.normalize``."""

from __future__ import annotations

from packflow.outputs import ensure_native_types, ensure_valid_output

__all__ = ["ensure_native_types", "ensure_valid_output"]
