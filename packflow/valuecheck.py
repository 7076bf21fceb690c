"""Run-time value checks: does a value that arrived fit its annotation?

Used with ``runtime_checks=True``: a checker is compiled once per stage from the stage's
annotation (:func:`compile_checker`), then called on every value that passes. Nothing
here runs unless run-time checks are on.

What is checked
---------------
- Classes with ``isinstance`` (the numeric tower holds: an ``int`` fits ``float``);
  ``None``, ``Literal`` values, ``NewType`` (as its supertype), callables.
- Containers that hold their items (``list``, ``tuple``, ``set``, ``frozenset``,
  ``deque``, ``dict`` and any ``Sequence``/``Mapping``/``Set``) are checked *fully*,
  every element, key and value, so a batch of records is checked record by record.
  Iterators and generators are only checked to be iterable: looking inside would
  consume them.
- ``TypedDict``: a dict with every required key, each present key's value checked.
- ``type[C]``: a class that is ``C`` or a subclass. Type aliases (``TypeAliasType``,
  recursive ones included) are checked as their value, expanded on first use.
- numpy arrays: the dtype against the annotation's dtype or union of dtypes
  (``np.issubdtype``) and, when the annotation spells a fixed shape
  (``np.ndarray[tuple[int, int], ...]``), the number of dimensions. The elements of an
  array are never visited, so a large array costs the same as a small one.
- ``Any``, unsolved ``TypeVar``\\ s without a bound and constructs the type engine
  cannot interpret accept every value.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import sys
import typing
from collections.abc import Callable
from typing import Any

import typing_extensions as te

# The normalized type nodes are shared with the static engine so that both read an
# annotation the same way (packflow._types.model, a private module of public names).
from packflow._types.model import (
    AliasT,
    AnyT,
    CallableT,
    ClsT,
    LiteralT,
    NeverT,
    NewTypeT,
    Node,
    TupleT,
    TypedDictT,
    TypeGuardT,
    TypeVarT,
    TypeVarTupleT,
    UnionT,
    UnknownT,
    normalize,
)

__all__ = ["Checker", "compile_checker", "mismatch"]

#: A compiled check: ``None`` when the value fits, else a short description.
Checker = Callable[[Any], "str | None"]

_Compiled = Callable[[Any], "str | None"] | None  # None: accepts everything

_REPR_LIMIT = 40
_PROMOTED: dict[Any, tuple[type, ...]] = {float: (int,), complex: (int, float)}
# Containers that can be walked without being consumed.
_REIFIED = (list, tuple, set, frozenset, cabc.Sequence, cabc.Set, cabc.KeysView, cabc.ValuesView)


def _accept(value: Any) -> str | None:
    return None


def compile_checker(annotation: Any) -> Checker:
    """Build, once, a function that checks values against ``annotation``.

    Parameters
    ----------
    annotation
        A type annotation, e.g. a stage's data parameter type.

    Returns
    -------
    Checker
        A function returning ``None`` when a value fits and otherwise a short
        description of what arrived, e.g.
        ``"element 3 of list: expected int, got str ('x')"``.

    Examples
    --------
    >>> check = compile_checker(list[dict[str, int]])
    >>> check([{"a": 1}]) is None
    True
    >>> check([{"a": 1}, {"a": "x"}])
    "element 1 of list: value of key 'a': expected int, got str ('x')"
    """
    try:
        return _compile_cached(annotation)
    except TypeError:  # unhashable annotation metadata: compile without the cache
        return _compile_top(annotation)


@functools.lru_cache(maxsize=1024)
def _compile_cached(annotation: Any) -> Checker:
    return _compile_top(annotation)


def _compile_top(annotation: Any) -> Checker:
    compiled = _compile(normalize(annotation))
    return compiled if compiled is not None else _accept


def mismatch(value: Any, annotation: Any) -> str | None:
    """Describe how ``value`` does not fit ``annotation``, or ``None`` when it fits.

    Compiles (and caches) a checker on each call; prefer :func:`compile_checker` for a
    check that runs many times.

    Examples
    --------
    >>> mismatch([1, 2, "x"], list[int])
    "element 2 of list: expected int, got str ('x')"
    >>> mismatch([1, 2], list[float]) is None
    True
    """
    return compile_checker(annotation)(value)


def _show(value: Any) -> str:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return f"ndarray of {value.dtype} with shape {value.shape}"
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return f"{type(value).__name__} ({text})" if value is not None else "None"


def _expected(node: Node, value: Any) -> str:
    return f"expected {node}, got {_show(value)}"


def _compile(node: Node) -> _Compiled:
    if isinstance(node, AnyT | UnknownT):
        return None
    if isinstance(node, TypeVarT):
        return _compile_typevar(node)
    if isinstance(node, NeverT):
        return lambda value: f"expected no value (Never), got {_show(value)}"
    if isinstance(node, NewTypeT):
        return _compile(node.supertype)
    if isinstance(node, AliasT):
        return _compile_alias(node)
    if isinstance(node, UnionT):
        return _compile_union(node)
    if isinstance(node, LiteralT):
        kind, literal = node.kind, node.value

        def check_literal(value: Any) -> str | None:
            if type(value) is kind and value == literal:
                return None
            return _expected(node, value)

        return check_literal
    if isinstance(node, TupleT):
        return _compile_tuple(node)
    if isinstance(node, TypeGuardT):
        return _compile(ClsT(bool))  # at run time a type guard returns a bool
    if isinstance(node, TypedDictT):
        return _compile_typeddict(node)
    if isinstance(node, CallableT):
        return lambda value: None if callable(value) else _expected(node, value)
    if isinstance(node, ClsT):
        return _compile_class(node)
    return None


def _compile_alias(node: AliasT) -> _Compiled:
    try:
        return _compile_alias_cached(node)
    except TypeError:  # unhashable annotation metadata
        return _lazy_alias(node)


@functools.lru_cache(maxsize=256)
def _compile_alias_cached(node: AliasT) -> _Compiled:
    return _lazy_alias(node)


def _lazy_alias(node: AliasT) -> _Compiled:
    # A recursive alias names itself: compiling its value eagerly would never end, so
    # the value is compiled on first use, and the cache hands the inner reference this
    # same checker.
    compiled: list[_Compiled] = []

    def check_alias(value: Any) -> str | None:
        if not compiled:
            compiled.append(_compile(node.value()))
        check = compiled[0]
        return None if check is None else check(value)

    return check_alias


def _compile_typevar(node: TypeVarT) -> _Compiled:
    constraints = getattr(node.var, "__constraints__", ())
    if constraints:
        return _compile(normalize(typing.Union[constraints]))  # noqa: UP007
    bound = getattr(node.var, "__bound__", None)
    return _compile(normalize(bound)) if bound is not None else None


def _compile_union(node: UnionT) -> _Compiled:
    members = [_compile(m) for m in node.members]
    if any(m is None for m in members):
        return None
    checks = [m for m in members if m is not None]

    def check_union(value: Any) -> str | None:
        problems = []
        for check in checks:
            problem = check(value)
            if problem is None:
                return None
            problems.append(problem)
        # One member was the right kind of value but failed inside (a dict for the
        # TypedDict of ``Reading | None``): where it failed is what helps.
        inside = [problem for problem in problems if not problem.startswith("expected ")]
        return inside[0] if len(inside) == 1 else _expected(node, value)

    return check_union


def _compile_tuple(node: TupleT) -> _Compiled:
    if node.variadic:
        item = _compile(node.items[0])

        def check_variadic(value: Any) -> str | None:
            if not isinstance(value, tuple):
                return _expected(node, value)
            if item is not None:
                for index, element in enumerate(value):
                    problem = item(element)
                    if problem is not None:
                        return f"item {index} of tuple: {problem}"
            return None

        return check_variadic
    if node.star is not None:
        return _compile_unbounded_tuple(node, node.star)
    items = [_compile(i) for i in node.items]
    size = len(items)

    def check_fixed(value: Any) -> str | None:
        if not isinstance(value, tuple):
            return _expected(node, value)
        if len(value) != size:
            return f"expected {node} ({size} items), got a tuple of {len(value)} items"
        for index, (check, element) in enumerate(zip(items, value, strict=True)):
            if check is not None:
                problem = check(element)
                if problem is not None:
                    return f"item {index} of tuple: {problem}"
        return None

    return check_fixed


def _compile_unbounded_tuple(node: TupleT, star: int) -> _Compiled:
    # ``tuple[int, *tuple[str, ...], float]``: the items around the unpacked part are
    # checked in place, those in between against its type (any number of them).
    spread = node.items[star]
    middle = None if isinstance(spread, TypeVarTupleT) else _compile(spread)
    before = [_compile(i) for i in node.items[:star]]
    after = [_compile(i) for i in node.items[star + 1 :]]
    fewest = len(before) + len(after)

    def check_unbounded(value: Any) -> str | None:
        if not isinstance(value, tuple):
            return _expected(node, value)
        if len(value) < fewest:
            return f"expected {node} (at least {fewest} items), got a tuple of {len(value)} items"
        tail = len(value) - len(after)
        checks = [*before, *([middle] * (tail - len(before))), *after]
        for index, (check, element) in enumerate(zip(checks, value, strict=True)):
            if check is not None:
                problem = check(element)
                if problem is not None:
                    return f"item {index} of tuple: {problem}"
        return None

    return check_unbounded


def _compile_typeddict(node: TypedDictT) -> _Compiled:
    fields = [(key, _compile(tp), required) for key, tp, required in node.fields]

    def check_typeddict(value: Any) -> str | None:
        if not isinstance(value, dict):
            return _expected(node, value)
        for key, check, required in fields:
            if key not in value:
                if required:
                    return f"expected {node}: key {key!r} is missing"
                continue
            if check is not None:
                problem = check(value[key])
                if problem is not None:
                    return f"value of key {key!r}: {problem}"
        return None

    return check_typeddict


def _compile_class(node: ClsT) -> _Compiled:
    origin = node.origin
    if origin is object:
        return None
    np = sys.modules.get("numpy")
    if np is not None and isinstance(origin, type) and issubclass(origin, np.ndarray):
        return _compile_array(node, np)
    accepted = _accepted_classes(origin)
    if accepted is None:
        return _compile_protocol(node)
    args = node.args
    if origin is type and args and isinstance(args[0], ClsT) and args[0].origin is not object:
        return _compile_class_object(node, args[0].origin)
    if args and isinstance(origin, type) and issubclass(origin, cabc.Mapping):
        return _compile_mapping(node, accepted)
    element = _element_checker(origin, args)
    container = str(node).split("[", 1)[0]

    def check_instance(value: Any) -> str | None:
        if not isinstance(value, accepted):
            return _expected(node, value)
        if (
            element is not None
            and isinstance(value, _REIFIED)
            and not isinstance(value, str | bytes | bytearray)
        ):
            for index, item in enumerate(value):
                problem = element(item)
                if problem is not None:
                    return f"element {index} of {container}: {problem}"
        return None

    return check_instance


def _compile_class_object(node: ClsT, base: Any) -> _Compiled:
    if not isinstance(base, type):
        return None

    def check_class_object(value: Any) -> str | None:
        if isinstance(value, type) and issubclass(value, base):
            return None
        return _expected(node, value)

    return check_class_object


def _accepted_classes(origin: Any) -> tuple[type, ...] | None:
    if origin is type(None):
        return (type(None),)
    if getattr(origin, "_is_protocol", False) and not getattr(
        origin, "_is_runtime_protocol", False
    ):
        return None
    if not isinstance(origin, type):
        return (object,)
    return (origin, *_PROMOTED.get(origin, ()))


def _compile_protocol(node: ClsT) -> _Compiled:
    try:
        members = sorted(te.get_protocol_members(node.origin))
    except TypeError:
        return None

    def check_protocol(value: Any) -> str | None:
        missing = [m for m in members if not hasattr(value, m)]
        if missing:
            return f"{_expected(node, value)}, which lacks {', '.join(missing)}"
        return None

    return check_protocol


def _element_checker(origin: Any, args: tuple[Node, ...]) -> _Compiled:
    if not args or not isinstance(origin, type) or not issubclass(origin, cabc.Iterable):
        return None
    if issubclass(origin, cabc.Iterator):
        return None  # walking an iterator would consume it
    return _compile(args[0])


def _compile_mapping(node: ClsT, accepted: tuple[type, ...]) -> _Compiled:
    key_check = _compile(node.args[0])
    value_check = _compile(node.args[1]) if len(node.args) > 1 else None
    if key_check is None and value_check is None:
        return lambda value: None if isinstance(value, accepted) else _expected(node, value)

    def check_mapping(value: Any) -> str | None:
        if not isinstance(value, accepted) or not isinstance(value, cabc.Mapping):
            return _expected(node, value)
        for key, item in value.items():
            if key_check is not None:
                problem = key_check(key)
                if problem is not None:
                    return f"key {key!r}: {problem}"
            if value_check is not None:
                problem = value_check(item)
                if problem is not None:
                    return f"value of key {key!r}: {problem}"
        return None

    return check_mapping


def _compile_array(node: ClsT, np: Any) -> _Compiled:
    dtype_node = node.args[0] if node.args else AnyT()
    if isinstance(dtype_node, TypeVarT):
        bound = getattr(dtype_node.var, "__bound__", None)
        dtype_node = normalize(bound) if bound is not None else AnyT()
    options = dtype_node.members if isinstance(dtype_node, UnionT) else (dtype_node,)
    scalars = tuple(o.origin for o in options if isinstance(o, ClsT))
    if len(scalars) != len(options):
        scalars = ()  # Any or a dtype the engine cannot read: every dtype fits
    ndim = _fixed_ndim(node.raw, np)
    array_class = node.origin

    def check_array(value: Any) -> str | None:
        if not isinstance(value, array_class):
            return _expected(node, value)
        if scalars and not any(np.issubdtype(value.dtype, s) for s in scalars):
            return f"expected {node}, got an ndarray of dtype {value.dtype}"
        if ndim is not None and value.ndim != ndim:
            return f"expected a {ndim}-D array, got {value.ndim}-D with shape {value.shape}"
        return None

    return check_array


def _fixed_ndim(raw: Any, np: Any) -> int | None:
    if typing.get_origin(raw) is not np.ndarray:
        return None
    args = typing.get_args(raw)
    if len(args) != 2:
        return None
    shape = args[0]
    if typing.get_origin(shape) is not tuple:
        return None
    dims = typing.get_args(shape)
    if any(d is Ellipsis for d in dims):
        return None
    return len(dims)
