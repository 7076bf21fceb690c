"""Resources: run a graph's initializers, in dependency order, once per built instance."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from packflow.exceptions import InferenceBackendInitializationError
from packflow.graph import Initializer, StageGraph

__all__ = ["run_initializers"]


def run_initializers(
    graph: StageGraph,
    *,
    config: Any,
    logger: logging.Logger,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the graph's initializers in dependency order and return the resources.

    ``overrides`` supplies resources by name instead of running their initializers
    (used by tests that replace a model with a fake).

    Raises
    ------
    InferenceBackendInitializationError
        When an initializer raises; the original exception is chained.
    """
    available: dict[str, Any] = {"config": config, "logger": logger}
    resources: dict[str, Any] = {}
    given = dict(overrides or {})
    for init in graph.initializers:
        if init.name in given:
            value = given.pop(init.name)
        else:
            value = _call_initializer(init, available, graph.name)
        available[init.name] = value
        resources[init.name] = value
    return resources


def _call_initializer(init: Initializer, available: Mapping[str, Any], pipeline: str) -> Any:
    kwargs = {name: available[name] for name in init.requires}
    try:
        return init.func(**kwargs)
    except Exception as exc:
        raise InferenceBackendInitializationError(
            f"pipeline {pipeline!r}: initializer `{init.name}` ({init.info.location}) "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc
