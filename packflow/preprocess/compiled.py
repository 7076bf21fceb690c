"""The compiled fast path: Python source generated once per plan, then executed.

The hot loop becomes a flat sequence of dict lookups with the keys as constants. It only
handles the common case (every row a plain ``dict``, every requested path there and
reaching a plain value, no ambiguous key); anything else raises inside the loop, which
hands the row to the reference path (:mod:`packflow.preprocess.reference`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from packflow.preprocess.plan import SCALARS, Path, Plan
from packflow.preprocess.reference import CleanKeys, is_branch
from packflow.records import Records

__all__ = [
    "Bail",
    "compile_loop",
    "compiled_or_none",
    "fast_body",
    "fast_namespace",
    "first_sources",
    "indent",
    "nested_literal",
    "unknown_keys",
]


class Bail(Exception):
    """Raised inside the compiled fast path to hand a row to the reference path."""


class _Source:
    """Python source for one specialised loop, built line by line."""

    def __init__(self) -> None:
        # A dict subclass may define __missing__ (defaultdict inserts the key), so no
        # container is indexed before it is known to be a plain dict.
        self.lines: list[str] = ["if r.__class__ is not dict: raise Bail"]
        self.variables: dict[Path, str] = {(): "r"}

    def container(self, path: Path) -> str:
        """The variable holding the dict at ``path``; emits the lookups on first use."""
        if path not in self.variables:
            parent = self.container(path[:-1])
            name = f"d{len(self.variables)}"
            self.variables[path] = name
            self.lines.append(f"{name} = {parent}[{path[-1]!r}]")
            self.lines.append(f"if {name}.__class__ is not dict: raise Bail")
        return self.variables[path]


def fast_body(
    plan: Plan, paths: Sequence[Path], *, gather_keys: bool = False
) -> tuple[list[str], list[str]]:
    """Lines that check one row ``r`` and expressions that read each of ``paths``.

    Shared by the records and numpy loops. Everything the fast path cannot settle on
    its own raises (``Bail``, or whatever a lookup raises) so that the reference path
    takes the row.

    With ``gather_keys`` the keys of the dicts that the collision check covers are
    added to the set behind ``_see`` instead of being checked row by row: the caller
    checks them once for the batch (:func:`unknown_keys`). ``set.update`` with a dict
    reads the keys' stored hashes in C, where asking ``set.issuperset(dict)`` for each
    row builds and frees a temporary set (Python 3.11), which cost more than reading
    the features.
    """
    source = _Source()
    delimiter = plan.delimiter
    clean_tests = []
    if plan.checked_paths:
        parents = dict.fromkeys(
            path[:depth]
            for path in map(plan.split, plan.checked_paths)
            for depth in range(len(path))
        )
        containers = [source.container(p) for p in parents]
        if gather_keys:
            source.lines.append(f"_see({', '.join(containers)})")
        else:
            clean_tests = [f"_clean({c})" for c in containers]
    expressions = []
    for number, path in enumerate(paths):
        parent = source.container(path[:-1])
        read = f"{parent}[{path[-1]!r}]"
        if plan.flatten:
            if plan.check_collisions and len(path) > 1:
                # Keys that join several segments would make this flat key ambiguous.
                tests = [
                    f"{delimiter.join(path[start:end])!r} in {source.container(path[:start])}"
                    for start in range(len(path) - 1)
                    for end in range(start + 2, len(path) + 1)
                ]
                source.lines.append(f"if {' or '.join(tests)}: raise Bail")
            value = f"v{number}"
            source.lines.append(f"{value} = {read}")
            source.lines.append(
                f"if {value}.__class__ not in SCALARS and is_branch({value}): raise Bail"
            )
            expressions.append(value)
        else:
            expressions.append(read)
    if not clean_tests:
        return source.lines, expressions
    return [*source.lines, f"if not ({' and '.join(clean_tests)}): raise Bail"], expressions


def nested_literal(plan: Plan, expressions: Sequence[str]) -> str:
    tree: dict[str, Any] = {}
    for feature, expression in zip(plan.features, expressions, strict=True):
        node = tree
        path = plan.split(feature)
        for segment in path[:-1]:
            node = node.setdefault(segment, {})
        node[path[-1]] = expression

    def render(node: dict[str, Any]) -> str:
        items = (
            f"{key!r}: {render(value) if isinstance(value, dict) else value}"
            for key, value in node.items()
        )
        return "{" + ", ".join(items) + "}"

    return render(tree)


def compiled_or_none(
    compile_loop: Callable[[], Callable[[Records], Any] | None],
) -> Callable[[Records], Any] | None:
    """The compiled loop, or ``None`` (the reference path) when Python cannot compile it.

    A name hundreds of keys deep gives a dict literal nested past the parser's limit;
    the reference path handles it all the same.
    """
    try:
        return compile_loop()
    except (SyntaxError, RecursionError, MemoryError):
        return None


def compile_loop(source: str, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    # Bind every name the loop uses as a keyword-only default: the loop then reads
    # them as locals, which is measurably faster than globals or builtins per record.
    names = [*namespace, "dict", "len", "enumerate"]
    header = f"def {name}(records):"
    assert header in source
    bound = ", ".join(f"{n}={n}" for n in names)
    source = source.replace(header, f"def {name}(records, *, {bound}):", 1)
    code = compile(source, f"<packflow preprocessor {name}>", "exec")
    exec(code, namespace)
    function: Callable[..., Any] = namespace[name]
    return function


def fast_namespace(plan: Plan, clean: CleanKeys, slow: Callable[..., Any]) -> dict[str, Any]:
    lists = plan.flatten_lists
    return {
        "Bail": Bail,
        "SCALARS": SCALARS,
        "_clean": clean.keys.issuperset,
        "is_branch": lambda value: is_branch(value, lists),
        "_slow": slow,
    }


def unknown_keys(clean: CleanKeys, seen: set[Any]) -> bool:
    """Whether keys gathered by a loop built with ``gather_keys`` need the reference path.

    Keys already known clean pass; new keys that cannot hold the delimiter are learnt;
    any new key containing it sends the batch to the reference path, which names the
    first record holding one.
    """
    if clean.keys.issuperset(seen):
        return False
    new = seen - clean.keys
    delimiter = clean.plan.delimiter
    if any(isinstance(key, str) and delimiter in key for key in new):
        return True
    if len(clean.keys) < clean.LIMIT:
        clean.keys.update(new)
    return False


def indent(lines: Sequence[str], depth: int) -> str:
    return "".join(f"{'    ' * depth}{line}\n" for line in lines)


def first_sources(plan: Plan) -> list[Path]:
    return [plan.split(names[0]) if names else () for names in plan.candidates]
