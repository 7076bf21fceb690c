"""The class-based front end: ``class Backend(InferenceBackend)``.

This is the API of the original Packflow: a subclass defines ``execute`` (and optionally
``initialize``, ``transform_inputs``, ``transform_outputs``); ``Backend(**config)``
resolves the config, type-checks the methods' annotations, runs ``initialize`` and is
then ready for calls. Underneath it is the same thing as the functional API: the methods
the subclass defines are registered, bound, as the stages of a :class:`Pipeline`, and
calls go through the same :class:`~packflow.runtime.BuiltPipeline` (same run-time
contract, metrics and errors).
"""

from __future__ import annotations

import abc
import contextvars
import inspect
import logging
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from packflow._text import closest
from packflow.config import BackendConfig, OverrideFile, check_config_model
from packflow.exceptions import (
    InferenceBackendInitializationError,
    PipelineDefinitionError,
)
from packflow.graph import (
    STAGE_KINDS,
    CheckedPipeline,
    FunctionInfo,
    Upstream,
    describe_function,
    is_async_callable,
)
from packflow.log import get_logger
from packflow.parts import as_parts
from packflow.pipeline import Pipeline
from packflow.runtime import BuiltPipeline
from packflow.runtime.surface import Runtime
from packflow.shipping import ByValue

if TYPE_CHECKING:
    from packflow.compose import ComposedPipeline
    from packflow.parts import Part
    from packflow.runtime.isolation import OnError

__all__ = ["BackendLogger", "InferenceBackend", "backend_pipeline", "built_pipeline"]

if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11 on
    _LoggerAdapter = logging.LoggerAdapter


class BackendLogger(_LoggerAdapter):
    """A class backend's ``self.logger``: a standard logger that can also be called.

    ``self.logger.info(...)`` and friends work as usual; ``self.logger("message")`` logs
    at INFO, as the original Packflow's logger allowed.
    """

    def __call__(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.info(msg, *args, **kwargs)


class _BackendMeta(abc.ABCMeta):
    """Lets backend classes be composed (``Backend >> pipe``) and run as definitions."""

    def __rshift__(cls, other: Any) -> ComposedPipeline:
        from packflow.compose import compose

        return compose(cls, other)

    def __rrshift__(cls, other: Any) -> ComposedPipeline:
        from packflow.compose import compose

        return compose(other, cls)

    # -- the part protocol (see packflow.parts): hooks of the class itself ---------------

    def __packflow_parts__(cls) -> tuple[Part, ...]:
        return (_BackendPart(cls),)  # type: ignore[arg-type]  # the metaclass of backends

    def __packflow_check__(cls, **config: Any) -> CheckedPipeline:
        return check_backend(cls, **config)  # type: ignore[arg-type]

    def __packflow_build__(cls, **config: Any) -> InferenceBackend:
        missing = missing_execute(cls)
        if missing:
            raise TypeError(missing)
        instance: InferenceBackend = cls(**config)
        return instance


#: The checked graph a composition hands to the class part it constructs, so that the
#: instance neither resolves its config nor checks its methods a second time.
_handed: contextvars.ContextVar[CheckedPipeline | None] = contextvars.ContextVar(
    "packflow_handed_check", default=None
)


class InferenceBackend(Runtime, metaclass=_BackendMeta):
    """Base class of class-based backends.

    Define ``execute(self, inputs)`` (required) and, when needed, ``initialize(self)``,
    ``transform_inputs(self, inputs)`` and ``transform_outputs(self, outputs)``; any of
    them may be ``async def`` (see :meth:`acall`). Set
    ``backend_config_model`` to an attrs subclass of :class:`packflow.BackendConfig` to
    add config fields. ``Backend(**config)`` then:

    1. resolves the config (class defaults < keyword arguments < the JSON file named
       by ``BACKEND_CONFIG_FILE_PATH``), raising :class:`~packflow.ConfigError`;
    2. type-checks the annotations of the methods against each other and against the
       preprocessor, raising :class:`~packflow.PipelineTypeError` (no user code runs);
    3. runs ``initialize()``, wrapping any exception in
       :class:`~packflow.InferenceBackendInitializationError`.

    As with an abstract base class, an intermediate class may leave ``execute`` to its
    subclasses (a shared base, a mixin); instantiating a class without ``execute``, or
    ``InferenceBackend`` itself, raises ``TypeError``. ``abstract=True``
    (``class TorchBackend(InferenceBackend, abstract=True)``) is accepted as a marker
    that says so.

    Examples
    --------
    >>> class Echo(InferenceBackend):
    ...     def execute(self, inputs):
    ...         return inputs
    >>> Echo()({"x": 1})
    {'x': 1}
    """

    backend_config_model: ClassVar[type[BackendConfig]] = BackendConfig
    #: Set by ``__init__``; ``None`` until then.
    config: Any = None
    logger: BackendLogger
    _packflow_runtime: BuiltPipeline | None = None
    _packflow_overrides: dict[str, Any]

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("backend_config_model")
        if model is not None:
            check_config_model(model, f"{cls.__name__}.backend_config_model")
        for kind in STAGE_KINDS:
            method = cls.__dict__.get(kind.value)
            if method is not None and isinstance(method, (staticmethod, classmethod)):
                raise PipelineDefinitionError(
                    f"{cls.__name__}.{kind.value} is a {type(method).__name__}; "
                    f"define it as a plain method: `def {kind.value}(self, inputs): ...`"
                )

    def __init__(self, **config: Any) -> None:
        cls = type(self)
        check_stage_names(cls)  # first: `def excute` explains a missing execute best
        missing = missing_execute(cls)
        if missing:
            raise TypeError(missing)
        self._packflow_overrides = dict(config)
        handed = _handed.get()
        if handed is not None:
            _handed.set(None)  # for this instance only, not for one its __init__ makes
            checked = _bound_to(handed, self)
        else:
            pipeline = backend_pipeline(self)
            checked = pipeline.check(config=pipeline.resolve_config(**config))
        built = BuiltPipeline(checked, {}, logger=get_logger(checked.graph.name))
        self.config = built.config
        self.logger = BackendLogger(built.logger, None)
        self._packflow_runtime = built
        self._run_initialize()

    def _run_initialize(self) -> None:
        method = self.initialize
        start = perf_counter()
        try:
            if is_async_callable(method):
                from packflow.runtime.aio import run_blocking

                run_blocking(method())  # type: ignore[arg-type]  # async def initialize
            else:
                method()
        except Exception as exc:
            where = describe_function(method).location
            raise InferenceBackendInitializationError(
                f"{type(self).__name__}.initialize ({where}) raised {type(exc).__name__}: {exc}"
            ) from exc
        if type(self).initialize is not InferenceBackend.initialize:
            elapsed = (perf_counter() - start) * 1000.0
            self.logger.debug("%s initialized in %.1f ms", type(self).__name__, elapsed)

    # -- the part protocol (see packflow.parts): hooks of an instance --------------------

    def __packflow_parts__(self) -> tuple[Part, ...]:
        name = type(self).__name__
        raise PipelineDefinitionError(
            f"cannot compose an InferenceBackend instance ({name}); compose the class "
            f"itself, `{name}`, so that each built composition constructs its own"
        )

    def __packflow_check__(self, **config: Any) -> CheckedPipeline:
        checked = self.__packflow_build__(**config)._runtime().checked
        assert isinstance(checked, CheckedPipeline)
        return checked

    def __packflow_build__(self, **config: Any) -> InferenceBackend:
        if not config:
            return self
        # An instance remembers the config it was made with; new values go on top.
        return type(self)(**{**self._packflow_overrides, **config})

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by reference to the class plus the config it was made with, so that a
        # copy in another process (a Ray or multiprocessing worker) is constructed anew
        # there: config resolved and initialize() run once per worker. A subclass whose
        # __init__ takes arguments of its own defines its own __reduce__.
        return self.__packflow_by_value__().reduced()

    def __packflow_by_value__(self) -> ByValue:
        """``(class, config overrides)``: how a copy is constructed in another process.

        See :mod:`packflow.shipping`; ``args`` is ``(type(self), overrides)``.
        """
        overrides = dict(self._packflow_overrides)
        members: dict[str, Any] = {"class": type(self)}
        members.update((f"config {key}", value) for key, value in overrides.items())
        return ByValue(_rebuild, (type(self), overrides), members)

    def __repr__(self) -> str:
        runtime = self._packflow_runtime
        stages = " -> ".join(runtime.step_labels[1:]) if runtime else "?"
        return f"<{type(self).__name__} (InferenceBackend): {stages}>"

    # -- the user's hooks ----------------------------------------------------------------

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Override to load model weights and other one-time setup; runs at construction.

        ``self.config`` and ``self.logger`` are available.
        """

    # -- the runtime surface (the rest is inherited from packflow.surface.Runtime) --------

    def _runtime(self) -> BuiltPipeline:
        runtime = self._packflow_runtime
        if runtime is None:
            raise InferenceBackendInitializationError(
                f"{type(self).__name__} was not initialized: an __init__ that overrides "
                "InferenceBackend.__init__ must call super().__init__(**kwargs)"
            )
        return runtime

    def __call__(self, inputs: Any, *, on_error: OnError = "raise") -> Any:
        """Run one record (a dict, returns a dict) or a batch (a list, returns a list).

        Raises
        ------
        InferenceBackendRuntimeError
            When the input is neither a dict nor a list of dicts, or the output is not
            a list with one dict per input.
        StageError
            When a method raises; the original exception is chained.
        """
        runtime = self._packflow_runtime
        if runtime is None:  # the hot path stays one attribute read and one call
            runtime = self._runtime()
        # Straight to run_batch for the common calls: as many frames as a call of the
        # built pipeline itself (whose __call__ does this dispatch).
        if on_error == "raise":
            kind = type(inputs)
            if kind is dict:
                return runtime.run_batch([inputs])[0]
            if kind is list:
                return runtime.run_batch(inputs)
        return runtime(inputs, on_error=on_error)

    def ready(self) -> bool:
        """Whether the backend can serve calls; override to check external resources."""
        return self._runtime().ready()


def missing_execute(cls: type) -> str:
    """Why ``cls`` cannot be instantiated for lack of ``execute``, or ``""``."""
    if cls is InferenceBackend:
        return (
            "cannot instantiate InferenceBackend itself: it is abstract; subclass it and "
            "define execute(self, inputs)"
        )
    if callable(getattr(cls, "execute", None)):
        return ""
    return (
        f"cannot instantiate {cls.__name__}({_base_names(cls)}): it has no execute method; "
        "an InferenceBackend must define `def execute(self, inputs): ...` (a base class "
        "without one is for subclasses to complete)"
    )


#: How close a method name must be to a stage name to be taken for a misspelling of it
#: (``transfrom_outputs``, ``transform_input``, ``initialise``, ``excute``; not a helper
#: such as ``transform_output_batch``).
_MISSPELLING_CUTOFF = 0.85


def misspelt_stage_methods(cls: type) -> list[str]:
    """A message for each public method of ``cls`` whose name is a near miss of a stage.

    Such a method never runs (only the exact names are stages), so a typo would silently
    drop a stage. A near miss of a stage the class does define is taken for a helper.
    """
    stage_names = [kind.value for kind in STAGE_KINDS] + ["initialize"]
    defined = {
        name
        for name in stage_names
        if callable(getattr(cls, name, None))
        and getattr(cls, name) is not getattr(InferenceBackend, name, None)
    }
    ours = set(dir(InferenceBackend))
    problems: list[str] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is InferenceBackend or klass in InferenceBackend.__mro__:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen or name in ours or name in stage_names:
                continue
            seen.add(name)
            if not inspect.isfunction(value):
                continue
            target = closest(name, stage_names, cutoff=_MISSPELLING_CUTOFF)
            if target is None or target in defined:
                continue
            where = describe_function(value).location
            problems.append(
                f"{klass.__name__}.{name} ({where}) is not a stage method, so it would never "
                f"run; did you mean {target!r}? (rename it; a helper method whose name starts "
                "with _ is left alone)"
            )
    return problems


def check_stage_names(cls: type) -> None:
    """Refuse a backend class with a misspelt stage method (see :func:`misspelt_stage_methods`).

    Raises
    ------
    PipelineDefinitionError
        Listing every near miss, each with its ``file:line`` and the stage it resembles.
    """
    problems = misspelt_stage_methods(cls)
    if problems:
        raise PipelineDefinitionError("\n".join(problems), problems)


def _rebuild(cls: type[InferenceBackend], config: dict[str, Any]) -> InferenceBackend:
    return cls(**config)


def _base_names(cls: type) -> str:
    return ", ".join(base.__name__ for base in cls.__bases__)


def backend_pipeline(backend: InferenceBackend | type[InferenceBackend]) -> Pipeline:
    """The :class:`Pipeline` whose stages are the methods a backend class defines.

    Given a class, the methods are bound to a bare instance on which ``__init__`` has not
    run, so that the pipeline can be checked (``backend_pipeline(Backend).check()``)
    without running any user code. Such a pipeline is for checking only: building it
    would call methods on an instance that was never initialized.
    """
    if isinstance(backend, type):
        cls = backend
        instance: InferenceBackend = object.__new__(cls)
    else:
        cls = type(backend)
        instance = backend
    pipeline = Pipeline(cls.__name__, config_model=cls.backend_config_model)
    for kind in STAGE_KINDS:
        if callable(getattr(cls, kind.value, None)):
            pipeline.add_stage(kind, getattr(instance, kind.value))
    return pipeline


class _BackendPart:
    """A backend class as a part of a composition (the :class:`~packflow.parts.Part` protocol).

    Its config and check are those of the pipeline of its methods; building constructs
    the class with that check handed over, so nothing is resolved or checked twice.
    """

    __slots__ = ("_cls", "_methods")

    def __init__(self, cls: type[InferenceBackend]) -> None:
        self._cls = cls
        (self._methods,) = as_parts(backend_pipeline(cls))

    @property
    def name(self) -> str:
        return self._cls.__name__

    @property
    def definition(self) -> type[InferenceBackend]:
        return self._cls

    @property
    def resource_names(self) -> tuple[str, ...]:
        return ()

    @property
    def fakes_refused(self) -> str | None:
        return (
            "it is a class backend: it has no initializers (its initialize() runs at "
            "construction); compose a Pipeline, or replace the class with a subclass for "
            "the test"
        )

    def resolve_config(
        self,
        overrides: Mapping[str, Any],
        *,
        section: str | None = None,
        file: OverrideFile | None = None,
    ) -> BackendConfig:
        return self._methods.resolve_config(overrides, section=section, file=file)

    def inspect(
        self, config: BackendConfig, *, part: str | None = None, upstream: Upstream | None = None
    ) -> tuple[CheckedPipeline, list[str]]:
        return self._methods.inspect(config, part=part, upstream=upstream)

    def build(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any] | None = None,
        *,
        part: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> BuiltPipeline:
        token = _handed.set(checked)
        try:
            instance = self._cls(**dict(overrides or {}))
        finally:
            _handed.reset(token)
        return built_pipeline(instance)

    def replace(self, **stages: Any) -> Any:
        raise PipelineDefinitionError(
            f"part {self.name!r} is a class backend; replace the whole part "
            f"(replace({self.name}=...)) rather than its stages"
        )


def _rebound(info: FunctionInfo, method: Any) -> FunctionInfo:
    return attrs.evolve(info, func=method)


def _bound_to(checked: CheckedPipeline, instance: InferenceBackend) -> CheckedPipeline:
    """``checked`` (made over a bare instance) with its stages bound to ``instance``."""
    stages = tuple(
        attrs.evolve(
            stage, info=attrs.evolve(stage.info, func=getattr(instance, stage.kind.value))
        )
        for stage in checked.graph.stages
    )
    return attrs.evolve(checked, graph=attrs.evolve(checked.graph, stages=stages))


def built_pipeline(backend: InferenceBackend | BuiltPipeline) -> BuiltPipeline:
    """The built instance that serves a backend's calls (the backend itself if built)."""
    if isinstance(backend, BuiltPipeline):
        return backend
    return backend._runtime()


def check_backend(backend: type[InferenceBackend], **config: Any) -> CheckedPipeline:
    """Type-check a backend class's methods without running any of its code.

    Raises
    ------
    PipelineDefinitionError
        When the class (or ``InferenceBackend`` itself) has no ``execute``.
    ConfigError, PipelineDefinitionError, PipelineTypeError
        As :meth:`Pipeline.check`.
    """
    check_stage_names(backend)
    missing = missing_execute(backend)
    if missing:
        # Said in the class's terms: the pipeline's "register one with @pipe.execute"
        # would send a class author to the wrong API.
        message = missing.replace("cannot instantiate", "cannot check", 1)
        raise PipelineDefinitionError(message, [message])
    pipeline = backend_pipeline(backend)
    return pipeline.check(config=pipeline.resolve_config(**config))
