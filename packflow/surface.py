"""The old home of the call surface: see :mod:`packflow.runtime.surface`."""

from packflow.runtime.surface import LazyDefault, Runtime

__all__ = ["LazyDefault", "Runtime"]
