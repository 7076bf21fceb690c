"""The exceptions packflow raises.

Every error names what went wrong and where: the stage, the function and its
``file:line``, the record index and field where that applies. The same facts are kept as
attributes (``.stage``, ``.function``, ``.location``, ``.index``, ``.problems``) so that
tools can use them without parsing messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "InferenceBackendInitializationError",
    "InferenceBackendLoadError",
    "InferenceBackendRuntimeError",
    "InferenceBackendValidationError",
    "PackflowError",
    "PipelineDefinitionError",
    "PipelineTypeError",
    "PreprocessorInitError",
    "PreprocessorRuntimeError",
    "RuntimeTypeError",
    "StageError",
    "UnknownPreprocessorError",
]


class PackflowError(Exception):
    """Base class of every error packflow raises on purpose."""


class PipelineDefinitionError(PackflowError):
    """A pipeline is defined wrongly: a missing stage, an unknown name, a cycle.

    ``problems`` lists every problem found, so that one check reports them all.
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Any] = list(problems) if problems is not None else [message]


class PipelineTypeError(PipelineDefinitionError):
    """The annotations of a pipeline's stages do not fit together.

    ``problems`` holds one frozen value per problem (stage, function, location,
    parameter, expected, actual, explanation, hint); ``str()`` is a numbered report.
    """

    def __init__(self, problems: Sequence[Any], pipeline: str = "") -> None:
        self.pipeline = pipeline
        header = f"pipeline {pipeline!r}: " if pipeline else ""
        count = len(problems)
        lines = [f"{header}{count} type problem{'s' if count != 1 else ''} between stages:"]
        for number, problem in enumerate(problems, 1):
            text = str(problem).replace("\n", "\n   ")
            lines.append(f"{number}. {text}")
        super().__init__("\n".join(lines), problems)
        self.problems = list(problems)


class ConfigError(PackflowError):
    """A configuration value, key or override file is wrong.

    ``field`` names the offending key (or ``None``), ``path`` the file, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        path: str | None = None,
        problems: Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.path = path
        self.problems: list[str] = list(problems) if problems is not None else [message]


class InferenceBackendInitializationError(PackflowError):
    """An initializer (or a class backend's ``initialize``) failed."""


class InferenceBackendRuntimeError(PackflowError):
    """A call broke the run-time contract (bad input type, output length drift)."""


class StageError(InferenceBackendRuntimeError):
    """A stage raised; the original exception is chained as ``__cause__``."""

    def __init__(self, message: str, *, stage: str, function: str, location: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.function = function
        self.location = location


class RuntimeTypeError(InferenceBackendRuntimeError):
    """With ``runtime_checks=True``: a value between stages does not fit its annotation."""

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        function: str,
        location: str,
        expected: str,
        actual: str,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.function = function
        self.location = location
        self.expected = expected
        self.actual = actual


class InferenceBackendValidationError(PackflowError):
    """``validate()`` found an output that is not a JSON-ready record.

    ``index`` is the record index and ``path`` the key path of the first offending value.
    """

    def __init__(self, message: str, *, index: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.path = path


class InferenceBackendLoadError(PackflowError):
    """A pipeline or backend could not be loaded from a module, file or project."""


class PreprocessorInitError(PackflowError):
    """The config asks for a preprocessor that cannot be built (e.g. numpy without features)."""


class PreprocessorRuntimeError(PackflowError):
    """A record could not be preprocessed; ``index`` and ``field`` say which and where."""

    def __init__(
        self, message: str, *, index: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


class UnknownPreprocessorError(PackflowError):
    """The configured ``input_format`` names no known preprocessor."""
