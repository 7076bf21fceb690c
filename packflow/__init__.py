"""packflow: write, type-check and run ML inference pipelines on streaming records."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from packflow.backend import InferenceBackend
from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import (
    ConfigError,
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PackflowError,
    PipelineDefinitionError,
    PipelineTypeError,
    PreprocessorInitError,
    PreprocessorRuntimeError,
    StageError,
    UnknownPreprocessorError,
)
from packflow.graph import run_inline
from packflow.metrics import Metrics
from packflow.outputs import ensure_native_types, ensure_valid_output
from packflow.pipeline import Pipeline
from packflow.records import Records
from packflow.runtime import BuiltPipeline

if TYPE_CHECKING:
    from packflow.compose import ComposedPipeline
    from packflow.loaders import load
    from packflow.projects.packflow_project import PackflowProject

    __version__: str

__all__ = [
    "BackendConfig",
    "BuiltPipeline",
    "ComposedPipeline",
    "ConfigError",
    "InferenceBackend",
    "InferenceBackendInitializationError",
    "InferenceBackendLoadError",
    "InferenceBackendRuntimeError",
    "InferenceBackendValidationError",
    "InputFormat",
    "Metrics",
    "PackflowError",
    "PackflowProject",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineTypeError",
    "PreprocessorInitError",
    "PreprocessorRuntimeError",
    "Records",
    "StageError",
    "UnknownPreprocessorError",
    "__version__",
    "ensure_native_types",
    "ensure_valid_output",
    "load",
    "run_inline",
]

# Imported on first use (PEP 562): the loaders, the project machinery (YAML) and
# importlib.metadata cost more than the rest of `import packflow` apart from numpy, and
# compositions are made by `a >> b`, which imports packflow.compose itself.
_LAZY = {
    "ComposedPipeline": "packflow.compose",
    "load": "packflow.loaders",
    "PackflowProject": "packflow.projects.packflow_project",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from packflow._version import package_version

        value: Any = package_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"packflow.{name}") is not None:
        # `import packflow; packflow.loaders.load(...)` worked while the top module
        # imported its submodules up front; it keeps working.
        value = importlib.import_module(f"packflow.{name}")
    else:
        raise AttributeError(f"module 'packflow' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The public names only: not the submodules that importing binds here, nor helpers.
    return sorted(__all__)
