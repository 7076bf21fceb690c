"""packflow: write, type-check and run ML inference pipelines on streaming records."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from packflow.backend import InferenceBackend
from packflow.compose import ComposedPipeline
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
from packflow.loaders import load
from packflow.metrics import Metrics
from packflow.outputs import ensure_native_types, ensure_valid_output
from packflow.pipeline import Pipeline
from packflow.records import Records
from packflow.runtime import BuiltPipeline

try:
    __version__ = version("packflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

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
]
