"""The type model: every annotation normalized into one small node.

Internal to packflow (the static rules in :mod:`packflow._types.rules` and the run-time
checks in :mod:`packflow.valuecheck` both read annotations through it); users import
:func:`packflow.typecheck.format_type`, :func:`~packflow.typecheck.substitute` and
:func:`~packflow.typecheck.resolve_forward_refs`, which live here.

A node is a frozen attrs value compared by meaning, with the annotation the user wrote
kept in ``raw`` (not compared) so that a report shows their spelling.
"""

from __future__ import annotations

import builtins
import collections
import collections.abc as cabc
import contextlib
import enum
import functools
import re
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import typing_extensions as te


class Node:
    __slots__ = ()
    raw: Any


@attrs.frozen
class AnyT(Node):
    raw: Any = attrs.field(default=Any, eq=False)

    def __str__(self) -> str:
        return "Any"


@attrs.frozen
class NeverT(Node):
    raw: Any = attrs.field(default=te.Never, eq=False)

    def __str__(self) -> str:
        return "Never"


@attrs.frozen
class ClsT(Node):
    """A class, possibly with type arguments (bare generics carry ``Any`` arguments)."""

    origin: Any
    args: tuple[Node, ...] = ()
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        if self.origin is type(None):
            return "None"
        np = sys.modules.get("numpy")
        if np is not None and self.origin is np.ndarray:
            if not self.args or isinstance(self.args[0], AnyT):
                return "ndarray"
            return f"NDArray[{self.args[0]}]"
        name = class_name(self.origin)
        if not self.args:
            return name
        return f"{name}[{', '.join(map(str, self.args))}]"


@attrs.frozen
class UnionT(Node):
    members: tuple[Node, ...]
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        named = _numpy_union_name(self.raw)
        if named is not None:
            return named
        literals = [m for m in self.members if isinstance(m, LiteralT)]
        others = [str(m) for m in self.members if not isinstance(m, LiteralT)]
        parts = []
        if literals:
            parts.append(f"Literal[{', '.join(literal_repr(m.value) for m in literals)}]")
        # None reads best last, as in ``int | None``.
        parts.extend(sorted(others, key=lambda s: s == "None"))
        return " | ".join(parts)


def _numpy_union_name(raw: Any) -> str | None:
    # numpy.typing's unions expand to a dozen private protocols; users wrote the name.
    npt = sys.modules.get("numpy.typing")
    if npt is None or raw is None:
        return None
    for name in ("ArrayLike", "DTypeLike"):
        if raw is getattr(npt, name, None):
            return name
    return None


@attrs.frozen
class LiteralT(Node):
    value: Any
    kind: type
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"Literal[{literal_repr(self.value)}]"


def literal_repr(value: Any) -> str:
    # As written in the annotation: ``Literal[Color.RED]``, not ``<Color.RED: 1>``.
    if isinstance(value, enum.Enum):
        return f"{class_name(type(value))}.{value.name}"
    return repr(value)


@attrs.frozen
class TupleT(Node):
    items: tuple[Node, ...]
    variadic: bool
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        if self.variadic:
            return f"tuple[{self.items[0]}, ...]"
        if not self.items:
            return "tuple[()]"
        return f"tuple[{', '.join(map(str, self.items))}]"

    def element(self) -> Node:
        if self.variadic:
            return self.items[0]
        if not self.items:
            return NeverT()
        return make_union(self.items)


@attrs.frozen
class CallableT(Node):
    params: tuple[Node, ...] | None  # None: any parameters (``...``)
    ret: Node
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        params = "..." if self.params is None else f"[{', '.join(map(str, self.params))}]"
        return f"Callable[{params}, {self.ret}]"


@attrs.frozen
class TypedDictT(Node):
    cls: Any
    fields: tuple[tuple[str, Node, bool], ...]  # (key, type, required)
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        args = typing.get_args(self.raw)
        if not args:
            return class_name(self.cls)
        return f"{class_name(self.cls)}[{', '.join(map(format_type, args))}]"

    def field_map(self) -> dict[str, tuple[Node, bool]]:
        return {key: (node, required) for key, node, required in self.fields}


@attrs.frozen
class NewTypeT(Node):
    newtype: Any
    supertype: Node
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return str(getattr(self.newtype, "__name__", self.newtype))


@attrs.frozen
class TypeVarT(Node):
    var: Any
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return str(self.var.__name__)


@attrs.frozen
class AliasT(Node):
    """A ``TypeAliasType`` (PEP 695), or a name bound to its module (an old-style alias
    naming itself in quotes), expanded only when compared: it may be recursive."""

    alias: Any
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        if isinstance(self.raw, typing.ForwardRef):
            return self.raw.__forward_arg__
        origin = typing.get_origin(self.raw)
        if origin is None:
            return str(getattr(self.raw, "__name__", _fallback_repr(self.raw)))
        args = ", ".join(map(format_type, typing.get_args(self.raw)))
        return f"{getattr(origin, '__name__', _fallback_repr(origin))}[{args}]"

    def value(self) -> Node:
        try:
            return normalize(_alias_value(self.alias))
        except Exception as exc:  # e.g. a name in a string value that is not defined
            return UnknownT(f"cannot expand the alias {self} ({exc})", raw=self.raw)


def _is_alias_type(tp: Any) -> bool:
    return isinstance(tp, te.TypeAliasType) or type(tp).__name__ == "TypeAliasType"


def _alias_value(tp: Any) -> Any:
    if isinstance(tp, typing.ForwardRef):
        return _ref_value(tp)
    origin = typing.get_origin(tp)
    alias = origin if _is_alias_type(origin) else tp
    value = alias.__value__
    if isinstance(value, str):
        # ``TypeAliasType("JSON", "dict[str, JSON] | int")``: the string names the alias
        # itself, so it can only be evaluated once the alias exists, in its module.
        module = sys.modules.get(getattr(alias, "__module__", ""), None)
        value = eval(value, dict(vars(module)) if module else {})
    if alias is tp:
        return value
    params = getattr(alias, "__type_params__", ())
    return substitute(value, dict(zip(params, typing.get_args(tp), strict=False)))


@functools.lru_cache(maxsize=1024)
def _ref_value(ref: typing.ForwardRef) -> Any:
    module_name = str(ref.__forward_module__)
    module = sys.modules[module_name]
    value = eval(ref.__forward_arg__, dict(vars(module)))
    return resolve_forward_refs(value, module_name)


def resolve_forward_refs(tp: Any, module: str | None) -> Any:
    """Bind the names left in quotes inside annotation ``tp`` to ``module``.

    ``typing.get_type_hints`` leaves the inner names of an old-style recursive alias
    (``Json = dict[str, "Json"] | list["Json"] | str``) unevaluated. Bound to the module
    that defines them, they are expanded lazily when compared (with the same assumption
    set as ``TypeAliasType``), so the verdict is definite rather than unknown. An
    annotation without such names is returned as it is.

    Examples
    --------
    >>> import typing
    >>> bound = resolve_forward_refs(list["int"], "builtins")
    >>> typing.get_args(bound)[0].__forward_module__
    'builtins'
    """
    if module is None or isinstance(tp, type):
        return tp
    try:
        bound = _bind_refs(tp, module, cache_spelling(tp))
    except TypeError:  # unhashable metadata: walk without the cache
        return _bind_refs_uncached(tp, module)
    # The cache holds the first of equal annotations: hand back the caller's own object.
    return tp if bound is None else bound


@functools.lru_cache(maxsize=4096)
def _bind_refs(tp: Any, module: str, spelling: Any) -> Any:
    bound = _bind_refs_uncached(tp, module)
    return None if bound is tp else bound


def _bind_refs_uncached(tp: Any, module: str) -> Any:
    if isinstance(tp, str):
        return typing.ForwardRef(tp, module=module)
    if isinstance(tp, typing.ForwardRef):
        if tp.__forward_module__ is not None:
            return tp
        return typing.ForwardRef(tp.__forward_arg__, module=module)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is None or not args or origin in _LITERAL_ORIGINS:
        return tp
    if origin in _ANNOTATED_ORIGINS:
        inner = _bind_refs_uncached(args[0], module)
        if inner is args[0]:
            return tp
        return typing.Annotated.__class_getitem__((inner, *tp.__metadata__))  # type: ignore[attr-defined]
    new: list[Any] = []
    for arg in args:
        if isinstance(arg, list):  # the parameter list of a Callable
            new.append([_bind_refs_uncached(a, module) for a in arg])
        else:
            new.append(arg if arg is Ellipsis else _bind_refs_uncached(arg, module))
    if all(a is b or a == b for a, b in zip(new, args, strict=True)):
        return tp
    try:
        if origin in _UNION_ORIGINS:
            return typing.Union[tuple(new)]  # noqa: UP007
        if origin is cabc.Callable:
            return cabc.Callable[new[0], new[1]] if len(new) == 2 else tp
        return origin[tuple(new)] if len(new) > 1 else origin[new[0]]
    except Exception:  # a form that cannot be rebuilt keeps its names unresolved
        return tp


@attrs.frozen
class UnknownT(Node):
    why: str
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return _fallback_repr(self.raw)


def _fallback_repr(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    if isinstance(tp, typing.ForwardRef):
        return tp.__forward_arg__
    if isinstance(tp, type):
        return class_name(tp)
    text = repr(tp)
    return text.replace("typing.", "").replace("typing_extensions.", "")


def class_name(cls: Any) -> str:
    if cls is type(None):
        return "None"
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", None)
    if name is None:
        return _fallback_repr(cls)
    # Reports are read next to the code, where a local class's qualname carries noise.
    short = str(name).rsplit("<locals>.", 1)[-1]
    if hasattr(builtins, short) and getattr(builtins, short) is not cls:
        # numpy.bool is not bool: a report must not read "bool is not bool".
        return f"{getattr(cls, '__module__', '?')}.{short}"
    return short


def to_annotation(node: Node) -> Any:
    """An annotation for ``node``: its original spelling, or one rebuilt from its parts."""
    if isinstance(node, ClsT) and node.origin is type(None):
        return None
    if node.raw is not None:
        return node.raw
    if isinstance(node, ClsT):
        if not node.args:
            return node.origin
        try:
            return node.origin[tuple(to_annotation(a) for a in node.args)]
        except TypeError:
            return node.origin
    if isinstance(node, TupleT):
        if node.variadic:
            return tuple[to_annotation(node.items[0]), ...]  # type: ignore[misc]
        if not node.items:
            return tuple[()]
        return tuple[tuple(to_annotation(i) for i in node.items)]  # type: ignore[misc]
    if isinstance(node, UnionT):
        return typing.Union[tuple(to_annotation(m) for m in node.members)]  # noqa: UP007
    return Any


# --------------------------------------------------------------------------------------
# Normalization

# Number of type arguments of the standard generics (bare use means all ``Any``).
ARITY: dict[Any, int] = {
    list: 1,
    set: 1,
    frozenset: 1,
    dict: 2,
    type: 1,
    collections.deque: 1,
    collections.defaultdict: 2,
    collections.OrderedDict: 2,
    collections.Counter: 1,
    collections.ChainMap: 2,
    cabc.Iterable: 1,
    cabc.Iterator: 1,
    cabc.Reversible: 1,
    cabc.Container: 1,
    cabc.Collection: 1,
    cabc.Sequence: 1,
    cabc.MutableSequence: 1,
    cabc.Set: 1,
    cabc.MutableSet: 1,
    cabc.Mapping: 2,
    cabc.MutableMapping: 2,
    cabc.MappingView: 1,
    cabc.KeysView: 1,
    cabc.ValuesView: 1,
    cabc.ItemsView: 2,
    cabc.Generator: 3,
    cabc.AsyncIterable: 1,
    cabc.AsyncIterator: 1,
    cabc.AsyncGenerator: 2,
    cabc.Awaitable: 1,
    cabc.Coroutine: 3,
    contextlib.AbstractContextManager: 1,
    contextlib.AbstractAsyncContextManager: 1,
    re.Pattern: 1,
    re.Match: 1,
}


_NONE_TYPES = (None, type(None))
_UNION_ORIGINS = (typing.Union, types.UnionType)
_LITERAL_ORIGINS = (typing.Literal, te.Literal)
_ANNOTATED_ORIGINS = (typing.Annotated, te.Annotated)


def _special_forms(*names: str) -> tuple[Any, ...]:
    # The same form may exist in typing and typing_extensions as different objects, and
    # some (Required, Never, ReadOnly) only in newer versions of typing.
    found: list[Any] = []
    for module in (typing, te):
        for name in names:
            form = getattr(module, name, None)
            if form is not None and not any(form is seen for seen in found):
                found.append(form)
    return tuple(found)


_WRAPPERS = _special_forms("ClassVar", "Final", "Required", "NotRequired", "ReadOnly")
_NEVERS = _special_forms("NoReturn", "Never")
_LITERAL_STRINGS = _special_forms("LiteralString")
_TYPE_GUARDS = _special_forms("TypeGuard", "TypeIs")
_TYPEVAR_TYPES: tuple[type, ...] = tuple({typing.TypeVar, te.TypeVar})
_PARAMSPEC_TYPES: tuple[type, ...] = tuple({typing.ParamSpec, te.ParamSpec})


def normalize(tp: Any) -> Node:
    if isinstance(tp, Node):
        return tp
    try:
        return _normalize_cached(tp, cache_spelling(tp))
    except TypeError:
        # Unhashable annotations (e.g. Annotated with a dict) cannot be cached.
        return _normalize_uncached(tp)


_UNION_CLASSES = (types.UnionType, type(typing.Union[int, str]))  # noqa: UP007


def cache_spelling(tp: Any) -> Any:
    # ``int | str == str | int`` (and hashes alike): the order is part of the cache key,
    # so that a report shows the union as the user wrote it.
    return tp.__args__ if type(tp) in _UNION_CLASSES else None


@functools.lru_cache(maxsize=4096)
def _normalize_cached(tp: Any, spelling: Any) -> Node:
    return _normalize_uncached(tp)


def _normalize_uncached(tp: Any) -> Node:
    try:
        return _normalize_inner(tp)
    except Exception as exc:  # an exotic annotation must never crash a check
        return UnknownT(f"cannot interpret {_fallback_repr(tp)} ({exc})", raw=tp)


def _normalize_inner(tp: Any) -> Node:
    if tp is Any or tp is te.Any:
        return AnyT(raw=tp)
    if tp in _NONE_TYPES:
        return ClsT(type(None), (), raw=None)
    if any(tp is never for never in _NEVERS):
        return NeverT(raw=tp)
    if any(tp is form for form in _LITERAL_STRINGS):
        return ClsT(str, (), raw=tp)
    if isinstance(tp, typing.ForwardRef) and tp.__forward_module__ in sys.modules:
        return AliasT(tp, raw=tp)
    if isinstance(tp, str | typing.ForwardRef):
        name = tp if isinstance(tp, str) else tp.__forward_arg__
        return UnknownT(f"the forward reference {name!r} was not resolved", raw=tp)
    if isinstance(tp, _TYPEVAR_TYPES):
        return TypeVarT(tp, raw=tp)
    if hasattr(tp, "__supertype__") and callable(tp):
        return NewTypeT(tp, normalize(tp.__supertype__), raw=tp)
    if _is_alias_type(tp) or _is_alias_type(typing.get_origin(tp)):
        return AliasT(tp, raw=tp)
    np = sys.modules.get("numpy")
    if np is not None:
        numpy_node = _normalize_numpy(tp, np)
        if numpy_node is not None:
            return numpy_node
    if any(tp is form for form in _ANNOTATED_ORIGINS):
        return UnknownT("Annotated needs a type argument", raw=tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _ANNOTATED_ORIGINS:
        return normalize(args[0])
    if any(origin is form or tp is form for form in _WRAPPERS):
        return normalize(args[0]) if args else AnyT(raw=tp)
    if origin in _UNION_ORIGINS:
        return make_union([normalize(a) for a in args], raw=tp)
    if origin in _LITERAL_ORIGINS:
        return make_union([normalize_literal(v) for v in args], raw=tp)
    if any(origin is form for form in _TYPE_GUARDS):
        return ClsT(bool, (), raw=tp)
    if te.is_typeddict(tp):
        return _normalize_typeddict(tp, tp, ())
    if origin is not None and te.is_typeddict(origin):
        return _normalize_typeddict(tp, origin, args)
    if tp is tuple or origin is tuple:
        return normalize_tuple(tp, args)
    if tp is cabc.Callable or origin is cabc.Callable:
        return _normalize_callable(tp, args)
    if origin is None and tp is typing.Callable:
        return CallableT(None, AnyT(), raw=tp)
    if origin is not None:
        if origin is typing.Generic or origin is typing.Protocol:
            return UnknownT(f"{_fallback_repr(tp)} is not a type", raw=tp)
        if not isinstance(origin, type):
            return UnknownT(f"unsupported construct {_fallback_repr(tp)}", raw=tp)
        if origin is tuple:
            return normalize_tuple(tp, args)
        return ClsT(origin, fill_args(origin, [normalize(a) for a in args]), raw=tp)
    if isinstance(tp, type):
        return ClsT(tp, fill_args(tp, []), raw=tp)
    if tp is Ellipsis:
        return UnknownT("`...` outside Callable or tuple", raw=tp)
    return UnknownT(f"unsupported construct {_fallback_repr(tp)}", raw=tp)


def fill_args(origin: type, args: list[Node]) -> tuple[Node, ...]:
    arity = ARITY.get(origin)
    if arity is None:
        params = getattr(origin, "__parameters__", ())
        arity = len(params) if isinstance(params, tuple) else 0
    if not args:
        return tuple(AnyT() for _ in range(arity))
    return tuple(args)


def make_union(members: typing.Iterable[Node], raw: Any = None) -> Node:
    flat: list[Node] = []
    for member in members:
        parts = member.members if isinstance(member, UnionT) else (member,)
        for part in parts:
            if isinstance(part, NeverT):
                continue
            if part not in flat:
                flat.append(part)
    if not flat:
        return NeverT(raw=raw)
    if len(flat) == 1:
        return flat[0]
    if raw is None:
        raw = typing.Union[tuple(to_annotation(m) for m in flat)]  # noqa: UP007
    return UnionT(tuple(flat), raw=raw)


def normalize_literal(value: Any) -> Node:
    if value is None:
        return ClsT(type(None), (), raw=None)
    return LiteralT(value, type(value), raw=typing.Literal[value])


def normalize_tuple(tp: Any, args: tuple[Any, ...]) -> Node:
    if tp is tuple or tp is typing.Tuple:  # noqa: UP006
        return TupleT((AnyT(),), variadic=True, raw=tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return TupleT((normalize(args[0]),), variadic=True, raw=tp)
    if not args or args == ((),):
        # ``tuple[()]``: Python 3.10 spells its arguments ``((),)``, later versions ``()``.
        return TupleT((), variadic=False, raw=tp)
    if any(a is Ellipsis for a in args):
        return UnknownT(f"malformed tuple {_fallback_repr(tp)}", raw=tp)
    return TupleT(tuple(normalize(a) for a in args), variadic=False, raw=tp)


def _normalize_callable(tp: Any, args: tuple[Any, ...]) -> Node:
    if not args:
        return CallableT(None, AnyT(), raw=tp)
    params, ret = args[0], args[-1]
    if len(args) != 2:
        params, ret = list(args[:-1]), args[-1]
    if params is Ellipsis or isinstance(params, _PARAMSPEC_TYPES):
        return CallableT(None, normalize(ret), raw=tp)
    if isinstance(params, list | tuple):
        return CallableT(tuple(normalize(p) for p in params), normalize(ret), raw=tp)
    # Concatenate[...] and friends: keep the return type, give up on the parameters.
    return CallableT(None, normalize(ret), raw=tp)


def _normalize_typeddict(tp: Any, cls: Any, args: tuple[Any, ...]) -> Node:
    hints = te.get_type_hints(cls, include_extras=True)
    declared = getattr(cls, "__required_keys__", frozenset(hints))
    # A generic TypedDict (``Page[int]``): its fields are read with the arguments in.
    env = dict(zip(getattr(cls, "__parameters__", ()), args, strict=False))
    fields = tuple(
        (key, normalize(substitute(hint, env)), _is_required(hint, key in declared))
        for key, hint in hints.items()
    )
    return TypedDictT(cls, fields, raw=tp)


_REQUIRED = _special_forms("Required")
_NOT_REQUIRED = _special_forms("NotRequired")


def _is_required(hint: Any, declared: bool) -> bool:
    # Under ``from __future__ import annotations`` Python computes ``__required_keys__``
    # from the class's totality alone, missing Required/NotRequired: read them here.
    while True:
        origin = typing.get_origin(hint)
        if any(origin is form for form in _REQUIRED):
            return True
        if any(origin is form for form in _NOT_REQUIRED):
            return False
        if origin in _ANNOTATED_ORIGINS or any(origin is form for form in _WRAPPERS):
            hint = typing.get_args(hint)[0]
            continue
        return declared


_PY_DTYPES = {"bool": "bool_", "int": "int_", "float": "float64", "complex": "complex128"}


def _normalize_numpy(tp: Any, np: Any) -> Node | None:
    try:
        from numpy.typing import NDArray
    except ImportError:  # pragma: no cover - numpy always ships numpy.typing
        return None
    if tp is NDArray or tp is np.ndarray:
        return ClsT(np.ndarray, (AnyT(),), raw=tp)
    if typing.get_origin(tp) is not np.ndarray:
        if isinstance(tp, type) and issubclass(tp, np.ndarray):
            return ClsT(tp, (AnyT(),), raw=tp)
        return None
    args = typing.get_args(tp)
    dtype = args[-1] if args else Any
    return ClsT(np.ndarray, (_normalize_dtype(dtype, np),), raw=tp)


def _normalize_dtype(dtype: Any, np: Any) -> Node:
    if typing.get_origin(dtype) is np.dtype:
        inner = typing.get_args(dtype)
        dtype = inner[0] if inner else Any
    if dtype is Any or dtype is te.Any:
        return AnyT()
    if typing.get_origin(dtype) in _UNION_ORIGINS:
        return make_union([_normalize_dtype(d, np) for d in typing.get_args(dtype)])
    if isinstance(dtype, _TYPEVAR_TYPES):
        return TypeVarT(dtype, raw=dtype)
    origin = typing.get_origin(dtype)
    if isinstance(origin, type) and issubclass(origin, np.generic):
        dtype = origin  # np.floating[Any]: the bit-width argument says nothing at run time
    if isinstance(dtype, type) and dtype.__name__ in _PY_DTYPES and dtype.__module__ == "builtins":
        dtype = getattr(np, _PY_DTYPES[dtype.__name__])
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        return ClsT(dtype, (), raw=dtype)
    return UnknownT(f"unsupported numpy dtype {_fallback_repr(dtype)}", raw=dtype)


# --------------------------------------------------------------------------------------
# Rewriting and rendering annotations (re-exported by packflow.typecheck)


def substitute(tp: Any, bindings: Mapping[Any, Any]) -> Any:
    """Replace the ``TypeVar``\\ s in annotation ``tp`` by their ``bindings``.

    Unbound variables stay as they are; a type that cannot be re-parameterized is
    returned unchanged.

    Examples
    --------
    >>> from typing import TypeVar
    >>> T = TypeVar("T")
    >>> substitute(dict[str, T], {T: int})
    dict[str, int]
    """
    if not bindings:
        return tp
    if isinstance(tp, _TYPEVAR_TYPES):
        return bindings.get(tp, tp)
    if typing.get_origin(tp) is None:
        return tp
    params = getattr(tp, "__parameters__", ())
    if not params or not isinstance(params, tuple):
        return tp
    try:
        return tp[tuple(bindings.get(p, p) for p in params)]
    except TypeError:
        return tp


def format_type(tp: Any) -> str:
    """Render a type the way reports show it (``list[int]``, ``int | None``, ``NDArray[float32]``).

    Examples
    --------
    >>> format_type(dict[str, list[int]])
    'dict[str, list[int]]'
    """
    if tp is Any:
        return "Any"
    return str(normalize(tp))
