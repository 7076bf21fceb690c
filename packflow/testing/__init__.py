"""Helpers for testing pipelines: input strategies and a pytest plugin.

- :func:`records` is a hypothesis strategy of single input records that a pipeline
  declares valid, for property tests such as "every valid input gives one valid output";
  :func:`batches` draws lists of them.
- :mod:`packflow.testing.plugin` is a pytest plugin, active once packflow is installed
  (entry point ``pytest11``), whose fixtures isolate ``BACKEND_CONFIG_FILE_PATH`` and
  ``PACKFLOW_LOG_LEVEL`` per test (``packflow_env``) and build a pipeline with fakes
  (``packflow_build``), and ``packflow_client`` serves a pipeline to an in-process
  HTTP client (:func:`serve_client`).

hypothesis is a test-time dependency: it is imported when a strategy is made, and a
clear error says how to install it when it is missing. Importing this package does not
import it.
"""

from __future__ import annotations

from packflow.testing.client import serve_client
from packflow.testing.strategies import (
    NothingDeclaredError,
    UndeclaredFieldError,
    batches,
    records,
)

__all__ = ["NothingDeclaredError", "UndeclaredFieldError", "batches", "records", "serve_client"]
