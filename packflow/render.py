"""Render a checked stage graph as text or Mermaid, with the type on every edge.

Used by ``packflow check`` and ``packflow graph``. Edges come from the type checker's
report when the check produced one; otherwise they are read from the annotations (the
same ones the checker reads), so the picture never depends on running user code.

A composition (``a >> b``) is drawn as its parts in order, each part's boxes labelled by
part, with a *seam* arrow from one part's last stage to the next part's preprocessor
carrying the type the upstream part returns.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from packflow.checker import resolve_hints
from packflow.exceptions import PackflowError
from packflow.graph import CheckedComposition, CheckedPipeline, FunctionInfo, Stage
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
    #: The part of a composition the box belongs to (``None`` outside compositions).
    part: str | None = None


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
    #: For a composition's seam: ``"a >> b"``, the two parts it joins.
    seam: str | None = None

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


Checked = CheckedPipeline | CheckedComposition


def _part_nodes(checked: CheckedPipeline) -> list[Node]:
    """One pipeline's boxes, from ``inputs`` to ``outputs``."""
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


def _composed(checked: Checked) -> bool:
    # A composition has two parts at least; a single pipeline is one part.
    return len(checked.parts) > 1


def _parts(checked: Checked) -> tuple[tuple[str | None, CheckedPipeline], ...]:
    if _composed(checked):
        return checked.parts
    return ((None, checked.parts[0][1]),)


def _qualified(part: str | None, key: str) -> str:
    return f"{part}.{key}" if part is not None and key not in ("inputs", "outputs") else key


def graph_nodes(checked: Checked) -> list[Node]:
    """The boxes, in the order data flows through them.

    For a composition, every part's boxes in turn, keyed ``"<part>.<stage kind>"``
    (``"a.execute"``), between one ``inputs`` and one ``outputs``.
    """
    parts = _parts(checked)
    nodes: list[Node] = []
    for index, (part, part_checked) in enumerate(parts):
        for node in _part_nodes(part_checked):
            if node.key == "inputs" and index > 0:
                continue
            if node.key == "outputs" and index + 1 < len(parts):
                continue
            if node.key in ("inputs", "outputs"):
                nodes.append(node)
            else:
                nodes.append(attrs.evolve(node, key=_qualified(part, node.key), part=part))
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


def _part_edges(checked: CheckedPipeline) -> list[Edge]:
    """One pipeline's arrows, from ``inputs`` to ``outputs``."""
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


def graph_edges(checked: Checked) -> list[Edge]:
    """The arrows between :func:`graph_nodes`, each with its type.

    For a composition, a part's arrow to ``outputs`` becomes the *seam* arrow to the
    next part's preprocessor (``seam`` names the two parts), carrying what the upstream
    part returns; the next part's own arrow from ``inputs`` is left out.
    """
    parts = _parts(checked)
    edges: list[Edge] = []
    for index, (part, part_checked) in enumerate(parts):
        following = parts[index + 1][0] if index + 1 < len(parts) else None
        for edge in _part_edges(part_checked):
            if edge.source == "inputs" and index > 0:
                continue
            source = _qualified(part, edge.source)
            if edge.target == "outputs" and following is not None:
                edges.append(
                    attrs.evolve(
                        edge,
                        source=source,
                        target=_qualified(following, "preprocess"),
                        # What the next part receives is what this one returns.
                        expected=None,
                        seam=f"{part} >> {following}",
                    )
                )
                continue
            edges.append(attrs.evolve(edge, source=source, target=_qualified(part, edge.target)))
    return edges


def _initializer_lines(checked: CheckedPipeline) -> list[str]:
    lines = []
    for init in checked.graph.initializers:
        needs = f" (needs {', '.join(init.requires)})" if init.requires else ""
        returns = _show(_hints(init.info), "return")
        location = _short_location(init.info.location)
        lines.append(f"  {init.name}: {returns}  <- `{init.name}` {location}{needs}")
    return lines


def render_text(checked: Checked) -> str:
    """The stage graph as plain text: one box per line, the type on each arrow.

    A composition shows each part under a ``part 'a'`` heading, the seams between parts
    marked, and each part's resources.
    """
    nodes = graph_nodes(checked)
    edges = {(edge.source, edge.target): edge for edge in graph_edges(checked)}
    if _composed(checked):
        names = ", ".join(name for name, _ in checked.parts)
        lines = [f"composition {checked.name!r}: {len(checked.parts)} parts ({names})"]
    else:
        lines = [f"pipeline {checked.name!r}"]
    part: str | None = None
    for index, node in enumerate(nodes):
        if node.part != part:
            part = node.part
            if part is not None:
                lines.append(f"  part {part!r}")
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
            seam = f"   (seam {edge.seam})" if edge is not None and edge.seam else ""
            lines.append(f"      |  {label}{seam}{mark}")
            lines.append("      v")
    for part_name, part_checked in _parts(checked):
        resources = _initializer_lines(part_checked)
        if not resources:
            continue
        whose = f" of part {part_name!r}" if part_name is not None else ""
        lines += ["", f"resources{whose} (initializers, run once per instance):", *resources]
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # Mermaid labels are quoted; a quote inside one must be written as an entity.
    return text.replace('"', "#quot;")


def _mermaid_ids(checked: Checked) -> dict[str, str]:
    """Node keys as Mermaid ids: part names may hold characters Mermaid refuses."""
    if not _composed(checked):
        return {}
    index = {part: position for position, (part, _) in enumerate(checked.parts)}
    return {
        node.key: f"p{index[node.part]}_{node.key.rpartition('.')[2]}"
        for node in graph_nodes(checked)
        if node.part is not None and node.key not in ("inputs", "outputs")
    }


def render_mermaid(checked: Checked) -> str:
    """The stage graph as a Mermaid ``flowchart``; paste it into Markdown.

    A composition draws each part as a ``subgraph``, the seams as arrows between them.
    """
    ids = _mermaid_ids(checked)

    def node_id(key: str) -> str:
        return ids.get(key, key)

    lines = ["flowchart TD"]
    nodes = graph_nodes(checked)
    parts = _parts(checked)
    for index, (part, part_checked) in enumerate(parts):
        indent = "    "
        if part is not None:
            lines.append(f'    subgraph p{index} ["{_mermaid_text(f"part {part}")}"]')
            indent = "        "
        prefix = f"p{index}_" if part is not None else ""
        for node in nodes:
            if node.part != part:
                continue
            lines.append(indent + _mermaid_node(node_id(node.key), node))
        for init in part_checked.graph.initializers:
            returns = _show(_hints(init.info), "return")
            text = _mermaid_text(f"{init.name}: {returns}")
            lines.append(f'{indent}{prefix}res_{init.name}[/"{text}"/]')
        if part is not None:
            lines.append("    end")
    if _composed(checked):
        for node in nodes:
            if node.key in ("inputs", "outputs"):
                lines.append("    " + _mermaid_node(node.key, node))
    for edge in graph_edges(checked):
        arrow = "-->" if edge.ok else "-.-x"
        if edge.seam:
            arrow = "==>" if edge.ok else "-.-x"
        label = _mermaid_text(edge.label if not edge.seam else f"{edge.label} (seam)")
        lines.append(f'    {node_id(edge.source)} {arrow}|"{label}"| {node_id(edge.target)}')
    for index, (part, part_checked) in enumerate(parts):
        prefix = f"p{index}_" if part is not None else ""
        resources = {init.name for init in part_checked.graph.initializers}
        for stage in part_checked.graph.stages:
            for name in stage.injected:
                if name in resources:
                    target = node_id(_qualified(part, _stage_key(stage)))
                    lines.append(f"    {prefix}res_{name} -.-> {target}")
    return "\n".join(lines)


def _mermaid_node(node_id: str, node: Node) -> str:
    label = node.label.replace(" `", ": ").replace("`", "")
    if node.injected:
        label += "<br/>" + "<br/>".join(f"+ {item}" for item in node.injected)
    text = _mermaid_text(label)
    # Rounded ends for where data enters and leaves, boxes for the steps between.
    shape = f'(["{text}"])' if node.key in ("inputs", "outputs") else f'["{text}"]'
    return f"{node_id}{shape}"
