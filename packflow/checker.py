"""The graph-level type check: apply the rules of :mod:`packflow.typecheck` to a stage graph.

:func:`check_graph` resolves every stage's and initializer's annotations (in the
function's own module, so ``from __future__ import annotations`` and forward references
work), then checks each edge of the data flow and each injected parameter. It runs no
user code and collects every problem into one :class:`TypeReport`.

Edges checked, producer -> consumer:

- the preprocessor's output -> the first stage's data parameter (records may also go to
  ``list[C]`` for an attrs class ``C``: they are structured at run time);
- each stage's return -> the next stage's data parameter, with ``TypeVar``\\ s solved
  per stage and the solution carried on;
- the last stage's return -> the records contract ``list[dict[str, Any]]`` (a list of
  attrs instances is accepted too: it is unstructured at run time);
- ``config`` -> the config model, ``logger`` -> ``logging.Logger``, a resource -> its
  initializer's return annotation, for the injected parameters of stages and
  initializers alike.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import typing_extensions as te

from packflow.exceptions import PipelineDefinitionError, PipelineTypeError
from packflow.graph import FunctionInfo, Stage, StageGraph, StageKind
from packflow.records import Records, attrs_record_type
from packflow.typecheck import (
    Status,
    Verdict,
    check,
    format_type,
    is_compatible,
    resolve_forward_refs,
    substitute,
)

__all__ = [
    "Edge",
    "TypeProblem",
    "TypeReport",
    "check_graph",
    "raise_for_problems",
    "resolve_hints",
]

#: Edge endpoints that are not stages.
PREPROCESS = "preprocess"
OUTPUT = "output"
INITIALIZE = "initialize"


@attrs.frozen
class TypeProblem:
    """One place where annotations do not fit together.

    ``stage`` is the stage kind (``"execute"``...) or ``"initialize"``; ``parameter`` is
    the parameter name, or ``"return"`` for a return annotation. ``expected`` and
    ``actual`` are readable type strings.
    """

    stage: str
    function: str
    location: str
    parameter: str
    expected: str
    actual: str
    explanation: str
    hint: str
    #: Where the data came from, for a data edge whose producer is a function: its stage,
    #: name and ``file:line`` (at a seam of a composition, the upstream part's last stage).
    source: str = ""
    #: The part of a composition the consumer belongs to (``None`` outside compositions).
    part: str | None = None

    def __str__(self) -> str:
        where = "return type" if self.parameter == "return" else f"parameter `{self.parameter}`"
        lines = [
            f"{self.location}: stage `{self.stage}` function `{self.function}`, {where}: "
            f"expected {self.expected}, got {self.actual}"
        ]
        if self.source:
            lines.append(f"  from: {self.source}")
        if self.explanation:
            lines.append(f"  why: {self.explanation}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


@attrs.frozen
class Edge:
    """Data flowing from ``source`` to ``target``.

    ``type`` is what flows (the producer's type, ``TypeVar``\\ s solved); ``expected`` is
    what the target declares. Endpoints are stage kinds, ``"preprocess"`` or ``"output"``.
    """

    source: str
    target: str
    type: Any
    expected: Any

    def __str__(self) -> str:
        return f"{self.source} --[{format_type(self.type)}]--> {self.target}"


@attrs.frozen
class TypeReport:
    """Everything :func:`check_graph` found.

    ``problems`` are incompatibilities (and, with ``strict``, missing annotations and
    checks the engine could not decide); ``notes`` are, without ``strict``, the checks
    the engine could not decide, each naming the construct, treated as compatible and
    logged. ``data_types`` and ``return_types`` map each stage kind (its value, e.g.
    ``"execute"``) to the annotation of its data parameter and its return, with the
    stage's ``TypeVar``\\ s solved (``Any`` when missing).
    """

    problems: tuple[TypeProblem, ...] = ()
    notes: tuple[str, ...] = ()
    edges: tuple[Edge, ...] = ()
    data_types: Mapping[str, Any] = attrs.field(factory=dict)
    return_types: Mapping[str, Any] = attrs.field(factory=dict)
    #: Each initializer's resolved return annotation, by resource name.
    resource_types: Mapping[str, Any] = attrs.field(factory=dict)
    #: Annotations that could not be resolved (definition problems, one line each); the
    #: functions concerned were checked as if unannotated.
    unresolved: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """``True`` when there is no problem."""
        return not self.problems


def raise_for_problems(
    report: TypeReport | None,
    pipeline_name: str = "",
    definition_problems: Sequence[str] = (),
) -> None:
    """Raise one error listing every problem of every kind, if there is any.

    Definition problems (``definition_problems``, and the unresolved annotations of
    ``report``) and type problems come together, so one check reports them all.

    Raises
    ------
    PipelineTypeError
        When there is a type problem; ``problems`` lists the definition problems (as
        strings) first, then the :class:`TypeProblem` values.
    PipelineDefinitionError
        When there are only definition problems (strings).
    """
    definitions = [*definition_problems, *(report.unresolved if report is not None else ())]
    types = report.problems if report is not None else ()
    if types:
        raise PipelineTypeError(types, pipeline_name, definition_problems=definitions)
    if definitions:
        count = len(definitions)
        listing = "\n".join(f"{n}. {p}" for n, p in enumerate(definitions, 1))
        raise PipelineDefinitionError(
            f"pipeline {pipeline_name!r}: {count} definition problem"
            f"{'s' if count != 1 else ''}:\n{listing}",
            definitions,
        )


# --------------------------------------------------------------------------------------
# Annotation resolution

_MISSING: Any = inspect.Parameter.empty


def _annotated_target(func: Callable[..., Any]) -> Any:
    """The object whose annotations describe calling ``func``."""
    if isinstance(func, functools.partial):
        return _annotated_target(func.func)
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func):
        return func
    if isinstance(func, type):
        return vars(func).get("__init__", func)
    call = getattr(type(func), "__call__", None)  # noqa: B004 - instances with __call__
    return call if call is not None else func


def resolve_hints(info: FunctionInfo, role: str) -> dict[str, Any]:
    """Resolve the annotations of ``info.func`` in its module, extras kept.

    ``role`` (e.g. ``"execute"``) only serves the error message.

    Raises
    ------
    PipelineDefinitionError
        When an annotation names something that cannot be resolved; the message names
        the function, its ``file:line`` and the name.
    """
    target = _annotated_target(info.func)
    try:
        hints = te.get_type_hints(target, include_extras=True)
        # Names an old-style recursive alias leaves in quotes resolve in the same module.
        module = getattr(target, "__module__", None)
        return {name: resolve_forward_refs(hint, module) for name, hint in hints.items()}
    except NameError as exc:
        name = getattr(exc, "name", None) or str(exc)
        message = (
            f"{info.location}: {role} `{info.name}` has an annotation naming {name!r}, "
            f"which is not defined in {getattr(target, '__module__', 'its module')}"
        )
    except Exception as exc:  # a broken annotation is a definition error, not a crash
        message = f"{info.location}: {role} `{info.name}` has an invalid annotation: {exc}"
    raise PipelineDefinitionError(message)


# --------------------------------------------------------------------------------------
# The check


@attrs.define
class _Collector:
    graph: StageGraph
    strict: bool
    problems: list[TypeProblem] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    def problem(
        self,
        role: str,
        info: FunctionInfo,
        parameter: str,
        expected: Any,
        actual: Any,
        explanation: str,
        hint: str,
    ) -> None:
        self.problems.append(
            TypeProblem(
                stage=role,
                function=info.name,
                location=info.location,
                parameter=parameter,
                expected=_show(expected),
                actual=_show(actual),
                explanation=explanation,
                hint=hint,
            )
        )

    def verdict(
        self,
        verdict: Verdict,
        role: str,
        info: FunctionInfo,
        parameter: str,
        expected: Any,
        actual: Any,
        hint: Callable[[], str],
    ) -> None:
        if verdict.status is Status.INCOMPATIBLE:
            self.problem(role, info, parameter, expected, actual, verdict.reason or "", hint())
        elif verdict.status is Status.UNKNOWN and self.strict:
            self.problem(
                role,
                info,
                parameter,
                expected,
                actual,
                f"the checker cannot decide: {verdict.reason}; strict=True makes an "
                "undecided check an error",
                "annotate with types the checker can compare, or drop strict=True to "
                "treat this edge as compatible (it is then reported as a note)",
            )
        elif verdict.status is Status.UNKNOWN:
            where = "return type" if parameter == "return" else f"parameter `{parameter}`"
            self.notes.append(
                f"{info.location}: stage `{role}` function `{info.name}`, {where}: "
                f"cannot tell whether "
                f"{_show(actual)} fits {_show(expected)} ({verdict.reason}); "
                "treated as compatible"
            )

    def missing(self, role: str, info: FunctionInfo, parameter: str, suggestion: Any) -> None:
        if parameter == "return":
            hint = f"annotate the return type of `{info.name}`, e.g. `-> {_show(suggestion)}`"
        else:
            hint = f"annotate `{parameter}`, e.g. `{parameter}: {_show(suggestion)}`"
        self.problem(
            role,
            info,
            parameter,
            "an annotation",
            "none",
            "strict=True requires every data, return and injected parameter to be annotated",
            hint,
        )


def _show(tp: Any) -> str:
    return tp if isinstance(tp, str) else format_type(tp)


def check_graph(
    graph: StageGraph,
    *,
    input_type: Any,
    strict: bool,
    part: str | None = None,
    upstream: Stage | None = None,
    upstream_part: str | None = None,
) -> TypeReport:
    """Type-check every edge and injected parameter of ``graph``.

    Parameters
    ----------
    graph
        The stage graph (stages in run order, initializers in dependency order).
    input_type
        What the first stage receives: ``packflow.Records`` for the ``records`` and
        ``passthrough`` formats, an ``NDArray`` type for ``numpy``; in a composition
        whose part passes records through, what the upstream part returns.
    strict
        Whether a missing annotation and an undecidable ("unknown") check are problems
        (``True``), or ``Any`` and a note (``False``).
    part
        The part's name in a composition: problems are then labelled ``"a.execute"``.
    upstream, upstream_part
        In a composition, the upstream part's last stage and that part's name, when
        ``input_type`` is what that stage returns: a problem on the first stage's data
        parameter then names it as the source.

    Returns
    -------
    TypeReport
        All problems found, the notes on undecidable checks, the type on every edge, and
        the annotations that could not be resolved (``unresolved``; such functions are
        checked as if unannotated, so that one check reports everything).
    """
    hints, unresolved = _resolve_all(graph)
    out = _Collector(graph, strict)
    init_returns = _check_initializers(graph, hints, out)

    edges: list[Edge] = []
    data_types: dict[str, Any] = {}
    return_types: dict[str, Any] = {}
    produced: Any = input_type
    source = PREPROCESS
    previous: Stage | None = None
    producer = _describe_stage(upstream, upstream_part) if upstream is not None else ""
    for position, stage in enumerate(graph.stages):
        stage_hints = hints[id(stage.info)]
        kind = str(stage.kind)
        role = f"{part}.{kind}" if part else kind
        annotation = stage_hints.get(stage.data_param, _MISSING)
        if annotation is _MISSING:
            if strict:
                out.missing(role, stage.info, stage.data_param, produced)
            annotation = Any
        edges.append(Edge(source, kind, produced, annotation))
        verdict = _check_data_edge(produced, annotation, first=position == 0)
        before = len(out.problems)
        out.verdict(
            verdict,
            role,
            stage.info,
            stage.data_param,
            annotation,
            produced,
            functools.partial(
                _edge_hint,
                stage,
                previous if previous is not None else upstream,
                produced,
                annotation,
            ),
        )
        if producer and len(out.problems) > before:
            out.problems[before:] = [
                attrs.evolve(p, source=producer) for p in out.problems[before:]
            ]
        bindings = dict(verdict.bindings)
        bindings = _check_injected(
            role, stage.info, stage.injected, stage_hints, init_returns, bindings, out
        )
        returned = _async_return(
            role,
            stage.info,
            stage_hints.get("return", _MISSING),
            out,
            what="its outputs",
            example="Records",
        )
        if returned is _MISSING and inspect.isgeneratorfunction(
            inspect.unwrap(_annotated_target(stage.info.func))
        ):
            # A function that yields returns a generator whatever it is annotated with;
            # saying so now beats a misaligned batch at run time.
            returned = collections.abc.Generator[Any, Any, Any]
        if returned is _MISSING:
            if strict:
                out.missing(role, stage.info, "return", Any)
            returned = Any
        else:
            _check_unbound_typevars(role, stage.info, stage_hints, returned, out)
        data_types[kind] = substitute(annotation, bindings)
        produced = substitute(returned, bindings)
        return_types[kind] = produced
        source = kind
        previous = stage
        producer = _describe_stage(stage, part)

    if previous is not None:
        edges.append(Edge(source, OUTPUT, produced, Records))
        _check_output(previous, produced, out, part)

    problems = out.problems
    if part:
        problems = [attrs.evolve(p, part=part) for p in problems]
    return TypeReport(
        problems=tuple(problems),
        notes=tuple(out.notes),
        edges=tuple(edges),
        data_types=data_types,
        return_types=return_types,
        resource_types=init_returns,
        unresolved=tuple(unresolved),
    )


def _async_return(
    role: str, info: FunctionInfo, returned: Any, out: _Collector, *, what: str, example: str
) -> Any:
    """What an ``async def`` function produces, as its return annotation says.

    ``async def f(...) -> T`` produces ``T`` once awaited, which is how the annotation
    reads already. Two shapes are reported rather than guessed at: an async generator
    (awaited once, it gives nothing: it must be iterated), and a coroutine declared to
    return an awaitable (awaited once, it gives another awaitable). Either way the
    return type then counts as ``Any``, so that one problem is reported, not a cascade.
    """
    target = inspect.unwrap(_annotated_target(info.func))
    if inspect.isasyncgenfunction(target):
        out.problem(
            role,
            info,
            "return",
            f"a coroutine that returns {what} (`async def` with `return`)",
            "an async generator",
            f"`{info.name}` is an async generator (it yields): packflow awaits a function "
            f"once and takes what it returns as {what}",
            "return the values as a list (`return [...]`) instead of yielding them one by one",
        )
        return Any
    if not info.is_async or returned is _MISSING or not _is_awaitable_type(returned):
        return returned
    out.problem(
        role,
        info,
        "return",
        f"{what}, once awaited",
        returned,
        f"`{info.name}` is `async def` and declares that it returns {_show(returned)}, an "
        "awaitable: awaiting it once gives another awaitable, which packflow does not "
        "await again",
        f"await it inside (`return await ...`) and annotate what that gives, e.g. "
        f"`async def {info.name}(...) -> {example}`",
    )
    return Any


def _is_awaitable_type(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, collections.abc.Awaitable)


def _describe_stage(stage: Stage, part: str | None) -> str:
    kind = str(stage.kind)
    label = f"{part}.{kind}" if part else kind
    return f"stage `{label}` function `{stage.name}` ({stage.location})"


def _typevars(tp: Any) -> set[Any]:
    """The ``TypeVar``\\ s that occur in an annotation (generic aliases list theirs)."""
    if isinstance(tp, TypeVar):
        return {tp}
    found: set[Any] = set()
    for parameter in getattr(tp, "__parameters__", ()) or ():
        if isinstance(parameter, TypeVar):
            found.add(parameter)
    return found


def _check_unbound_typevars(
    role: str, info: FunctionInfo, hints: Mapping[str, Any], returned: Any, out: _Collector
) -> None:
    # A TypeVar that only the return annotation mentions is solved by nothing: the
    # stage promises "whatever the caller wants", which no value can keep.
    bound: set[Any] = set()
    for name, annotation in hints.items():
        if name != "return":
            bound |= _typevars(annotation)
    free = sorted(_typevars(returned) - bound, key=lambda tv: tv.__name__)
    for typevar in free:
        out.problem(
            role,
            info,
            "return",
            f"a type that {typevar.__name__} is solved to",
            returned,
            f"TypeVar {typevar.__name__} appears only in the return annotation, so no "
            "argument decides what it stands for",
            f"annotate a parameter with {typevar.__name__} too, or return a concrete type",
        )


def _resolve_all(graph: StageGraph) -> tuple[dict[int, dict[str, Any]], list[str]]:
    hints: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    named: list[tuple[str, FunctionInfo]] = [(INITIALIZE, i.info) for i in graph.initializers]
    named += [(str(s.kind), s.info) for s in graph.stages]
    for role, info in named:
        try:
            hints[id(info)] = resolve_hints(info, role)
        except PipelineDefinitionError as exc:
            errors.append(str(exc))
            # The annotations that do resolve are still checked, so that one round
            # reports the type problems of this function too.
            hints[id(info)] = _resolve_each(info)
    return hints, errors


def _resolve_each(info: FunctionInfo) -> dict[str, Any]:
    """The annotations of ``info.func`` one by one; an unresolvable one becomes ``Any``."""
    target = _annotated_target(info.func)
    namespace = getattr(target, "__globals__", None)
    annotations = getattr(target, "__annotations__", None)
    if not isinstance(namespace, dict) or not isinstance(annotations, dict):
        return {}
    resolved: dict[str, Any] = {}
    for name, annotation in annotations.items():
        probe = types.FunctionType(_probe.__code__, namespace)
        probe.__annotations__ = {name: annotation}
        try:
            resolved.update(te.get_type_hints(probe, include_extras=True))
        except Exception:  # reported once already, by resolve_hints
            resolved[name] = Any
    return resolved


def _probe() -> None:
    """A body for the throw-away functions that resolve one annotation each."""


def _check_initializers(
    graph: StageGraph, hints: Mapping[int, Mapping[str, Any]], out: _Collector
) -> dict[str, Any]:
    returns: dict[str, Any] = {}
    for init in graph.initializers:
        init_hints = hints[id(init.info)]
        _check_injected(INITIALIZE, init.info, init.requires, init_hints, returns, {}, out)
        returned = _async_return(
            INITIALIZE,
            init.info,
            init_hints.get("return", _MISSING),
            out,
            what="the resource",
            example="Client",
        )
        if returned is _MISSING:
            if out.strict:
                out.missing(INITIALIZE, init.info, "return", "object")
            returned = Any
        else:
            _check_unbound_typevars(INITIALIZE, init.info, init_hints, returned, out)
        returns[init.name] = returned
    # Initializers may be listed after one that requires them only in a malformed graph;
    # a resource not yet seen is simply not checked here (the definition check reports it).
    return returns


def _check_injected(
    role: str,
    info: FunctionInfo,
    names: tuple[str, ...],
    hints: Mapping[str, Any],
    resources: Mapping[str, Any],
    bindings: dict[Any, Any],
    out: _Collector,
) -> dict[Any, Any]:
    for name in names:
        provided, hint = _provided(name, out.graph, resources)
        if provided is _MISSING:
            continue  # an unknown name: the definition check reports it
        annotation = hints.get(name, _MISSING)
        if annotation is _MISSING:
            if out.strict:
                out.missing(role, info, name, provided)
            continue
        verdict = check(provided, annotation, bindings)
        out.verdict(
            verdict,
            role,
            info,
            name,
            annotation,
            provided,
            functools.partial(hint, annotation, provided),
        )
        bindings = dict(verdict.bindings)
    return bindings


def _provided(
    name: str, graph: StageGraph, resources: Mapping[str, Any]
) -> tuple[Any, Callable[[Any, Any], str]]:
    if name in resources:
        return resources[name], functools.partial(_resource_hint, name)
    if name == "config":
        return graph.config_model, _config_hint
    if name == "logger":
        return logging.Logger, _logger_hint
    return _MISSING, _config_hint


# --------------------------------------------------------------------------------------
# Edge rules that belong to the pipeline rather than to the type engine


def _check_data_edge(produced: Any, annotation: Any, *, first: bool) -> Verdict:
    # Records handed to a first stage that wants attrs instances are structured at run time.
    if (
        first
        and attrs_record_type(annotation) is not None
        and check(produced, Records).status is Status.COMPATIBLE
    ):
        return Verdict(Status.COMPATIBLE)
    return check(produced, annotation)


def _check_output(last: Stage, produced: Any, out: _Collector, part: str | None) -> None:
    role = f"{part}.{last.kind}" if part else str(last.kind)
    if attrs_record_type(produced) is not None:
        return  # attrs instances are unstructured to dicts at run time
    verdict = check(produced, Records)
    out.verdict(
        verdict,
        role,
        last.info,
        "return",
        Records,
        produced,
        functools.partial(_output_hint, last, produced),
    )


# --------------------------------------------------------------------------------------
# Hints: the usual fix for each kind of mismatch


def _is_array(tp: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and tp is not Any and is_compatible(tp, np.ndarray)


def _is_list(tp: Any) -> bool:
    return tp is not Any and check(tp, list).status is Status.COMPATIBLE


def _edge_hint(stage: Stage, previous: Stage | None, produced: Any, annotation: Any) -> str:
    want, got = _show(annotation), _show(produced)
    if previous is None:
        if _is_array(annotation) and _is_list(produced):
            return (
                "set input_format='numpy' (with feature_names) so that the preprocessor "
                "hands over a 2-D array, or add a transform_inputs stage that builds one"
            )
        if _is_array(produced) and not _is_array(annotation):
            return f"set input_format='records', or annotate `{stage.data_param}` as {got}"
        if stage.kind is not StageKind.TRANSFORM_INPUTS:
            return (
                f"add a transform_inputs stage that turns {got} into {want}, "
                f"or annotate `{stage.data_param}` as {got}"
            )
        return f"annotate `{stage.data_param}` as {got} (what the preprocessor hands over)"
    if _is_array(annotation) and _is_list(produced):
        return (
            f"make `{previous.name}` return an array (e.g. np.asarray(...)) annotated "
            f"{want}, or annotate `{stage.data_param}` as {got}"
        )
    return f"make `{previous.name}` return {want}, or annotate `{stage.data_param}` as {got}"


def _is_lazy(tp: Any) -> bool:
    # Iterators and generators are not lists: a list is what lines up with the input.
    return tp is not Any and check(tp, Iterator[Any]).status is Status.COMPATIBLE


def _output_hint(last: Stage, produced: Any) -> str:
    if _is_lazy(produced) or typing.get_origin(produced) is tuple or produced is tuple:
        return (
            f"make `{last.name}` return a list (e.g. `return list(...)`) annotated "
            "list[dict[str, Any]]: the outputs must be a list that lines up with the inputs"
        )
    if last.kind is not StageKind.TRANSFORM_OUTPUTS:
        return "add a transform_outputs stage that returns list[dict] (one dict per input record)"
    return (
        f"make `{last.name}` return list[dict[str, Any]] (one dict per input record) "
        "or a list of attrs instances"
    )


def _config_hint(annotation: Any, provided: Any) -> str:
    want = _show(annotation)
    if (
        isinstance(annotation, type)
        and isinstance(provided, type)
        and issubclass(annotation, provided)
    ):
        return f"pass config_model={want} to the Pipeline (it uses {_show(provided)})"
    return f"annotate `config` as {_show(provided)}, the pipeline's config model"


def _logger_hint(annotation: Any, provided: Any) -> str:
    return "annotate `logger` as logging.Logger (the injected logger is a logging.Logger)"


def _resource_hint(name: str, annotation: Any, provided: Any) -> str:
    return (
        f"make initializer `{name}` return {_show(annotation)}, "
        f"or annotate `{name}` as {_show(provided)}"
    )
