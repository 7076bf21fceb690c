"""The run-time side: built instances, their resources, and how batches run.

- :mod:`packflow.runtime.built`: :class:`BuiltPipeline`, the instance ``build()`` returns.
- :mod:`packflow.runtime.resources`: running initializers (with test doubles).
"""

from __future__ import annotations

from packflow.runtime.built import BuiltPipeline
from packflow.runtime.resources import run_initializers

__all__ = ["BuiltPipeline", "run_initializers"]
