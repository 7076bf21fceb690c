"""The ``Pipeline``: register plain functions as stages, check them, build instances.

Data moves one way: definition (``Pipeline`` + decorators) -> checked graph
(``check()``) -> built instance (``build()``: config + resources) -> calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import packflow.shipping as shipping
from packflow._text import closest
from packflow.config import BackendConfig, OverrideFile, check_config_model, resolve_config
from packflow.exceptions import PipelineDefinitionError
from packflow.graph import (
    INJECTABLE_BUILTINS,
    STAGE_KINDS,
    CheckedPipeline,
    FunctionInfo,
    Stage,
    StageGraph,
    StageKind,
    Upstream,
    build_graph,
    describe_function,
)
from packflow.log import get_logger
from packflow.runtime import BuiltPipeline, run_initializers
from packflow.runtime.resources import check_fakes
from packflow.runtime.surface import LazyDefault
from packflow.shipping import ByValue, caller_modules

if TYPE_CHECKING:
    from packflow.compose import ComposedPipeline
    from packflow.parts import Part

__all__ = ["Pipeline"]

F = TypeVar("F", bound=Callable[..., Any])


class Pipeline(LazyDefault[BuiltPipeline]):
    """An inference pipeline made of plain functions.

    Parameters
    ----------
    name
        The pipeline's name, used in errors, logs and metrics (and as the part's name
        when it is composed with ``>>``).
    config_model
        The config class: :class:`packflow.BackendConfig` or an attrs subclass of it.
    strict
        Treat a missing annotation as an error instead of ``Any``, and a type check the
        engine cannot decide as an error instead of a note.
    runtime_checks
        Check the values passed between stages against the annotations on every call
        (for tests and development; it costs time per call).
    **config
        Config values; they override the config class defaults, and are overridden by
        ``build(**overrides)`` and the ``BACKEND_CONFIG_FILE_PATH`` file.

    Examples
    --------
    >>> pipe = Pipeline("echo")
    >>> @pipe.execute
    ... def predict(records):
    ...     return [{"echo": r["x"]} for r in records]
    >>> pipe({"x": 1})
    {'echo': 1}
    """

    def __init__(
        self,
        name: str,
        *,
        config_model: type[BackendConfig] = BackendConfig,
        strict: bool = False,
        runtime_checks: bool = False,
        **config: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PipelineDefinitionError(f"a pipeline needs a non-empty name, got {name!r}")
        check_config_model(config_model, f"pipeline {name!r}: config_model")
        self.name = name
        self.config_model = config_model
        self.strict = strict
        self.runtime_checks = runtime_checks
        self._config: dict[str, Any] = dict(config)
        self._initializers: dict[str, FunctionInfo] = {}
        self._stages: dict[StageKind, FunctionInfo] = {}
        self._origins: tuple[str, ...] = caller_modules()
        self._init_default()

    # -- pickling ----------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        # By reference when the pipeline is a module global (of the module that made it,
        # or that defines its functions), like a function: a worker process imports the
        # same definition and builds its own instance. Otherwise by value: the definition
        # (name, config, functions), never a registry lock or a built instance.
        return shipping.reduce(self, self._origins, self._function_modules())

    def __packflow_by_value__(self) -> ByValue:
        """The pipeline's definition, for pickling by value (see :mod:`packflow.shipping`)."""
        definition = self._definition()
        name, flags, config, initializers, stages = definition
        members: dict[str, Any] = {f"initializer {f.__name__}": f for f in initializers}
        members.update((f"stage {kind}", func) for kind, func in stages.items())
        members.update((f"config {key}", value) for key, value in config.items())
        members[f"the config model of {name!r}"] = flags["config_model"]
        return ByValue(_rebuild_pipeline, (definition,), members)

    def _function_modules(self) -> list[str]:
        return [getattr(info.func, "__module__", "") or "" for info in self._all_functions()]

    def _definition(self) -> tuple[Any, ...]:
        stages = {kind.value: info.func for kind, info in self._stages.items()}
        initializers = [info.func for info in self._initializers.values()]
        flags = {"config_model": self.config_model, "strict": self.strict}
        flags["runtime_checks"] = self.runtime_checks
        return (self.name, flags, dict(self._config), initializers, stages)

    def _all_functions(self) -> list[FunctionInfo]:
        return [*self._initializers.values(), *self._stages.values()]

    def __repr__(self) -> str:
        parts = [f"{kind.value} `{self._stages[kind].name}`" for kind in self._ordered_kinds()]
        return f"<Pipeline {self.name!r}: {' -> '.join(parts) or 'no stages'}>"

    # -- registration ------------------------------------------------------------------

    def initialize(self, func: F) -> F:
        """Register ``func`` as an initializer; its name is the resource it provides."""
        self.add_initializer(func)
        return func

    def transform_inputs(self, func: F) -> F:
        """Register ``func`` as the ``transform_inputs`` stage."""
        self.add_stage(StageKind.TRANSFORM_INPUTS, func)
        return func

    def execute(self, func: F) -> F:
        """Register ``func`` as the ``execute`` stage (required, exactly one)."""
        self.add_stage(StageKind.EXECUTE, func)
        return func

    def transform_outputs(self, func: F) -> F:
        """Register ``func`` as the ``transform_outputs`` stage."""
        self.add_stage(StageKind.TRANSFORM_OUTPUTS, func)
        return func

    def add_transform_inputs(self, func: Callable[..., Any]) -> None:
        """Plain-method twin of :meth:`transform_inputs`."""
        self.add_stage(StageKind.TRANSFORM_INPUTS, func)

    def add_execute(self, func: Callable[..., Any]) -> None:
        """Plain-method twin of :meth:`execute`."""
        self.add_stage(StageKind.EXECUTE, func)

    def add_transform_outputs(self, func: Callable[..., Any]) -> None:
        """Plain-method twin of :meth:`transform_outputs`."""
        self.add_stage(StageKind.TRANSFORM_OUTPUTS, func)

    def add_stage(self, kind: StageKind | str, func: Callable[..., Any]) -> None:
        """Register ``func`` as the stage of ``kind``.

        Re-registering a function with the same qualified name replaces it (so that
        re-running a notebook cell works); a different function for a stage that is
        already taken is an error. Registering drops the default instance (the next
        ``pipe(...)`` builds a new one); instances returned by ``build()`` earlier keep
        the definition they were built from.

        Raises
        ------
        PipelineDefinitionError
            When ``kind`` is not a stage kind, ``func`` is not a function, or the stage
            already has a different function.
        """
        stage_kind = self._stage_kind(kind)
        info = self._describe(func, stage_kind.value)
        existing = self._stages.get(stage_kind)
        if existing is not None and existing.qualname != info.qualname:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} already has a stage {stage_kind.value}: "
                f"{existing}; cannot also register {info}. A pipeline has at most one "
                f"{stage_kind.value} stage (use pipe.replace({stage_kind.value}=...) for "
                "a copy with another one)."
            )
        self._stages[stage_kind] = info
        self._invalidate()

    def add_initializer(self, func: Callable[..., Any]) -> None:
        """Plain-method twin of :meth:`initialize`.

        Raises
        ------
        PipelineDefinitionError
            When the name is reserved (``config``, ``logger``) or another function
            already provides a resource of that name.
        """
        info = self._describe(func, "initializer")
        if info.name in INJECTABLE_BUILTINS:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: initializer {info} is named {info.name!r}, which "
                f"is reserved ({', '.join(INJECTABLE_BUILTINS)} are always injected); "
                "rename the function"
            )
        existing = self._initializers.get(info.name)
        if existing is not None and existing.qualname != info.qualname:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: resource {info.name!r} is already provided by "
                f"{existing}; cannot also register {info}"
            )
        self._initializers[info.name] = info
        self._invalidate()

    def _stage_kind(self, kind: Any) -> StageKind:
        try:
            return StageKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in STAGE_KINDS)
            match = closest(str(kind), [k.value for k in STAGE_KINDS])
            suggestion = f" (did you mean {match!r}?)" if match else ""
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: {kind!r} is not a stage kind{suggestion}; use one "
                f"of {kinds}"
            ) from None

    def _describe(self, func: Callable[..., Any], role: str) -> FunctionInfo:
        try:
            return describe_function(func)
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: cannot register {role}: {exc}"
            ) from exc

    def _ordered_kinds(self) -> list[StageKind]:
        return [kind for kind in STAGE_KINDS if kind in self._stages]

    # -- copies and compositions -----------------------------------------------------

    def replace(self, **stages: Callable[..., Any] | None) -> Pipeline:
        """A copy with some stages swapped, or an optional stage removed (``None``).

        The original pipeline, and its default instance, are untouched; the copy is
        checked like any pipeline when it is checked or built.

        Examples
        --------
        >>> pipe = Pipeline("p")
        >>> @pipe.execute
        ... def predict(records):
        ...     return records
        >>> fake = pipe.replace(execute=lambda records: [{"fake": True} for _ in records])
        >>> fake({"x": 1}), pipe({"x": 1})
        ({'fake': True}, {'x': 1})

        Raises
        ------
        PipelineDefinitionError
            When a keyword is not a stage kind, ``execute`` is removed, or a value is not
            a function.
        """
        kinds = {self._stage_kind(kind): func for kind, func in stages.items()}
        if StageKind.EXECUTE in kinds and kinds[StageKind.EXECUTE] is None:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: replace(execute=None) would leave no execute "
                "stage; every pipeline needs one"
            )
        copy = Pipeline(
            self.name,
            config_model=self.config_model,
            strict=self.strict,
            runtime_checks=self.runtime_checks,
            **self._config,
        )
        copy._initializers = dict(self._initializers)
        copy._stages = dict(self._stages)
        for kind, func in kinds.items():
            if func is None:
                copy._stages.pop(kind, None)
            else:
                copy._stages[kind] = copy._describe(func, kind.value)
        copy._origins = caller_modules()
        return copy

    def __rshift__(self, other: Any) -> ComposedPipeline:
        """``a >> b``: a new pipeline where ``b`` receives what ``a`` returns."""
        from packflow.compose import compose

        return compose(self, other)

    def __rrshift__(self, other: Any) -> ComposedPipeline:
        from packflow.compose import compose

        return compose(other, self)

    # -- checking ----------------------------------------------------------------------

    def resolve_config(self, **overrides: Any) -> BackendConfig:
        """The config this pipeline would be built with, given ``overrides``.

        Raises
        ------
        ConfigError
            When a key is unknown, a value has the wrong type, or the override file
            named by ``BACKEND_CONFIG_FILE_PATH`` is unusable.
        """
        return resolve_config(self.config_model, {**self._config, **overrides})

    # -- the part protocol (see packflow.parts) -------------------------------------------

    def __packflow_parts__(self) -> tuple[Part, ...]:
        return (_PipelinePart(self),)

    def __packflow_check__(self, **config: Any) -> CheckedPipeline:
        return self.check(config=self.resolve_config(**config))

    def __packflow_build__(self, **config: Any) -> BuiltPipeline:
        return self.build(**config)

    def check(self, *, config: BackendConfig | None = None) -> CheckedPipeline:
        """Build and check the stage graph without running any user code.

        Parameters
        ----------
        config
            A resolved config to check against; by default the pipeline's own config.

        Returns
        -------
        CheckedPipeline
            The graph, the config, the preprocessor and the type report.

        Raises
        ------
        PipelineTypeError
            Listing every problem at once, when any is a type problem between stages:
            the definition problems (below) come first in ``problems``.
        PipelineDefinitionError
            Listing every definition problem at once (missing ``execute``, unknown
            injected names, cycles between initializers, stages without a data
            parameter, annotations that cannot be resolved), when there is no type
            problem.
        ConfigError, PreprocessorInitError
            When the config is invalid or asks for an impossible preprocessor.
        """
        return self._check(config)

    def _check(self, config: BackendConfig | None) -> CheckedPipeline:
        if config is None:
            config = self.resolve_config()
        from packflow.checker import raise_for_problems

        checked, definition_problems = self._inspect(config)
        raise_for_problems(checked.report, self.name, definition_problems)
        self._log_notes(checked)
        return checked

    def _log_notes(self, checked: CheckedPipeline) -> None:
        notes = checked.report.notes
        if notes:
            logger = get_logger(self.name)
            for note in notes:
                logger.info("type check of pipeline %r: %s", self.name, note)

    def _inspect(
        self,
        config: BackendConfig,
        *,
        part: str | None = None,
        upstream: Upstream | None = None,
    ) -> tuple[CheckedPipeline, list[str]]:
        """Check without raising: the checked pipeline and the definition problems.

        The report's ``problems`` hold the type problems; a caller with problems must
        not use the result to build (see :meth:`_check`, and compositions, which gather
        the problems of all their parts into one error).
        """
        # The checker, the type model and the preprocessors are imported by the first
        # check (which every build runs), not by `import packflow`.
        from packflow.checker import check_graph
        from packflow.preprocess import (
            build_preprocessor,
            is_passthrough,
            preprocessor_output_type,
        )

        preprocessor = build_preprocessor(config)
        graph, definition_problems = self._graph()
        input_type = preprocessor_output_type(config)
        source: Stage | None = None
        source_part: str | None = None
        if upstream is not None and is_passthrough(preprocessor):
            # Records pass through untouched: the first stage gets what upstream returns.
            input_type, source, source_part = upstream
        report = check_graph(
            graph,
            input_type=input_type,
            strict=self.strict,
            part=part,
            upstream=source,
            upstream_part=source_part,
        )
        checked = CheckedPipeline(
            graph=graph,
            config=config,
            preprocessor=preprocessor,
            input_type=input_type,
            report=report,
        )
        return checked, definition_problems

    def _graph(self) -> tuple[StageGraph, list[str]]:
        """The stage graph, and every definition problem found on the way."""
        return build_graph(self.name, self.config_model, self._stages, self._initializers)

    # -- building and calling ----------------------------------------------------------

    def build(
        self, *, resources: Mapping[str, Any] | None = None, **config_overrides: Any
    ) -> BuiltPipeline:
        """Resolve the config, check the graph, run the initializers.

        Returns a ready instance: call it with a dict or a list of dicts.

        Parameters
        ----------
        resources
            Test doubles by resource name: ``resources={"model": fake}`` uses ``fake``
            instead of running the initializer ``model`` (initializers that only fed
            it do not run either). The fake must fit the initializer's return
            annotation.
        **config_overrides
            Config values over the pipeline's own.

        Raises
        ------
        ConfigError, PipelineDefinitionError, PipelineTypeError, PreprocessorInitError
            As :meth:`check`; no initializer runs when the check fails.
        PipelineDefinitionError
            When ``resources`` names something no initializer provides.
        InferenceBackendInitializationError
            When an initializer raises, or a fake does not fit its initializer's return
            annotation.
        """
        config = self.resolve_config(**config_overrides)
        return self._build(self._check(config), resources)

    def _build(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any] | None,
        *,
        prefix: str = "",
    ) -> BuiltPipeline:
        fakes = dict(resources or {})
        if fakes:
            check_fakes(
                checked.graph,
                fakes,
                checked.report.resource_types,
                pipeline=self.name,
                prefix=prefix,
            )
        logger = get_logger(self.name)
        made = run_initializers(
            checked.graph, config=checked.config, logger=logger, overrides=fakes
        )
        return BuiltPipeline(checked, made, logger=logger, runtime_checks=self.runtime_checks)

    def _runtime(self) -> BuiltPipeline:
        # The hot path of pipe(...): one attribute read once the default is built.
        instance = self._default
        if instance is None:
            instance = super()._runtime()
        return instance


class _PipelinePart:
    """A ``Pipeline`` as a part of a composition (the :class:`~packflow.parts.Part` protocol)."""

    __slots__ = ("_pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    @property
    def name(self) -> str:
        return self._pipeline.name

    @property
    def definition(self) -> Pipeline:
        return self._pipeline

    @property
    def resource_names(self) -> tuple[str, ...]:
        return tuple(self._pipeline._initializers)

    @property
    def fakes_refused(self) -> str | None:
        return None

    def resolve_config(
        self,
        overrides: Mapping[str, Any],
        *,
        section: str | None = None,
        file: OverrideFile | None = None,
    ) -> BackendConfig:
        pipeline = self._pipeline
        values = {**pipeline._config, **overrides}
        return resolve_config(pipeline.config_model, values, section=section, file=file)

    def inspect(
        self, config: BackendConfig, *, part: str | None = None, upstream: Upstream | None = None
    ) -> tuple[CheckedPipeline, list[str]]:
        return self._pipeline._inspect(config, part=part, upstream=upstream)

    def build(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any] | None = None,
        *,
        part: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> BuiltPipeline:
        prefix = f"{part}." if part else ""
        return self._pipeline._build(checked, resources, prefix=prefix)

    def replace(self, **stages: Any) -> Pipeline:
        return self._pipeline.replace(**stages)


def _rebuild_pipeline(definition: tuple[Any, ...]) -> Pipeline:
    name, flags, config, initializers, stages = definition
    pipeline = Pipeline(name, **flags, **config)
    for func in initializers:
        pipeline.add_initializer(func)
    for kind, func in stages.items():
        pipeline.add_stage(kind, func)
    return pipeline
