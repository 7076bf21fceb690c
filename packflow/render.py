"""Render a checked stage graph as text or Mermaid, with the type on every edge.

Used by ``packflow check`` and ``packflow graph``. Edges come from the type checker's
report when the check produced one; otherwise they are read from the annotations (the
same ones the checker reads), so the picture never depends on running user code.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from packflow.checker import resolve_hints
from packflow.exceptions import PackflowError
from packflow.graph import CheckedPipeline, FunctionInfo, Stage
from packflow.records import Records
from packflow.typecheck import format_type

__all__ = ["Edge", "Node", "graph_edges", "graph_nodes", "render_mermaid", "render_text"]


@attrs.frozen
class Node:
    """A box in the picture: the input, the preprocessor, a stage or the output."""

    key: str
    label: str
    location: str | None = None
    #: Injected parameters as ``name: type``.
    injected: tuple[str, ...] = ()


@attrs.frozen
class Edge:
    """An arrow: what ``source`` hands to ``target``.

    ``produced`` is the type the source gives, ``expected`` the annotation the target
    declares (``None`` when it is the same text); ``ok`` is false for an edge the type
    checker rejected.
    """

    source: str
    target: str
    produced: str
    expected: str | None = None
    ok: bool = True

    @property
    def label(self) -> str:
        if self.expected is None or self.expected == self.produced:
            return self.produced
        return f"{self.produced} -> {self.expected}"


def _short_location(location: str) -> str:
    path, sep, line = location.rpartition(":")
    if not sep:
        return location
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return location
    return f"{relative if not relative.startswith('..') else path}:{line}"


def _hints(info: FunctionInfo) -> dict[str, Any]:
    # The checker's own resolution, so the picture shows what was checked.
    try:
        return resolve_hints(info, "stage")
    except PackflowError:
        return {}


def _show(hints: dict[str, Any], name: str) -> str:
    if name not in hints:
        return "Any"
    annotation = hints[name]
    if isinstance(annotation, str):
        return annotation
    try:
        return format_type(annotation)
    except Exception:
        return repr(annotation)


def _input_format(checked: CheckedPipeline) -> str:
    value = getattr(checked.config, "input_format", None)
    return str(getattr(value, "value", value)) if value is not None else "records"


def _stage_key(stage: Stage) -> str:
    return stage.kind.value


def graph_nodes(checked: CheckedPipeline) -> list[Node]:
    """The boxes, in the order data flows through them."""
    preprocess = Node("preprocess", f"preprocess ({_input_format(checked)})")
    nodes = [Node("inputs", "inputs"), preprocess]
    resources = {init.name: init for init in checked.graph.initializers}
    for stage in checked.graph.stages:
        hints = _hints(stage.info)
        injected = []
        for name in stage.injected:
            if name in hints:
                injected.append(f"{name}: {_show(hints, name)}")
            elif name in resources:
                injected.append(f"{name}: {_show(_hints(resources[name].info), 'return')}")
            else:
                injected.append(name)
        nodes.append(
            Node(
                _stage_key(stage),
                f"{stage.kind.value} `{stage.name}`",
                _short_location(stage.location),
                tuple(injected),
            )
        )
    nodes.append(Node("outputs", "outputs"))
    return nodes


def _report_edges(report: Any) -> list[Edge] | None:
    """The checker's edges (``TypeVar``\\ s solved), in the picture's terms."""
    edges = getattr(report, "edges", None)
    if not edges:
        return None
    converted = [Edge("inputs", "preprocess", format_type(Records))]
    for edge in edges:
        target = "outputs" if edge.target == "output" else str(edge.target)
        converted.append(
            Edge(str(edge.source), target, format_type(edge.type), format_type(edge.expected))
        )
    return converted


def graph_edges(checked: CheckedPipeline) -> list[Edge]:
    """The arrows between :func:`graph_nodes`, each with its type."""
    from_report = _report_edges(checked.report)
    if from_report is not None:
        return from_report
    stages = checked.graph.stages
    edges = [Edge("inputs", "preprocess", format_type(Records))]
    source = "preprocess"
    produced = format_type(checked.input_type)
    for stage in stages:
        hints = _hints(stage.info)
        edges.append(Edge(source, _stage_key(stage), produced, _show(hints, stage.data_param)))
        source = _stage_key(stage)
        produced = _show(hints, "return")
    edges.append(Edge(source, "outputs", produced, format_type(Records)))
    return edges


def _initializer_lines(checked: CheckedPipeline) -> list[str]:
    lines = []
    for init in checked.graph.initializers:
        needs = f" (needs {', '.join(init.requires)})" if init.requires else ""
        returns = _show(_hints(init.info), "return")
        location = _short_location(init.info.location)
        lines.append(f"  {init.name}: {returns}  <- `{init.name}` {location}{needs}")
    return lines


def render_text(checked: CheckedPipeline) -> str:
    """The stage graph as plain text: one box per line, the type on each arrow."""
    nodes = graph_nodes(checked)
    edges = {(edge.source, edge.target): edge for edge in graph_edges(checked)}
    lines = [f"pipeline {checked.graph.name!r}"]
    for index, node in enumerate(nodes):
        text = f"  [{node.label}]"
        if node.location:
            text += f"  {node.location}"
        lines.append(text)
        for injected in node.injected:
            lines.append(f"      + {injected}")
        if index + 1 < len(nodes):
            edge = edges.get((node.key, nodes[index + 1].key))
            label = edge.label if edge is not None else "?"
            mark = "" if edge is None or edge.ok else "   <-- does not fit"
            lines.append(f"      |  {label}{mark}")
            lines.append("      v")
    resources = _initializer_lines(checked)
    if resources:
        lines += ["", "resources (initializers, run once per instance):", *resources]
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # Mermaid labels are quoted; a quote inside one must be written as an entity.
    return text.replace('"', "#quot;")


def render_mermaid(checked: CheckedPipeline) -> str:
    """The stage graph as a Mermaid ``flowchart``; paste it into Markdown."""
    nodes = graph_nodes(checked)
    lines = ["flowchart TD"]
    for node in nodes:
        label = node.label.replace(" `", ": ").replace("`", "")
        if node.injected:
            label += "<br/>" + "<br/>".join(f"+ {item}" for item in node.injected)
        text = _mermaid_text(label)
        # Rounded ends for where data enters and leaves, boxes for the steps between.
        shape = f'(["{text}"])' if node.key in ("inputs", "outputs") else f'["{text}"]'
        lines.append(f"    {node.key}{shape}")
    for init in checked.graph.initializers:
        returns = _show(_hints(init.info), "return")
        lines.append(f'    res_{init.name}[/"{_mermaid_text(f"{init.name}: {returns}")}"/]')
    for edge in graph_edges(checked):
        arrow = "-->" if edge.ok else "-.-x"
        lines.append(f'    {edge.source} {arrow}|"{_mermaid_text(edge.label)}"| {edge.target}')
    for stage in checked.graph.stages:
        for name in stage.injected:
            if name in {init.name for init in checked.graph.initializers}:
                lines.append(f"    res_{name} -.-> {_stage_key(stage)}")
    return "\n".join(lines)
