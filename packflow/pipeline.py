"""The ``Pipeline``: register plain functions as stages, check them, build instances.

Data moves one way: definition (``Pipeline`` + decorators) -> checked graph
(``check()``) -> built instance (``build()``: config + resources) -> calls.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pickle
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from packflow.checker import check_graph, raise_for_problems
from packflow.config import BackendConfig, resolve_config
from packflow.exceptions import (
    ConfigError,
    InferenceBackendRuntimeError,
    PipelineDefinitionError,
)
from packflow.graph import (
    INJECTABLE_BUILTINS,
    STAGE_KINDS,
    CheckedPipeline,
    FunctionInfo,
    Initializer,
    Stage,
    StageGraph,
    StageKind,
    describe_function,
)
from packflow.log import get_logger
from packflow.metrics import Metrics
from packflow.preprocess import build_preprocessor, preprocessor_output_type
from packflow.runtime import BuiltPipeline, run_initializers

__all__ = ["Pipeline"]

F = TypeVar("F", bound=Callable[..., Any])


class Pipeline:
    """An inference pipeline made of plain functions.

    Parameters
    ----------
    name
        The pipeline's name, used in errors, logs and metrics.
    config_model
        The config class: :class:`packflow.BackendConfig` or an attrs subclass of it.
    strict
        Treat a missing annotation as an error instead of ``Any``.
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
        # attrs.has() is also true for an undecorated subclass of an attrs class, whose
        # own field declarations attrs would silently ignore: ask for the class's own.
        if not (
            isinstance(config_model, type)
            and issubclass(config_model, BackendConfig)
            and "__attrs_attrs__" in config_model.__dict__
        ):
            raise ConfigError(
                f"pipeline {name!r}: config_model must be an attrs subclass of "
                f"packflow.BackendConfig, got {config_model!r}",
                field="config_model",
            )
        self.name = name
        self.config_model = config_model
        self.strict = strict
        self.runtime_checks = runtime_checks
        self._config: dict[str, Any] = dict(config)
        self._initializers: dict[str, FunctionInfo] = {}
        self._stages: dict[StageKind, FunctionInfo] = {}
        self._default: BuiltPipeline | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by reference, like a function: the module and the name it is bound to,
        # so that a worker process imports the same definition (and builds its own
        # instance) instead of receiving a copy of registries, locks and resources.
        module_name, attribute = self._reference()
        return (_import_pipeline, (module_name, attribute))

    def _reference(self) -> tuple[str, str]:
        modules = {info.func.__module__ for info in self._all_functions()}
        for module_name in sorted(m for m in modules if m):
            module = sys.modules.get(module_name)
            for attribute, value in vars(module or object()).items():
                if value is self:
                    return module_name, attribute
        raise pickle.PicklingError(
            f"pipeline {self.name!r} cannot be pickled by reference: it is not a global "
            "of the module that defines its functions; define it at module level"
        )

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
        already taken is an error. Registering invalidates the default built instance.

        Raises
        ------
        PipelineDefinitionError
            When ``kind`` is not a stage kind, ``func`` is not a function, or the stage
            already has a different function.
        """
        try:
            stage_kind = StageKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in STAGE_KINDS)
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: {kind!r} is not a stage kind; use one of {kinds}"
            ) from None
        info = self._describe(func, stage_kind.value)
        existing = self._stages.get(stage_kind)
        if existing is not None and existing.qualname != info.qualname:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} already has a stage {stage_kind.value}: "
                f"{existing}; cannot also register {info}. A pipeline has at most one "
                f"{stage_kind.value} stage."
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

    def _describe(self, func: Callable[..., Any], role: str) -> FunctionInfo:
        try:
            return describe_function(func)
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: cannot register {role}: {exc}"
            ) from exc

    def _invalidate(self) -> None:
        with self._lock:
            self._default = None

    def _ordered_kinds(self) -> list[StageKind]:
        return [kind for kind in STAGE_KINDS if kind in self._stages]

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
        PipelineDefinitionError
            Listing every definition problem at once (missing ``execute``, unknown
            injected names, cycles between initializers, stages without a data
            parameter).
        PipelineTypeError
            Listing every type problem between stages.
        ConfigError, PreprocessorInitError
            When the config is invalid or asks for an impossible preprocessor.
        """
        if config is None:
            config = self.resolve_config()
        preprocessor = build_preprocessor(config)
        graph = self._graph()
        input_type = preprocessor_output_type(config)
        report = check_graph(graph, input_type=input_type, strict=self.strict)
        raise_for_problems(report, self.name)
        if report.notes:
            logger = get_logger(self.name)
            for note in report.notes:
                logger.info("type check of pipeline %r: %s", self.name, note)
        return CheckedPipeline(
            graph=graph,
            config=config,
            preprocessor=preprocessor,
            input_type=input_type,
            report=report,
        )

    def _graph(self) -> StageGraph:
        problems: list[str] = []
        resource_names = tuple(self._initializers)
        available = INJECTABLE_BUILTINS + resource_names
        if StageKind.EXECUTE not in self._stages:
            problems.append(
                f"pipeline {self.name!r} has no execute stage; register one with @pipe.execute"
            )
        stages: list[Stage] = []
        for kind in self._ordered_kinds():
            info = self._stages[kind]
            role = f"{kind.value} {info}"
            problems.extend(_odd_parameter_problems(role, info))
            if not info.params:
                problems.append(
                    f"{role} takes no parameter to receive the data; a stage's first "
                    "parameter receives the data"
                )
                continue
            injected = _injectable(info, info.params[1:], available)
            problems.extend(_unknown_name_problems(role, injected, available))
            stages.append(
                Stage(kind=kind, info=info, data_param=info.params[0], injected=injected)
            )
        initializers: dict[str, Initializer] = {}
        for name, info in self._initializers.items():
            role = f"initializer {info}"
            problems.extend(_odd_parameter_problems(role, info))
            others = tuple(n for n in available if n != name)
            requires = _injectable(info, info.params, available)
            problems.extend(_unknown_name_problems(role, requires, others))
            if name in requires:
                problems.append(f"{role} asks for its own resource {name!r}")
            initializers[name] = Initializer(info=info, requires=requires)
        ordered, cycle_problems = _dependency_order(initializers)
        problems.extend(cycle_problems)
        if problems:
            count = len(problems)
            listing = "\n".join(f"{n}. {p}" for n, p in enumerate(problems, 1))
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: {count} definition problem"
                f"{'s' if count != 1 else ''}:\n{listing}",
                problems,
            )
        return StageGraph(
            name=self.name,
            config_model=self.config_model,
            initializers=tuple(ordered),
            stages=tuple(stages),
        )

    # -- building and calling ----------------------------------------------------------

    def build(self, **config_overrides: Any) -> BuiltPipeline:
        """Resolve the config, check the graph, run the initializers.

        Returns a ready instance: call it with a dict or a list of dicts.

        Raises
        ------
        ConfigError, PipelineDefinitionError, PipelineTypeError, PreprocessorInitError
            As :meth:`check`; no initializer runs when the check fails.
        InferenceBackendInitializationError
            When an initializer raises.
        """
        config = self.resolve_config(**config_overrides)
        checked = self.check(config=config)
        logger = get_logger(self.name)
        resources = run_initializers(checked.graph, config=config, logger=logger)
        return BuiltPipeline(checked, resources, logger=logger, runtime_checks=self.runtime_checks)

    def _instance(self) -> BuiltPipeline:
        instance = self._default
        if instance is None:
            with self._lock:
                instance = self._default
                if instance is None:
                    instance = self._default = self.build()
        return instance

    def __call__(self, inputs: Any) -> Any:
        """Run ``inputs`` through the default instance (built on first use)."""
        return self._instance()(inputs)

    def validate(self, sample: Any) -> Any:
        """``validate`` on the default instance (built on first use)."""
        return self._instance().validate(sample)

    def ready(self) -> bool:
        """Build the default instance if needed; true once it is ready."""
        return self._instance().ready()

    def get_metrics(self) -> Metrics:
        """The metrics of this thread's last call through the default instance.

        Raises
        ------
        InferenceBackendRuntimeError
            When no call has completed on this thread yet.
        """
        instance = self._default
        if instance is None:
            raise InferenceBackendRuntimeError(
                f"pipeline {self.name!r}: get_metrics(): no call has completed yet; "
                "call the pipeline first"
            )
        return instance.get_metrics()


def _import_pipeline(module_name: str, attribute: str) -> Pipeline:
    module = importlib.import_module(module_name)
    pipeline = getattr(module, attribute)
    if not isinstance(pipeline, Pipeline):
        raise pickle.UnpicklingError(
            f"{module_name}.{attribute} is {type(pipeline).__name__}, not a Pipeline"
        )
    return pipeline


def _odd_parameter_problems(role: str, info: FunctionInfo) -> list[str]:
    problems: list[str] = []
    try:
        signature = inspect.signature(info.func)
    except (TypeError, ValueError):
        return problems
    for name in info.odd_params:
        param = signature.parameters[name]
        if param.kind is param.POSITIONAL_ONLY:
            problems.append(
                f"{role}: parameter {name!r} is positional-only, so it cannot be injected by name"
            )
    return problems


def _injectable(
    info: FunctionInfo, names: tuple[str, ...], available: tuple[str, ...]
) -> tuple[str, ...]:
    """The parameters to inject: all but those with a default and nothing to inject."""
    return tuple(n for n in names if n in available or n not in info.defaults)


def _unknown_name_problems(
    role: str, names: tuple[str, ...], available: tuple[str, ...]
) -> list[str]:
    problems = []
    for name in names:
        if name in available:
            continue
        close = difflib.get_close_matches(name, available, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{role} asks for `{name}`{suggestion}; available: {', '.join(available)}")
    return problems


def _dependency_order(
    initializers: Mapping[str, Initializer],
) -> tuple[list[Initializer], list[str]]:
    """Initializers in an order where each comes after what it needs; and the cycles."""
    ordered: list[Initializer] = []
    state: dict[str, int] = {}  # 1 = being visited, 2 = done
    problems: list[str] = []

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*path[path.index(name) :], name]
            problems.append("initializers depend on each other in a cycle: " + " -> ".join(cycle))
            return
        state[name] = 1
        for dep in initializers[name].requires:
            if dep in initializers and dep != name:
                visit(dep, [*path, name])
        state[name] = 2
        ordered.append(initializers[name])

    for name in initializers:
        visit(name, [])
    return ordered, problems
