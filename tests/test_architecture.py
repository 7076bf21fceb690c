"""The layering of the package, read from its source: every import points down, no circles,
and no module reaches into another module's private names.

The table below is the one docs/architecture.md shows (a test there checks that they
agree). Every import counts: at module level, inside functions (imported late for import
time) and under ``TYPE_CHECKING``. A new module gets a row; an arrow that points up is a
design problem to solve (a hook, a protocol, a move), never a row to add here.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "packflow"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"

#: Layer of each module (a pattern ending in ``.*`` covers a package's modules), bottom
#: to top. A module may import modules of its own layer or below.
LAYERS: dict[str, str] = {
    # 0: leaves
    "packflow._text": "0",
    "packflow.exceptions": "0",
    "packflow.log": "0",
    "packflow._lazy": "0",
    "packflow._version": "0",
    # 1: values and rules
    "packflow._types.*": "1",
    "packflow.typecheck": "1",
    "packflow.valuecheck": "1",
    "packflow.converter": "1",
    "packflow.config": "1",
    "packflow.records": "1",
    "packflow.metrics": "1",
    "packflow.outputs": "1",
    # 2: preprocessing, and reading a project's manifest
    "packflow.preprocess.*": "2",
    "packflow.projects.manifest": "2",
    # 3: the checked definition
    "packflow.graph": "3",
    "packflow.checker": "3",
    # 4: the runtime
    "packflow.runtime.*": "4",
    "packflow.surface": "4",
    # 4b: parts and shipping
    "packflow.parts": "4b",
    "packflow.pickling": "4b",
    "packflow.shipping": "4b",
    # 4c: composition, over parts only
    "packflow.compose": "4c",
    # 5: front ends
    "packflow.pipeline": "5",
    "packflow.backend": "5",
    "packflow.prebuilt.*": "5",
    "packflow.utils.*": "5",
    # 6: loading and engines
    "packflow.loaders": "6",
    "packflow.ray": "6",
    "packflow.serve.*": "6",
    "packflow.streams.*": "6",
    "packflow.observe.*": "6",
    # 7: projects
    "packflow.projects.*": "7",
    "packflow.project": "7",
    # 8: the shell and the test helpers
    "packflow.cli": "8",
    "packflow.render": "8",
    "packflow.__main__": "8",
    "packflow.testing.*": "8",
    # 9: the top module only re-exports
    "packflow": "9",
}
ORDER = ["0", "1", "2", "3", "4", "4b", "4c", "5", "6", "7", "8", "9"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str | None:
    if module in LAYERS:
        return LAYERS[module]
    best: tuple[int, str] | None = None
    for pattern, layer in LAYERS.items():
        if pattern.endswith(".*"):
            prefix = pattern[:-2]
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return None if best is None else best[1]


def imports_of(module: str, path: Path) -> list[tuple[str, str, int, list[str]]]:
    """(target module, kind: top | late | typing, line, names imported) of every import."""
    found: list[tuple[str, str, int, list[str]]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def resolve(node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and kind == "top":
                child_kind = "late"
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for grandchild in child.body:
                    visit_one(grandchild, "typing")
                for grandchild in child.orelse:
                    visit_one(grandchild, kind)
                continue
            visit_one(child, child_kind)

    def visit_one(child: ast.AST, kind: str) -> None:
        if isinstance(child, ast.ImportFrom):
            source = resolve(child)
            if source.startswith("packflow"):
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    target = sub if sub in MODULES else source
                    found.append((target, kind, child.lineno, [alias.name]))
        elif isinstance(child, ast.Import):
            for alias in child.names:
                if alias.name.startswith("packflow"):
                    found.append((alias.name, kind, child.lineno, []))
        if not isinstance(child, (ast.Import, ast.ImportFrom)):
            visit(child, kind)

    visit(ast.parse(path.read_text(encoding="utf-8")), "top")
    return found


EDGES = {
    module: [edge for edge in imports_of(module, path) if edge[0] != module]
    for module, path in MODULES.items()
}


def test_every_module_has_a_layer() -> None:
    missing = sorted(module for module in MODULES if layer_of(module) is None)
    assert not missing, f"add these modules to LAYERS (and docs/architecture.md): {missing}"


def test_every_import_points_down_or_across() -> None:
    upward = []
    for module, edges in EDGES.items():
        mine = layer_of(module)
        if mine is None:
            continue
        for target, kind, line, _ in edges:
            theirs = layer_of(target)
            if theirs is not None and ORDER.index(theirs) > ORDER.index(mine):
                upward.append(f"{module}:{line} ({mine}) -> {target} ({theirs}), {kind}")
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_module_imports_the_top_module() -> None:
    offenders = [
        f"{module}:{line}"
        for module, edges in EDGES.items()
        for target, _, line, _ in edges
        if target == "packflow" and module != "packflow"
    ]
    assert not offenders


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            connect(node)
    return found


def test_there_is_no_import_circle_of_any_kind() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, edges in EDGES.items():
        graph[module]
        for target, _, _, _ in edges:
            # A package's __init__ importing its own submodules is how a package
            # re-exports; only circles between distinct modules count.
            if not target.startswith(module + "."):
                graph[module].add(target)
                graph[target]
    assert strongly_connected(graph) == []


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_private_module(module: str) -> bool:
    return any(is_private(part) for part in module.split("."))


def test_no_underscore_name_is_imported_from_a_public_module() -> None:
    offenders = [
        f"{module}:{line} imports {name} from {target}"
        for module, edges in EDGES.items()
        for target, _, line, names in edges
        for name in names
        if is_private(name) and not is_private_module(target) and target in MODULES
    ]
    assert not offenders, "\n".join(offenders)


def private_members_defined(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, and attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.alias,)) and node.asname:
            names.add(node.asname)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if is_private(name)}


TREES = {module: ast.parse(path.read_text(encoding="utf-8")) for module, path in MODULES.items()}
DEFINED = {module: private_members_defined(tree) for module, tree in TREES.items()}
PACKFLOW_PRIVATE = set().union(*DEFINED.values())


def test_no_module_uses_a_private_member_another_module_defines() -> None:
    offenders = []
    for module, tree in TREES.items():
        own = DEFINED[module]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
                continue
            if node.attr in own or node.attr not in PACKFLOW_PRIVATE:
                continue  # its own member, or one of Python's (sys._getframe)
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            offenders.append(f"{module}:{node.lineno} uses .{node.attr}")
    assert not offenders, "\n".join(offenders)


def test_the_architecture_page_shows_this_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+)\. [^|]+ \| ([^|]+) \|", text, flags=re.MULTILINE)
    assert rows, "docs/architecture.md has no layer table"
    shown: dict[str, str] = {}
    for layer, modules in rows:
        for name in re.findall(r"`([\w./*]+)`", modules):
            dotted = "packflow" if name == "packflow" else "packflow." + name.rstrip("/")
            dotted = dotted.replace("/", ".")
            if name.endswith("/"):
                dotted += ".*"
            shown[dotted] = layer
    assert shown == LAYERS


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_parses_and_says_what_it_is_for(module: str) -> None:
    assert ast.get_docstring(TREES[module]), f"{module} has no module docstring"
