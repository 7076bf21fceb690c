"""Resources: run a graph's initializers, in dependency order, once per built instance.

``build(resources={"model": fake})`` hands test doubles in: the fake stands in for the
initializer's result, that initializer does not run, and neither do the initializers
that only fed it. An ``async def`` initializer is run to completion when the pipeline is
built, on packflow's event loop (see :mod:`packflow.runtime.aio`). The fake is checked
against the initializer's return annotation, so a double that does not look like the
real thing fails at build time, by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from packflow._text import closest, describe
from packflow.exceptions import InferenceBackendInitializationError, PipelineDefinitionError
from packflow.graph import Initializer, StageGraph

__all__ = ["check_fakes", "initializers_to_run", "run_initializers"]


def check_fakes(
    graph: StageGraph,
    fakes: Mapping[str, Any],
    resource_types: Mapping[str, Any],
    *,
    pipeline: str,
    prefix: str = "",
) -> None:
    """Refuse fakes named after no initializer, or not fitting its return annotation.

    ``prefix`` (``"a."`` in a composition) is how the caller spelled the names.

    Raises
    ------
    PipelineDefinitionError
        When a name is not a resource of ``graph``; lists the resources there are.
    InferenceBackendInitializationError
        When a fake's value does not fit the initializer's return annotation; names the
        resource, the initializer and both types.
    """
    available = graph.resource_names
    for name, fake in fakes.items():
        if name not in available:
            listed = ", ".join(f"{prefix}{n}" for n in available) or "none"
            match = closest(name, available)
            suggestion = f" (did you mean {prefix + match!r}?)" if match else ""
            raise PipelineDefinitionError(
                f"pipeline {pipeline!r}: build(resources=...) names {prefix + name!r}, which "
                f"no initializer provides{suggestion}; resources: {listed}"
            )
        annotation = resource_types.get(name, Any)
        if annotation is Any:
            continue
        problem = _mismatch(annotation, fake)
        if problem is not None:
            init = next(i for i in graph.initializers if i.name == name)
            raise InferenceBackendInitializationError(
                f"pipeline {pipeline!r}: the fake for resource {prefix + name!r} does not "
                f"fit initializer `{init.name}` ({init.info.location}), which returns "
                f"{_show(annotation)}: {problem}. Give a fake of that type (a subclass, or "
                f"unittest.mock.create_autospec(...)), or annotate the initializer with a "
                f"Protocol the fake satisfies"
            )


def _show(annotation: Any) -> str:
    from packflow.typecheck import format_type

    return format_type(annotation)


def _mismatch(annotation: Any, value: Any) -> str | None:
    from packflow.valuecheck import compile_checker

    try:
        checker = compile_checker(annotation)
    except Exception:  # an annotation the value checker cannot read is not checked
        return None
    problem = checker(value)
    if problem is None:
        return None
    return problem if problem else f"got {describe(value)}"


def initializers_to_run(graph: StageGraph, fakes: Mapping[str, Any]) -> list[Initializer]:
    """The initializers to run when ``fakes`` stand in for some resources, in order.

    A faked initializer does not run, nor does one whose results only ever fed faked
    ones. Initializers that nothing asks for (run for their side effects) still run.
    """
    if not fakes:
        return list(graph.initializers)
    by_name = {init.name: init for init in graph.initializers}
    wanted_by: dict[str, set[str]] = {name: set() for name in by_name}
    for init in graph.initializers:
        for dep in init.requires:
            if dep in wanted_by:
                wanted_by[dep].add(init.name)
    roots = {name for stage in graph.stages for name in stage.injected if name in by_name}
    roots |= {name for name, users in wanted_by.items() if not users}
    needed: set[str] = set()
    todo = [name for name in roots if name not in fakes]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo += [dep for dep in by_name[name].requires if dep in by_name and dep not in fakes]
    return [init for init in graph.initializers if init.name in needed]


def run_initializers(
    graph: StageGraph,
    *,
    config: Any,
    logger: logging.Logger,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the graph's initializers in dependency order and return the resources.

    ``overrides`` supplies resources by name instead of running their initializers
    (test doubles); initializers that only fed those are skipped too.

    Raises
    ------
    InferenceBackendInitializationError
        When an initializer raises; the original exception is chained.
    """
    given = dict(overrides or {})
    available: dict[str, Any] = {"config": config, "logger": logger, **given}
    resources: dict[str, Any] = {}
    for init in initializers_to_run(graph, given):
        available[init.name] = resources[init.name] = _call_initializer(
            init, available, graph.name
        )
    for name, value in given.items():
        resources[name] = value
    return {name: resources[name] for name in graph.resource_names if name in resources}


def _call_initializer(init: Initializer, available: Mapping[str, Any], pipeline: str) -> Any:
    kwargs = {name: available[name] for name in init.requires}
    try:
        if init.info.is_async:
            from packflow.runtime.aio import run_blocking

            # On packflow's loop, where the plain calls' async steps run too, so that a
            # client it makes serves them (see packflow.runtime.aio).
            return run_blocking(init.func(**kwargs))
        return init.func(**kwargs)
    except Exception as exc:
        raise InferenceBackendInitializationError(
            f"pipeline {pipeline!r}: initializer `{init.name}` ({init.info.location}) "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc
