"""The stage graph: frozen values describing a checked pipeline definition.

A ``StageGraph`` is what ``Pipeline.check()`` produces and what a built instance runs.
It holds plain functions and facts about them (name, ``file:line``, parameters); it runs
no user code and knows nothing of configs or preprocessors beyond their types.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from packflow._text import closest

__all__ = [
    "INJECTABLE_BUILTINS",
    "STAGE_KINDS",
    "CheckedComposition",
    "CheckedPipeline",
    "FunctionInfo",
    "Initializer",
    "Stage",
    "StageGraph",
    "StageId",
    "StageKind",
    "Upstream",
    "build_graph",
    "describe_function",
    "is_async_callable",
    "run_inline",
]


class StageKind(str, enum.Enum):
    """The stages a pipeline may have, in the order they run."""

    TRANSFORM_INPUTS = "transform_inputs"
    EXECUTE = "execute"
    TRANSFORM_OUTPUTS = "transform_outputs"

    def __str__(self) -> str:
        return self.value


STAGE_KINDS: tuple[StageKind, ...] = tuple(StageKind)


@attrs.frozen
class StageId:
    """Where a step stands: its part in a composition (``None`` alone) and its kind.

    ``kind`` is a stage kind's value, ``"preprocess"`` or ``"initialize"``. ``str()`` is
    the label used in metrics, type reports and error rows: ``"execute"`` for a single
    pipeline, ``"a.execute"`` for the part ``a`` of a composition.
    """

    part: str | None
    kind: str

    def __str__(self) -> str:
        return f"{self.part}.{self.kind}" if self.part else self.kind


#: Names that can always be injected, whatever the initializers.
INJECTABLE_BUILTINS: tuple[str, ...] = ("config", "logger")


@attrs.frozen
class FunctionInfo:
    """Where a user function lives and what parameters it takes."""

    func: Callable[..., Any] = attrs.field(eq=False, repr=False)
    name: str
    qualname: str
    location: str
    params: tuple[str, ...]
    #: Parameters that cannot be passed by name (``*args``, positional-only, ``**kw``).
    odd_params: tuple[str, ...] = ()
    #: Parameters with a default value: when nothing of that name can be injected,
    #: the default is kept instead of reporting an unknown name.
    defaults: tuple[str, ...] = ()
    #: ``async def`` (or an object whose ``__call__`` is): a call gives a coroutine,
    #: which the runtime awaits.
    is_async: bool = False
    #: A plain function marked with :func:`run_inline`: on the async path it runs on the
    #: event loop instead of in a worker thread.
    inline: bool = False

    def __str__(self) -> str:
        return f"`{self.name}` ({self.location})"


@attrs.frozen
class Stage:
    """One stage: its kind and the function that implements it.

    ``data_param`` is the name of the parameter that receives the data; ``injected``
    are the remaining parameters, wired by name.
    """

    kind: StageKind
    info: FunctionInfo
    data_param: str
    injected: tuple[str, ...]

    @property
    def func(self) -> Callable[..., Any]:
        return self.info.func

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def location(self) -> str:
        return self.info.location


@attrs.frozen
class Initializer:
    """An initializer: ``name`` is the resource it provides; ``requires`` are injected."""

    info: FunctionInfo
    requires: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def func(self) -> Callable[..., Any]:
        return self.info.func


@attrs.frozen
class StageGraph:
    """A checked pipeline: initializers in dependency order, stages in run order."""

    name: str
    config_model: type[Any]
    initializers: tuple[Initializer, ...]
    stages: tuple[Stage, ...]

    def stage(self, kind: StageKind | str) -> Stage | None:
        """The stage of ``kind``, or ``None`` when the pipeline has none."""
        kind = StageKind(kind)
        for stage in self.stages:
            if stage.kind is kind:
                return stage
        return None

    @property
    def resource_names(self) -> tuple[str, ...]:
        return tuple(init.name for init in self.initializers)


#: The attribute :func:`run_inline` sets on a function.
_INLINE_MARK = "__packflow_inline__"

F = TypeVar("F", bound=Callable[..., Any])


def run_inline(func: F) -> F:
    """Mark a plain stage as cheap: on the async path it runs on the event loop itself.

    On the async path (``await built.acall(...)``, the async batcher on a pipeline with
    ``async def`` stages) a plain ``def`` stage runs in a worker thread, so that however
    long it takes the event loop goes on serving other callers. A stage that takes a few
    microseconds (renaming keys, picking fields) pays more for the thread hop than for
    its work: marked with ``run_inline`` it runs on the loop. It must not block. The
    function is returned unchanged; plain calls are not affected.

    Examples
    --------
    >>> from packflow import Pipeline, run_inline
    >>> pipe = Pipeline("tidy")
    >>> @pipe.transform_outputs
    ... @run_inline
    ... def rename(outputs):
    ...     return [{"label": o["y"]} for o in outputs]
    """
    setattr(func, _INLINE_MARK, True)
    return func


def is_async_callable(func: Any) -> bool:
    """Whether calling ``func`` gives a coroutine: ``async def`` (also partial, bound
    method) or an object whose ``__call__`` is ``async def``."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isfunction(func) or inspect.ismethod(func) or isinstance(func, type):
        return False
    return inspect.iscoroutinefunction(getattr(type(func), "__call__", None))  # noqa: B004


def _location(func: Callable[..., Any]) -> str:
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    if code is not None:
        return f"{code.co_filename}:{code.co_firstlineno}"
    try:
        filename = inspect.getsourcefile(target) or "<unknown>"
        _, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        return "<unknown>:0"
    return f"{filename}:{line}"


def describe_function(func: Callable[..., Any]) -> FunctionInfo:
    """Collect a function's name, location and parameter names without calling it.

    Raises
    ------
    TypeError
        When ``func`` is not callable or has no inspectable signature.
    """
    if not callable(func):
        raise TypeError(f"expected a function, got {type(func).__name__} {func!r}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {func!r}: {exc}") from exc
    params: list[str] = []
    odd: list[str] = []
    defaults = tuple(
        p.name for p in signature.parameters.values() if p.default is not inspect.Parameter.empty
    )
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            params.append(param.name)
        elif param.kind is param.POSITIONAL_ONLY and not params:
            # A positional-only first parameter can still receive the data.
            params.append(param.name)
        else:
            odd.append(param.name)
    name = getattr(func, "__name__", type(func).__name__)
    qualname = getattr(func, "__qualname__", name)
    module = getattr(func, "__module__", None) or ""
    return FunctionInfo(
        func=func,
        name=name,
        qualname=f"{module}.{qualname}" if module else qualname,
        location=_location(func),
        params=tuple(params),
        odd_params=tuple(odd),
        defaults=defaults,
        is_async=is_async_callable(func),
        inline=bool(getattr(func, _INLINE_MARK, False)),
    )


@attrs.frozen
class CheckedPipeline:
    """A stage graph that passed ``check()``, with the config it was checked against.

    ``preprocessor`` is the built preprocessor for ``config``; ``input_type`` is the type
    it hands to the first stage; ``report`` is the type checker's report (edges with
    their types, notes).
    """

    graph: StageGraph
    config: Any
    preprocessor: Callable[[Any], Any] = attrs.field(eq=False)
    input_type: Any
    report: Any = None

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def parts(self) -> tuple[tuple[str, CheckedPipeline], ...]:
        """``((name, self),)``: a single pipeline is a composition of one part."""
        return ((self.graph.name, self),)

    @property
    def notes(self) -> tuple[str, ...]:
        """The type checker's notes (verdicts it could not reach, and why)."""
        return tuple(self.report.notes) if self.report is not None else ()


@attrs.frozen
class CheckedComposition:
    """A composition that passed ``check()``: each part's checked pipeline, in order.

    ``parts`` pairs each part's name with its :class:`CheckedPipeline` (config, graph,
    preprocessor, type report), as a single pipeline's ``parts`` does.
    """

    name: str
    parts: tuple[tuple[str, CheckedPipeline], ...]

    @property
    def notes(self) -> tuple[str, ...]:
        """Every part's notes, each naming its part."""
        return tuple(
            f"part {name!r}: {note}" for name, checked in self.parts for note in checked.notes
        )

    def part(self, name: str) -> CheckedPipeline:
        """The checked pipeline of the part called ``name``.

        Raises
        ------
        KeyError
            When no part has that name.
        """
        for part_name, checked in self.parts:
            if part_name == name:
                return checked
        raise KeyError(name)


#: What a composition's upstream part hands to the next: the type its last stage
#: returns, that stage, and the part's name.
Upstream = tuple[Any, Stage, str]


# -- construction ---------------------------------------------------------------------------


def build_graph(
    name: str,
    config_model: type[Any],
    stages: Mapping[StageKind, FunctionInfo],
    initializers: Mapping[str, FunctionInfo],
) -> tuple[StageGraph, list[str]]:
    """The stage graph of a definition, and every definition problem found on the way.

    Stages are put in run order and their injected parameters resolved by name;
    initializers are put in dependency order. Nothing is called. The problems (a missing
    ``execute``, a stage without a data parameter, an unknown or positional-only injected
    name, an initializer that needs itself, a cycle) are all collected, for the caller
    to report together with the type problems.
    """
    problems: list[str] = []
    resource_names = tuple(initializers)
    available = INJECTABLE_BUILTINS + resource_names
    if StageKind.EXECUTE not in stages:
        problems.append(f"pipeline {name!r} has no execute stage; register one with @pipe.execute")
    ordered_stages: list[Stage] = []
    for kind in STAGE_KINDS:
        info = stages.get(kind)
        if info is None:
            continue
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
        ordered_stages.append(
            Stage(kind=kind, info=info, data_param=info.params[0], injected=injected)
        )
    nodes: dict[str, Initializer] = {}
    for resource, info in initializers.items():
        role = f"initializer {info}"
        problems.extend(_odd_parameter_problems(role, info))
        others = tuple(n for n in available if n != resource)
        requires = _injectable(info, info.params, available)
        problems.extend(_unknown_name_problems(role, requires, others))
        if resource in requires:
            problems.append(f"{role} asks for its own resource {resource!r}")
        nodes[resource] = Initializer(info=info, requires=requires)
    ordered, cycle_problems = _dependency_order(nodes)
    problems.extend(cycle_problems)
    graph = StageGraph(
        name=name,
        config_model=config_model,
        initializers=tuple(ordered),
        stages=tuple(ordered_stages),
    )
    return graph, problems


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
        match = closest(name, available)
        suggestion = f" (did you mean {match!r}?)" if match else ""
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
