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
    "MissingExtraError",
    "ModelFileError",
    "NothingDeclaredError",
    "PackflowError",
    "PipelineDefinitionError",
    "PipelineTypeError",
    "PreprocessorInitError",
    "PreprocessorRuntimeError",
    "ProjectError",
    "ProjectExistsError",
    "RecordFieldError",
    "RunningLoopError",
    "RuntimeTypeError",
    "SinkRefusedError",
    "StageError",
    "StreamError",
    "StreamUnavailableError",
    "UndeclaredFieldError",
    "UnknownPreprocessorError",
    "UnpicklablePipelineError",
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


class UnpicklablePipelineError(PipelineDefinitionError, TypeError):
    """A pipeline (or its config) cannot be pickled, so it cannot be sent to workers.

    ``problems`` names each part that could not be pickled, and why.
    """


class PipelineTypeError(PipelineDefinitionError):
    """The annotations of a pipeline's stages do not fit together.

    ``problems`` holds one frozen value per type problem (stage, function, location,
    parameter, expected, actual, explanation, hint, source, part), after the definition
    problems found by the same check, if any (as strings; they are also in
    ``definition_problems``); ``str()`` is a numbered report of them all.
    """

    def __init__(
        self,
        problems: Sequence[Any],
        pipeline: str = "",
        *,
        definition_problems: Sequence[str] = (),
    ) -> None:
        self.pipeline = pipeline
        self.definition_problems: list[str] = list(definition_problems)
        header = f"pipeline {pipeline!r}: " if pipeline else ""
        count = len(problems)
        kinds = f"{count} type problem{'s' if count != 1 else ''}"
        if self.definition_problems:
            defined = len(self.definition_problems)
            kinds = f"{defined} definition problem{'s' if defined != 1 else ''} and {kinds}"
        lines = [f"{header}{kinds} between stages:"]
        everything = [*self.definition_problems, *problems]
        for number, problem in enumerate(everything, 1):
            text = str(problem).replace("\n", "\n   ")
            lines.append(f"{number}. {text}")
        super().__init__("\n".join(lines), everything)
        self.problems = everything


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
    """A call broke the run-time contract (bad input type, output length drift).

    ``stage``, ``function`` and ``location`` name the step responsible when one is
    (``"a.execute"`` in a composition); ``index`` is the record it is about, or ``None``
    when the error is about the whole batch (an output list that does not line up with
    its input), which is why ``on_error="row"`` can isolate the first kind and raises
    the second.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        function: str | None = None,
        location: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.function = function
        self.location = location
        self.index = index


class StageError(InferenceBackendRuntimeError):
    """A stage raised; the original exception is chained as ``__cause__``.

    ``stage`` is the step's label (``"execute"``, or ``"a.execute"`` in a composition).
    """

    stage: str
    function: str
    location: str

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        function: str,
        location: str,
        index: int | None = None,
    ) -> None:
        super().__init__(message, stage=stage, function=function, location=location, index=index)


class RunningLoopError(InferenceBackendRuntimeError):
    """A plain call of a pipeline with ``async def`` steps, made inside a running loop.

    Running the steps to completion there would block the loop (and every other task on
    it) for the whole call; ``await pipeline.acall(...)`` runs them on the loop instead.
    ``stage``, ``function`` and ``location`` name the first async step.
    """


class RuntimeTypeError(InferenceBackendRuntimeError):
    """With ``runtime_checks=True``: a value between stages does not fit its annotation."""

    stage: str
    function: str
    location: str

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
        super().__init__(message, stage=stage, function=function, location=location)
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
    """A record could not be preprocessed; ``index`` and ``field`` say which and where.

    ``stage`` is the step that raised it (``"preprocess"``, ``"b.preprocess"`` in a
    composition, or the first stage when attrs records are structured for it); it is set
    by the runtime as the error passes through.
    """

    stage: str | None = None

    def __init__(
        self, message: str, *, index: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


class UnknownPreprocessorError(PackflowError):
    """The configured ``input_format`` names no known preprocessor."""


class MissingExtraError(PackflowError, ImportError):
    """An optional library is not installed; ``extra`` names the packflow extra to install.

    ``package`` is the module that could not be imported (``"onnxruntime"``), ``extra``
    the extra that installs it (``"onnx"``: ``pip install 'packflow[onnx]'``).
    """

    def __init__(self, message: str, *, package: str, extra: str) -> None:
        super().__init__(message)
        self.package = package
        self.extra = extra


class ModelFileError(InferenceBackendInitializationError):
    """A model file is missing, unreadable, or does not fit the pipeline's config.

    ``path`` is the model file and ``problems`` lists every mismatch found (feature
    count, element type, output names, method), so that one build reports them all.
    """

    def __init__(self, message: str, *, path: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.problems: list[str] = list(problems) if problems is not None else [message]


class RecordFieldError(InferenceBackendRuntimeError):
    """A record lacks a field a stage needs, or the field holds a value it cannot use.

    ``index`` is the record's index in the batch and ``field`` the field (a dotted path
    for nested fields).
    """

    def __init__(self, message: str, *, index: int, field: str) -> None:
        super().__init__(message, index=index)
        self.field = field


class ProjectError(PackflowError):
    """A project cannot be created, validated or exported.

    ``problems`` holds the :class:`Finding` values (or messages) that caused it.
    """

    def __init__(self, message: str, problems: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Any] = list(problems) if problems is not None else [message]


class ProjectExistsError(ProjectError, FileExistsError):
    """``create`` was asked for a folder that already exists (pass ``force`` to write
    into it). A ``FileExistsError`` too, as the original Packflow raised."""


class NothingDeclaredError(PackflowError, ValueError):
    """The pipeline does not declare enough about its inputs to generate them.

    ``pipeline`` names the pipeline, ``fields`` the fields whose type is unknown (empty
    when not even the fields are known).
    """

    def __init__(self, message: str, *, pipeline: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.fields = fields


class UndeclaredFieldError(PackflowError, ValueError):
    """``records(pipe, fields=...)`` names a field the pipeline does not declare.

    ``pipeline`` names the pipeline, ``field`` the field, ``declared`` the fields the
    pipeline does declare (a strategy for any other would never reach its first stage).
    """

    def __init__(
        self, message: str, *, pipeline: str, field: str, declared: tuple[str, ...]
    ) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.field = field
        self.declared = declared


class StreamError(PackflowError):
    """A message stream cannot be used: a bad URL, a missing topic, a broker that refuses.

    ``url`` is the stream's URL as given (``redis://host:6379/scores``), without its
    password.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class StreamUnavailableError(StreamError):
    """A broker could not be reached or did not answer in time.

    A stream consumer retries what raised it, with backoff, and reports each outage; it
    never acknowledges an input while its output is unwritten.
    """


class SinkRefusedError(StreamError):
    """A sink (or dead-letter destination) answered a write with a refusal (a key of the
    wrong type, no permission, a message too large): retrying would not help, so the
    consumer stops without acknowledging the batch it could not write."""
