"""Type compatibility between what one stage produces and what the next consumes.

This module knows nothing of pipelines. It answers one question: may a value of the
*produced* type be handed to a parameter annotated with the *consumed* type? The rules
follow mypy (PEP 484) with one deliberate departure: containers are read covariantly,
because data handed down a pipeline is never written back (``list[int]`` fits
``list[float]``). See ``docs/type-rules.md`` for the full table.

Public functions:

- :func:`is_compatible` and :func:`explain` for users who want to test their own types;
- :func:`check` returns a :class:`Verdict` (compatible, incompatible with an explanation,
  or unknown with a note) together with the solved ``TypeVar`` bindings;
- :func:`substitute` applies such bindings to an annotation;
- :func:`format_type` renders a type the way the reports show it.

Where the engine cannot decide (an exotic construct), the verdict is ``UNKNOWN`` with a
note naming the construct: the pipeline checker reports it as a note and treats it as
compatible, or, with ``strict=True``, as an error. It never raises on a strange type.
"""

from __future__ import annotations

import ast
import builtins
import collections
import collections.abc as cabc
import contextlib
import enum
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import typing_extensions as te

__all__ = [
    "Status",
    "Verdict",
    "check",
    "explain",
    "format_type",
    "is_compatible",
    "resolve_forward_refs",
    "substitute",
]


class Status(enum.Enum):
    """The outcome of one compatibility check."""

    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    UNKNOWN = "unknown"


@attrs.frozen
class Verdict:
    """What :func:`check` found.

    ``reason`` explains an ``INCOMPATIBLE`` verdict (which sub-type failed) or notes why
    the verdict is ``UNKNOWN``; it is ``None`` when compatible. ``bindings`` maps each
    ``TypeVar`` of the consumed type to the type it was solved to.
    """

    status: Status
    reason: str | None = None
    bindings: Mapping[Any, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` unless the verdict is ``INCOMPATIBLE`` (unknown counts as fitting)."""
        return self.status is not Status.INCOMPATIBLE


# --------------------------------------------------------------------------------------
# Normalized type nodes. Every annotation is turned into one of these (cached), so the
# rules below deal with one spelling of each type whatever alias the user wrote.


class _Node:
    __slots__ = ()
    raw: Any


@attrs.frozen
class _AnyT(_Node):
    raw: Any = attrs.field(default=Any, eq=False)

    def __str__(self) -> str:
        return "Any"


@attrs.frozen
class _NeverT(_Node):
    raw: Any = attrs.field(default=te.Never, eq=False)

    def __str__(self) -> str:
        return "Never"


@attrs.frozen
class _ClsT(_Node):
    """A class, possibly with type arguments (bare generics carry ``Any`` arguments)."""

    origin: Any
    args: tuple[_Node, ...] = ()
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        if self.origin is type(None):
            return "None"
        np = sys.modules.get("numpy")
        if np is not None and self.origin is np.ndarray:
            if not self.args or isinstance(self.args[0], _AnyT):
                return "ndarray"
            return f"NDArray[{self.args[0]}]"
        name = _class_name(self.origin)
        if not self.args:
            return name
        return f"{name}[{', '.join(map(str, self.args))}]"


@attrs.frozen
class _UnionT(_Node):
    members: tuple[_Node, ...]
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        named = _numpy_union_name(self.raw)
        if named is not None:
            return named
        literals = [m for m in self.members if isinstance(m, _LiteralT)]
        others = [str(m) for m in self.members if not isinstance(m, _LiteralT)]
        parts = []
        if literals:
            parts.append(f"Literal[{', '.join(_literal_repr(m.value) for m in literals)}]")
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
class _LiteralT(_Node):
    value: Any
    kind: type
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"Literal[{_literal_repr(self.value)}]"


def _literal_repr(value: Any) -> str:
    # As written in the annotation: ``Literal[Color.RED]``, not ``<Color.RED: 1>``.
    if isinstance(value, enum.Enum):
        return f"{_class_name(type(value))}.{value.name}"
    return repr(value)


@attrs.frozen
class _TupleT(_Node):
    items: tuple[_Node, ...]
    variadic: bool
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        if self.variadic:
            return f"tuple[{self.items[0]}, ...]"
        if not self.items:
            return "tuple[()]"
        return f"tuple[{', '.join(map(str, self.items))}]"

    def element(self) -> _Node:
        if self.variadic:
            return self.items[0]
        if not self.items:
            return _NeverT()
        return _make_union(self.items)


@attrs.frozen
class _CallableT(_Node):
    params: tuple[_Node, ...] | None  # None: any parameters (``...``)
    ret: _Node
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        params = "..." if self.params is None else f"[{', '.join(map(str, self.params))}]"
        return f"Callable[{params}, {self.ret}]"


@attrs.frozen
class _TypedDictT(_Node):
    cls: Any
    fields: tuple[tuple[str, _Node, bool], ...]  # (key, type, required)
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        args = typing.get_args(self.raw)
        if not args:
            return _class_name(self.cls)
        return f"{_class_name(self.cls)}[{', '.join(map(format_type, args))}]"

    def field_map(self) -> dict[str, tuple[_Node, bool]]:
        return {key: (node, required) for key, node, required in self.fields}


@attrs.frozen
class _NewTypeT(_Node):
    newtype: Any
    supertype: _Node
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return str(getattr(self.newtype, "__name__", self.newtype))


@attrs.frozen
class _TypeVarT(_Node):
    var: Any
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return str(self.var.__name__)


@attrs.frozen
class _AliasT(_Node):
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

    def value(self) -> _Node:
        try:
            return _normalize(_alias_value(self.alias))
        except Exception as exc:  # e.g. a name in a string value that is not defined
            return _UnknownT(f"cannot expand the alias {self} ({exc})", raw=self.raw)


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
        bound = _bind_refs(tp, module, _spelling(tp))
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
class _UnknownT(_Node):
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
        return _class_name(tp)
    text = repr(tp)
    return text.replace("typing.", "").replace("typing_extensions.", "")


def _class_name(cls: Any) -> str:
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


def _to_annotation(node: _Node) -> Any:
    """An annotation for ``node``: its original spelling, or one rebuilt from its parts."""
    if isinstance(node, _ClsT) and node.origin is type(None):
        return None
    if node.raw is not None:
        return node.raw
    if isinstance(node, _ClsT):
        if not node.args:
            return node.origin
        try:
            return node.origin[tuple(_to_annotation(a) for a in node.args)]
        except TypeError:
            return node.origin
    if isinstance(node, _TupleT):
        if node.variadic:
            return tuple[_to_annotation(node.items[0]), ...]  # type: ignore[misc]
        if not node.items:
            return tuple[()]
        return tuple[tuple(_to_annotation(i) for i in node.items)]  # type: ignore[misc]
    if isinstance(node, _UnionT):
        return typing.Union[tuple(_to_annotation(m) for m in node.members)]  # noqa: UP007
    return Any


# --------------------------------------------------------------------------------------
# Normalization

# Number of type arguments of the standard generics (bare use means all ``Any``).
_ARITY: dict[Any, int] = {
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

# Classes whose instances hold elements: the element type is their first argument.
_ELEMENT_CONTAINERS = frozenset(
    {
        list,
        set,
        frozenset,
        tuple,
        collections.deque,
        collections.Counter,
        cabc.Iterable,
        cabc.Iterator,
        cabc.Reversible,
        cabc.Container,
        cabc.Collection,
        cabc.Sequence,
        cabc.MutableSequence,
        cabc.Set,
        cabc.MutableSet,
        cabc.KeysView,
        cabc.ValuesView,
        cabc.Generator,
        cabc.AsyncIterable,
        cabc.AsyncIterator,
        cabc.AsyncGenerator,
    }
)
_MAPPINGS = frozenset(
    {
        dict,
        collections.defaultdict,
        collections.OrderedDict,
        collections.ChainMap,
        cabc.Mapping,
        cabc.MutableMapping,
    }
)
# Targets a producer can be viewed as through its element type alone.
_ELEMENT_VIEWS = frozenset(
    {
        cabc.Iterable,
        cabc.Iterator,
        cabc.Reversible,
        cabc.Container,
        cabc.Collection,
        cabc.Sequence,
        cabc.MutableSequence,
        cabc.Set,
        cabc.MutableSet,
        cabc.AsyncIterable,
        cabc.AsyncIterator,
    }
)
# Builtins that are sequences of a fixed element type.
_FIXED_ELEMENTS: dict[Any, Any] = {
    str: str,
    bytes: int,
    bytearray: int,
    memoryview: int,
    range: int,
}

# The numeric tower of PEP 484: an int is accepted where a float is expected, and so on.
_PROMOTIONS: dict[Any, frozenset[Any]] = {
    int: frozenset({float, complex}),
    float: frozenset({complex}),
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


def _normalize(tp: Any) -> _Node:
    if isinstance(tp, _Node):
        return tp
    try:
        return _normalize_cached(tp, _spelling(tp))
    except TypeError:
        # Unhashable annotations (e.g. Annotated with a dict) cannot be cached.
        return _normalize_uncached(tp)


_UNION_CLASSES = (types.UnionType, type(typing.Union[int, str]))  # noqa: UP007


def _spelling(tp: Any) -> Any:
    # ``int | str == str | int`` (and hashes alike): the order is part of the cache key,
    # so that a report shows the union as the user wrote it.
    return tp.__args__ if type(tp) in _UNION_CLASSES else None


@functools.lru_cache(maxsize=4096)
def _normalize_cached(tp: Any, spelling: Any) -> _Node:
    return _normalize_uncached(tp)


def _normalize_uncached(tp: Any) -> _Node:
    try:
        return _normalize_inner(tp)
    except Exception as exc:  # an exotic annotation must never crash a check
        return _UnknownT(f"cannot interpret {_fallback_repr(tp)} ({exc})", raw=tp)


def _normalize_inner(tp: Any) -> _Node:
    if tp is Any or tp is te.Any:
        return _AnyT(raw=tp)
    if tp in _NONE_TYPES:
        return _ClsT(type(None), (), raw=None)
    if any(tp is never for never in _NEVERS):
        return _NeverT(raw=tp)
    if any(tp is form for form in _LITERAL_STRINGS):
        return _ClsT(str, (), raw=tp)
    if isinstance(tp, typing.ForwardRef) and tp.__forward_module__ in sys.modules:
        return _AliasT(tp, raw=tp)
    if isinstance(tp, str | typing.ForwardRef):
        name = tp if isinstance(tp, str) else tp.__forward_arg__
        return _UnknownT(f"the forward reference {name!r} was not resolved", raw=tp)
    if isinstance(tp, _TYPEVAR_TYPES):
        return _TypeVarT(tp, raw=tp)
    if hasattr(tp, "__supertype__") and callable(tp):
        return _NewTypeT(tp, _normalize(tp.__supertype__), raw=tp)
    if _is_alias_type(tp) or _is_alias_type(typing.get_origin(tp)):
        return _AliasT(tp, raw=tp)
    np = sys.modules.get("numpy")
    if np is not None:
        numpy_node = _normalize_numpy(tp, np)
        if numpy_node is not None:
            return numpy_node
    if any(tp is form for form in _ANNOTATED_ORIGINS):
        return _UnknownT("Annotated needs a type argument", raw=tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _ANNOTATED_ORIGINS:
        return _normalize(args[0])
    if any(origin is form or tp is form for form in _WRAPPERS):
        return _normalize(args[0]) if args else _AnyT(raw=tp)
    if origin in _UNION_ORIGINS:
        return _make_union([_normalize(a) for a in args], raw=tp)
    if origin in _LITERAL_ORIGINS:
        return _make_union([_normalize_literal(v) for v in args], raw=tp)
    if any(origin is form for form in _TYPE_GUARDS):
        return _ClsT(bool, (), raw=tp)
    if te.is_typeddict(tp):
        return _normalize_typeddict(tp, tp, ())
    if origin is not None and te.is_typeddict(origin):
        return _normalize_typeddict(tp, origin, args)
    if tp is tuple or origin is tuple:
        return _normalize_tuple(tp, args)
    if tp is cabc.Callable or origin is cabc.Callable:
        return _normalize_callable(tp, args)
    if origin is None and tp is typing.Callable:
        return _CallableT(None, _AnyT(), raw=tp)
    if origin is not None:
        if origin is typing.Generic or origin is typing.Protocol:
            return _UnknownT(f"{_fallback_repr(tp)} is not a type", raw=tp)
        if not isinstance(origin, type):
            return _UnknownT(f"unsupported construct {_fallback_repr(tp)}", raw=tp)
        if origin is tuple:
            return _normalize_tuple(tp, args)
        return _ClsT(origin, _fill_args(origin, [_normalize(a) for a in args]), raw=tp)
    if isinstance(tp, type):
        return _ClsT(tp, _fill_args(tp, []), raw=tp)
    if tp is Ellipsis:
        return _UnknownT("`...` outside Callable or tuple", raw=tp)
    return _UnknownT(f"unsupported construct {_fallback_repr(tp)}", raw=tp)


def _fill_args(origin: type, args: list[_Node]) -> tuple[_Node, ...]:
    arity = _ARITY.get(origin)
    if arity is None:
        params = getattr(origin, "__parameters__", ())
        arity = len(params) if isinstance(params, tuple) else 0
    if not args:
        return tuple(_AnyT() for _ in range(arity))
    return tuple(args)


def _make_union(members: typing.Iterable[_Node], raw: Any = None) -> _Node:
    flat: list[_Node] = []
    for member in members:
        parts = member.members if isinstance(member, _UnionT) else (member,)
        for part in parts:
            if isinstance(part, _NeverT):
                continue
            if part not in flat:
                flat.append(part)
    if not flat:
        return _NeverT(raw=raw)
    if len(flat) == 1:
        return flat[0]
    if raw is None:
        raw = typing.Union[tuple(_to_annotation(m) for m in flat)]  # noqa: UP007
    return _UnionT(tuple(flat), raw=raw)


def _normalize_literal(value: Any) -> _Node:
    if value is None:
        return _ClsT(type(None), (), raw=None)
    return _LiteralT(value, type(value), raw=typing.Literal[value])


def _normalize_tuple(tp: Any, args: tuple[Any, ...]) -> _Node:
    if tp is tuple or tp is typing.Tuple:  # noqa: UP006
        return _TupleT((_AnyT(),), variadic=True, raw=tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return _TupleT((_normalize(args[0]),), variadic=True, raw=tp)
    if not args or args == ((),):
        # ``tuple[()]``: Python 3.10 spells its arguments ``((),)``, later versions ``()``.
        return _TupleT((), variadic=False, raw=tp)
    if any(a is Ellipsis for a in args):
        return _UnknownT(f"malformed tuple {_fallback_repr(tp)}", raw=tp)
    return _TupleT(tuple(_normalize(a) for a in args), variadic=False, raw=tp)


def _normalize_callable(tp: Any, args: tuple[Any, ...]) -> _Node:
    if not args:
        return _CallableT(None, _AnyT(), raw=tp)
    params, ret = args[0], args[-1]
    if len(args) != 2:
        params, ret = list(args[:-1]), args[-1]
    if params is Ellipsis or isinstance(params, _PARAMSPEC_TYPES):
        return _CallableT(None, _normalize(ret), raw=tp)
    if isinstance(params, list | tuple):
        return _CallableT(tuple(_normalize(p) for p in params), _normalize(ret), raw=tp)
    # Concatenate[...] and friends: keep the return type, give up on the parameters.
    return _CallableT(None, _normalize(ret), raw=tp)


def _normalize_typeddict(tp: Any, cls: Any, args: tuple[Any, ...]) -> _Node:
    hints = te.get_type_hints(cls, include_extras=True)
    declared = getattr(cls, "__required_keys__", frozenset(hints))
    # A generic TypedDict (``Page[int]``): its fields are read with the arguments in.
    env = dict(zip(getattr(cls, "__parameters__", ()), args, strict=False))
    fields = tuple(
        (key, _normalize(substitute(hint, env)), _is_required(hint, key in declared))
        for key, hint in hints.items()
    )
    return _TypedDictT(cls, fields, raw=tp)


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


def _normalize_numpy(tp: Any, np: Any) -> _Node | None:
    try:
        from numpy.typing import NDArray
    except ImportError:  # pragma: no cover - numpy always ships numpy.typing
        return None
    if tp is NDArray or tp is np.ndarray:
        return _ClsT(np.ndarray, (_AnyT(),), raw=tp)
    if typing.get_origin(tp) is not np.ndarray:
        if isinstance(tp, type) and issubclass(tp, np.ndarray):
            return _ClsT(tp, (_AnyT(),), raw=tp)
        return None
    args = typing.get_args(tp)
    dtype = args[-1] if args else Any
    return _ClsT(np.ndarray, (_normalize_dtype(dtype, np),), raw=tp)


def _normalize_dtype(dtype: Any, np: Any) -> _Node:
    if typing.get_origin(dtype) is np.dtype:
        inner = typing.get_args(dtype)
        dtype = inner[0] if inner else Any
    if dtype is Any or dtype is te.Any:
        return _AnyT()
    if typing.get_origin(dtype) in _UNION_ORIGINS:
        return _make_union([_normalize_dtype(d, np) for d in typing.get_args(dtype)])
    if isinstance(dtype, _TYPEVAR_TYPES):
        return _TypeVarT(dtype, raw=dtype)
    origin = typing.get_origin(dtype)
    if isinstance(origin, type) and issubclass(origin, np.generic):
        dtype = origin  # np.floating[Any]: the bit-width argument says nothing at run time
    if isinstance(dtype, type) and dtype.__name__ in _PY_DTYPES and dtype.__module__ == "builtins":
        dtype = getattr(np, _PY_DTYPES[dtype.__name__])
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        return _ClsT(dtype, (), raw=dtype)
    return _UnknownT(f"unsupported numpy dtype {_fallback_repr(dtype)}", raw=dtype)


# --------------------------------------------------------------------------------------
# The rules. ``_Check`` threads the TypeVar bindings through one check.

_OK = Verdict(Status.COMPATIBLE)


def _fail(reason: str) -> Verdict:
    return Verdict(Status.INCOMPATIBLE, reason)


def _unknown(note: str) -> Verdict:
    return Verdict(Status.UNKNOWN, note)


def _prefix(verdict: Verdict, where: str) -> Verdict:
    if verdict.status is Status.COMPATIBLE or verdict.reason is None:
        return verdict
    return Verdict(verdict.status, f"{where}: {verdict.reason}", verdict.bindings)


def _is_not(produced: _Node, consumed: _Node) -> Verdict:
    mine, theirs = str(produced), str(consumed)
    if mine == theirs and isinstance(produced, _ClsT) and isinstance(consumed, _ClsT):
        # Two classes of the same name from different modules.
        mine = f"{getattr(produced.origin, '__module__', '?')}.{mine}"
        theirs = f"{getattr(consumed.origin, '__module__', '?')}.{theirs}"
    return _fail(f"{mine} is not {theirs}")


class _Check:
    """One run of the rules; ``bindings`` are the TypeVars solved so far."""

    __slots__ = ("assumed", "bindings", "depth")

    def __init__(
        self, bindings: Mapping[Any, Any], assumed: set[tuple[_Node, _Node]] | None = None
    ) -> None:
        self.bindings: dict[Any, Any] = dict(bindings)
        self.depth = 0
        # Pairs of recursive aliases under comparison: met again, they are assumed to fit
        # (the usual coinductive reading of recursive types).
        self.assumed: set[tuple[_Node, _Node]] = set() if assumed is None else assumed

    def fork(self, bindings: Mapping[Any, Any]) -> _Check:
        """A trial run with its own ``bindings`` that shares the alias assumptions."""
        return _Check(bindings, self.assumed)

    def all_of(self, checks: typing.Iterable[Callable[[], Verdict]]) -> Verdict:
        """Compatible when every check is; the first failure wins over unknowns."""
        unknown: Verdict | None = None
        for run in checks:
            verdict = run()
            if verdict.status is Status.INCOMPATIBLE:
                return verdict
            if verdict.status is Status.UNKNOWN and unknown is None:
                unknown = verdict
        return unknown or _OK

    def run(self, p: _Node, c: _Node) -> Verdict:
        if (p is c or (type(p) is type(c) and p == c)) and _settled(p):
            return _OK  # every type fits itself; the common case of two matching stages
        self.depth += 1
        try:
            if self.depth > 60:
                return _unknown(f"types nest too deeply to compare ({p} -> {c})")
            return self._rules(p, c)
        finally:
            self.depth -= 1

    def _rules(self, p: _Node, c: _Node) -> Verdict:
        if isinstance(p, _AliasT) or isinstance(c, _AliasT):
            return self._aliases(p, c)
        if isinstance(c, _AnyT) or isinstance(p, _AnyT | _NeverT):
            return _OK
        if isinstance(p, _TypeVarT):
            return self.run(self._producer_typevar(p), c)
        if isinstance(c, _TypeVarT):
            return self._solve(p, c)
        if isinstance(p, _UnionT):
            return self._union_producer(p.members, p, c)
        if isinstance(c, _UnionT):
            return self._into_union(p, c)
        if isinstance(c, _ClsT) and c.origin is object:
            return _OK
        if isinstance(p, _UnknownT):
            return _unknown(p.why)
        if isinstance(c, _UnknownT):
            return _unknown(c.why)
        if isinstance(c, _NeverT):
            return _fail(f"{p} is not Never (nothing fits Never)")
        if isinstance(c, _NewTypeT):
            return self._into_newtype(p, c)
        if isinstance(p, _NewTypeT):
            return self.run(p.supertype, c)
        if isinstance(p, _LiteralT):
            if isinstance(c, _LiteralT):
                if (p.kind, p.value) == (c.kind, c.value):
                    return _OK
                return _is_not(p, c)
            return _prefix(self.run(_normalize(p.kind), c), f"value {_literal_repr(p.value)}")
        if isinstance(c, _LiteralT):
            values = _as_literals(p)
            if values is not None and self.run(values, c).status is Status.COMPATIBLE:
                return _OK
            return _fail(f"{p} is not {c} (only the literal value itself fits)")
        if isinstance(c, _TypedDictT):
            return self._into_typeddict(p, c)
        if isinstance(p, _TypedDictT):
            return self._from_typeddict(p, c)
        if isinstance(c, _TupleT):
            return self._into_tuple(p, c)
        if isinstance(c, _CallableT):
            return self._into_callable(p, c)
        if isinstance(p, _TupleT):
            return self.run(_ClsT(tuple, (p.element(),), raw=p.raw), c)
        if isinstance(p, _CallableT):
            if isinstance(c, _ClsT) and _is_callback_protocol(c.origin):
                signature = _call_signature(c.origin)
                if signature is not None:
                    return self.run(p, signature)
                return _unknown(f"cannot read the call signature of protocol {c}")
            return _fail(f"a callable {p} is not {c}")
        if isinstance(p, _ClsT) and isinstance(c, _ClsT):
            return self._classes(p, c)
        return _unknown(f"no rule relates {p} to {c}")

    def _aliases(self, p: _Node, c: _Node) -> Verdict:
        pair = (p, c)
        try:
            seen = pair in self.assumed
        except TypeError:  # an unhashable literal: the depth limit still ends a recursion
            return self.run(_expand(p), _expand(c))
        if seen:
            return _OK
        self.assumed.add(pair)
        try:
            produced, consumed = _expand(p), _expand(c)
            if isinstance(consumed, _TypeVarT) and not isinstance(produced, _TypeVarT):
                return self._solve(p, consumed)  # solved to the alias, which reads best
            if isinstance(produced, _UnionT) and not isinstance(consumed, _AnyT | _TypeVarT):
                # Name the alias, not its expansion, when one of its members fails.
                return self._union_producer(produced.members, p, consumed)
            return self.run(produced, consumed)
        finally:
            self.assumed.discard(pair)

    def _member(self, member: _Node, union: _Node, c: _Node) -> Verdict:
        verdict = self.run(member, c)
        if verdict.status is Status.INCOMPATIBLE:
            suffix = f" (a member of the union {union})"
            reason = str(verdict.reason)
            # A recursive alias meets its own union again one level down: say it once.
            return _fail(reason if reason.endswith(suffix) else reason + suffix)
        return verdict

    def _union_producer(self, members: tuple[_Node, ...], union: _Node, c: _Node) -> Verdict:
        return self.all_of(functools.partial(self._member, m, union, c) for m in members)

    # -- TypeVars -----------------------------------------------------------------

    def _producer_typevar(self, p: _TypeVarT) -> _Node:
        node = _normalize(self.bindings[p.var]) if p.var in self.bindings else p
        # An unsolved TypeVar on the producing side is gradual: nothing is known of it.
        return _AnyT() if isinstance(node, _TypeVarT) else node

    def _solve(self, p: _Node, c: _TypeVarT) -> Verdict:
        var = c.var
        constraints = getattr(var, "__constraints__", ())
        bound = getattr(var, "__bound__", None)
        if constraints:
            for constraint in constraints:
                trial = self.fork(self.bindings)
                if trial.run(p, _normalize(constraint)).ok:
                    return self._bind(var, _normalize(constraint))
            options = ", ".join(format_type(x) for x in constraints)
            return _fail(f"{p} fits none of the constraints of {var.__name__} ({options})")
        if bound is not None:
            verdict = self.run(p, _normalize(bound))
            if verdict.status is Status.INCOMPATIBLE:
                return _fail(f"{p} is outside the bound of {var.__name__}: {verdict.reason}")
            if verdict.status is Status.UNKNOWN:
                solved = self._bind(var, p)
                return solved if not solved.ok else _prefix(verdict, f"bound of {var.__name__}")
        return self._bind(var, p)

    def _bind(self, var: Any, node: _Node) -> Verdict:
        if isinstance(node, _AnyT):
            self.bindings.setdefault(var, Any)
            return _OK
        previous = self.bindings.get(var)
        if previous is None or previous is Any:
            self.bindings[var] = _to_annotation(node)
            return _OK
        old = _normalize(previous)
        if self.fork({}).run(node, old).status is Status.COMPATIBLE:
            return _OK
        if self.fork({}).run(old, node).status is Status.COMPATIBLE:
            self.bindings[var] = _to_annotation(node)
            return _OK
        # Two unrelated solutions: like mypy's join, the variable becomes wide enough
        # for both (a union is the most precise such type).
        joined = _make_union([old, node])
        bound = getattr(var, "__bound__", None)
        if bound is not None and not self.fork({}).run(joined, _normalize(bound)).ok:
            return _fail(f"{var.__name__} cannot be both {old} and {node}")
        self.bindings[var] = _to_annotation(joined)
        return _OK

    # -- unions, NewType, TypedDict ---------------------------------------------------

    def _into_union(self, p: _Node, c: _UnionT) -> Verdict:
        unknown: Verdict | None = None
        failures: list[Verdict] = []
        # Concrete members first: None fits the None of ``T | None`` rather than solving T.
        order = sorted(c.members, key=lambda m: isinstance(m, _TypeVarT))
        for member in order:
            trial = self.fork(self.bindings)
            verdict = trial.run(p, member)
            if verdict.status is Status.COMPATIBLE:
                self.bindings = trial.bindings
                return _OK
            if verdict.status is Status.UNKNOWN:
                unknown = unknown or verdict
            else:
                failures.append(verdict)
        values = _as_literals(p)
        if values is not None and self.fork(self.bindings).run(values, c).ok:
            # An enum (or bool) is the union of its members' literals.
            return self.run(values, c)
        if unknown is not None:
            return unknown
        # A member that failed only deep inside (``list[str]`` against ``list[int]``) is
        # the one the user meant: its reason is the interesting one. ``Optional[X]`` is
        # the common case.
        deep = [
            (member, verdict.reason)
            for member, verdict in zip(order, failures, strict=True)
            if verdict.reason and verdict.reason != str(_is_not(p, member).reason)
        ]
        if len(deep) == 1:
            return _fail(f"{p} is not {c}: {deep[0][1]}")
        return _fail(f"{p} is not {c} (it fits none of the union's members)")

    def _into_newtype(self, p: _Node, c: _NewTypeT) -> Verdict:
        node = p
        while isinstance(node, _NewTypeT):
            if node.newtype is c.newtype:
                return _OK
            node = node.supertype
        return _fail(f"{p} is not {c} (a NewType: wrap the value with {c}(...))")

    def _into_typeddict(self, p: _Node, c: _TypedDictT) -> Verdict:
        if isinstance(p, _TypedDictT):
            theirs = p.field_map()
            checks: list[Callable[[], Verdict]] = []
            for key, node, required in c.fields:
                if key not in theirs:
                    return _fail(f"{p} has no key {key!r} that {c} declares")
                their_node, their_required = theirs[key]
                if required and not their_required:
                    return _fail(f"key {key!r} is required in {c} but not in {p}")
                checks.append(_keyed(self, their_node, node, f"key {key!r} of {c}"))
            return self.all_of(checks)
        if isinstance(p, _ClsT) and _is_mapping_class(p.origin):
            key_type, value_type = self._mapping_args(p)
            # The one gradual exemption (DESIGN.md): a ``dict[str, Any]`` may hold the
            # TypedDict, because its keys cannot be known statically. ``object`` values,
            # concrete value types and read-only mappings do not get it (as in mypy).
            if not issubclass(p.origin, dict):
                return _fail(
                    f"{p} is not {c} (only dict[str, Any] fits a TypedDict consumer, "
                    f"not another mapping)"
                )
            if self.run(key_type, _ClsT(str)).status is Status.INCOMPATIBLE:
                return _fail(f"{p} has keys of type {key_type}, {c} has str keys")
            if not isinstance(value_type, _AnyT):
                return _fail(
                    f"value type of {_class_name(p.origin)}: {value_type} is not Any "
                    f"(only dict[str, Any] fits the TypedDict {c}; its values are "
                    "checked key by key)"
                )
            return _OK
        return _fail(f"{p} is not {c} (a TypedDict is a dict with declared keys)")

    def _from_typeddict(self, p: _TypedDictT, c: _Node) -> Verdict:
        # A TypedDict may hold more keys than it declares (structural subtypes add keys),
        # so, as in mypy, its values are only known to be ``object``: it is a
        # ``Mapping[str, object]``. It also fits ``dict[str, Any]``, the records contract
        # (DESIGN.md), but no other dict.
        if isinstance(c, _ClsT) and _is_mapping_class(c.origin):
            key_type, value_type = c.args if len(c.args) == 2 else (_AnyT(), _AnyT())
            verdict = self.run(_ClsT(str), key_type)
            if verdict.status is Status.INCOMPATIBLE:
                return _fail(f"key type of {c}: the keys of {p} are str, not {key_type}")
            if issubclass(c.origin, dict):
                if isinstance(value_type, _AnyT):
                    return _OK
                return _fail(
                    f"{p} is not {c} (a TypedDict fits dict[str, Any] or Mapping[str, object])"
                )
            if c.origin is not cabc.Mapping:
                return _fail(f"{p} is not {c} (a TypedDict is a read-only Mapping[str, object])")
            values = self.run(_ClsT(object), value_type)
            if values.status is Status.INCOMPATIBLE:
                return _fail(
                    f"value type of {c}: the values of {p} are only known to be object "
                    f"(it may hold keys beyond those it declares), not {value_type}"
                )
            return values
        return self.run(_ClsT(cabc.Mapping, (_ClsT(str), _ClsT(object))), c)

    def _mapping_args(self, p: _ClsT) -> tuple[_Node, _Node]:
        args = self._view_as(p, cabc.Mapping)
        if args is None or len(args) != 2:
            return _AnyT(), _AnyT()
        return args[0], args[1]

    # -- tuples and callables ---------------------------------------------------------

    def _into_tuple(self, p: _Node, c: _TupleT) -> Verdict:
        if isinstance(p, _ClsT) and isinstance(p.origin, type) and issubclass(p.origin, tuple):
            fields = _namedtuple_items(p.origin)
            if fields is None:
                return self.run(_TupleT((_AnyT(),), variadic=True), c)
            p = _TupleT(fields, variadic=False, raw=p.raw)
        if not isinstance(p, _TupleT):
            return _is_not(p, c)
        if c.variadic:
            return self.all_of(
                _keyed(self, item, c.items[0], f"item {i} of tuple")
                for i, item in enumerate(p.items)
            )
        if p.variadic and isinstance(p.items[0], _AnyT):
            return _OK  # bare ``tuple`` is ``tuple[Any, ...]``: gradual in its length too
        if p.variadic:
            return _fail(f"{p} has no fixed length; {c} needs exactly {len(c.items)} items")
        if len(p.items) != len(c.items):
            return _fail(f"{p} has {len(p.items)} items, {c} needs {len(c.items)}")
        return self.all_of(
            _keyed(self, a, b, f"item {i} of tuple")
            for i, (a, b) in enumerate(zip(p.items, c.items, strict=True))
        )

    def _into_callable(self, p: _Node, c: _CallableT) -> Verdict:
        if isinstance(p, _ClsT) and p.origin is type:
            # A class is a callable returning its instances.
            instance = p.args[0] if p.args else _AnyT()
            verdict = self.run(instance, c.ret)
            if verdict.status is not Status.COMPATIBLE or c.params is None:
                return _prefix(verdict, "return type of Callable")
            if isinstance(instance, _AnyT):
                return _OK
            constructor = _constructor(instance)
            if constructor is None:
                return _unknown(f"cannot read the constructor of {instance} to compare with {c}")
            return self.run(_fit_arity(constructor[0], constructor[1], c), c)
        if isinstance(p, _ClsT) and isinstance(p.origin, type):
            if not issubclass(p.origin, cabc.Callable):  # type: ignore[arg-type]
                return _fail(f"{p} is not callable")
            if c.params is None and isinstance(c.ret, _AnyT):
                return _OK
            signature = _call_signature(p.origin, _type_env(p.origin, p.args))
            if signature is not None:
                return self.run(signature, c)
            return _unknown(f"the call signature of {p} is not compared with {c}")
        if not isinstance(p, _CallableT):
            return _is_not(p, c)
        ret = _prefix(self.run(p.ret, c.ret), "return type of Callable")
        if ret.status is Status.INCOMPATIBLE or p.params is None or c.params is None:
            return ret
        if len(p.params) != len(c.params):
            return _fail(
                f"{p} takes {len(p.params)} argument{'s' if len(p.params) != 1 else ''}, "
                f"{c} passes {len(c.params)}"
            )
        # Parameters are contravariant: the consumer's argument must fit the producer's.
        params = self.all_of(
            _keyed(self, b, a, f"parameter {i + 1} of Callable")
            for i, (a, b) in enumerate(zip(p.params, c.params, strict=True))
        )
        return params if params.status is not Status.COMPATIBLE else ret

    # -- classes and generics ---------------------------------------------------------

    def _classes(self, p: _ClsT, c: _ClsT) -> Verdict:
        po, co = p.origin, c.origin
        if po is co:
            return self._arguments(p, c, p.args)
        if any(base is Any for base in _mro(po)):
            # A class deriving from Any (typically from an untyped library) fits anything,
            # as in mypy.
            return _OK
        if co is tuple or co in _ELEMENT_VIEWS:
            items = _namedtuple_items(po) if _is_tuple_class(po) else None
            if items is not None:
                # A NamedTuple is read as its fixed tuple of field types.
                return self.run(_TupleT(items, variadic=False), c)
        if any(co in _PROMOTIONS.get(base, ()) for base in _mro(po)):
            return _OK
        if getattr(co, "_is_protocol", False):
            return self._protocol(p, c)
        try:
            nominal = _nominal_subclass(po, co)
        except TypeError as exc:
            return _unknown(f"cannot compare {p} with {c} ({exc})")
        if not nominal:
            return self._not_subclass(p, c)
        if not c.args or all(isinstance(a, _AnyT) for a in c.args):
            return _OK
        args = self._view_as(p, co)
        if args is None:
            return _unknown(f"cannot relate the type arguments of {p} to {c}")
        return self._arguments(p, c, args)

    def _not_subclass(self, p: _ClsT, c: _ClsT) -> Verdict:
        np = sys.modules.get("numpy")
        if np is not None and c.origin is np.ndarray and p.origin in (list, tuple):
            return _fail(f"{p} is not {c} (a list is not a numpy array)")
        return _is_not(p, c)

    def _arguments(self, p: _ClsT, c: _ClsT, args: tuple[_Node, ...]) -> Verdict:
        if len(args) != len(c.args):
            # A bare class that takes arguments only through __class_getitem__ means Any.
            if not args or all(isinstance(a, _AnyT) for a in c.args):
                return _OK
            return _unknown(f"cannot relate the type arguments of {p} to {c}")
        variances = _variances(c.origin)
        checks: list[Callable[[], Verdict]] = []
        for index, (a, b) in enumerate(zip(args, c.args, strict=True)):
            where = _argument_name(c.origin, index)
            if variances[index] == "contra":
                checks.append(_keyed(self, b, a, where))
            elif variances[index] == "inv":
                checks.append(functools.partial(self._invariant, a, b, where))
            else:
                checks.append(_keyed(self, a, b, where))
        return self.all_of(checks)

    def _invariant(
        self, a: _Node, b: _Node, where: str, what: str = "the type argument is invariant"
    ) -> Verdict:
        """``a`` must fit ``b`` and ``b`` fit ``a`` (an invariant type argument)."""
        verdict = self.run(a, b)
        if verdict.status is not Status.COMPATIBLE:
            return _prefix(verdict, where)
        back = self.fork(self.bindings).run(b, a)
        if back.status is Status.COMPATIBLE:
            return _OK
        if back.status is Status.UNKNOWN:
            return _prefix(back, where)
        return _fail(f"{where}: {a} is not {b} ({what})")

    def _protocol(self, p: _ClsT, c: _ClsT) -> Verdict:
        try:
            members = te.get_protocol_members(c.origin)
        except TypeError as exc:
            return _unknown(f"cannot read protocol {c} ({exc})")
        missing = sorted(m for m in members if not _declares(p.origin, m))
        assigned = _assigned_attributes(p.origin) if missing else {}
        certain = [
            m
            for m in missing
            if callable(getattr(c.origin, m, None))
            or not _open(p.origin)
            or getattr(p.origin, "_is_protocol", False)
            or (assigned is not None and m not in assigned)
        ]
        if certain:
            return _fail(f"{p} lacks {', '.join(certain)} required by protocol {c}")
        unread = [m for m in missing if assigned is None]
        if unread:
            # A data member may be an instance attribute set in a method, and the
            # class's source, where that would show, cannot be read.
            return _unknown(f"cannot tell whether {p} has {', '.join(unread)} (protocol {c})")
        pair = (p, c)
        try:
            seen = pair in self.assumed
        except TypeError:  # an unhashable literal argument: the depth limit still holds
            seen = False
        if seen:
            return _OK  # a protocol that mentions itself is assumed to fit while compared
        self.assumed.add(pair)
        try:
            return self.all_of(
                functools.partial(self._protocol_member, p, c, name) for name in sorted(members)
            )
        finally:
            self.assumed.discard(pair)

    def _protocol_member(self, p: _ClsT, c: _ClsT, name: str) -> Verdict:
        # The protocol's own TypeVars are replaced by the consumer's arguments, so that
        # comparing the members solves a stage TypeVar (``Getter[T]``) or checks a
        # concrete one (``SupportsAbs[int]``).
        wanted = _member(c, name)
        if wanted is None:
            return _unknown(f"cannot read the type of member {name!r} of protocol {c}")
        given = _member(p, name)
        if given is None:
            return _unknown(f"cannot read the type of {p}.{name} (protocol {c})")
        where = f"member {name!r} of protocol {c}"
        if wanted.settable and not given.settable:
            what = "a method" if given.method else "read-only"
            return _fail(f"{where}: it is settable, {p}.{name} is {what}")
        got = _fit_arity(given.node, given.required, wanted.node)
        if wanted.settable:
            # A settable attribute is both read and written: its type is invariant.
            return self._invariant(got, wanted.node, where, "a settable attribute is invariant")
        return _prefix(self.run(got, wanted.node), where)

    def _view_as(self, p: _ClsT, target: Any) -> tuple[_Node, ...] | None:
        """The type arguments of ``p`` seen as an instance of the generic ``target``."""
        return _view_as(p.origin, p.args, target)


def _settled(node: _Node) -> bool:
    """Whether ``node`` fits itself without a check: no TypeVar to solve, nothing unknown."""
    try:
        return _settled_cached(node)
    except TypeError:  # an unhashable literal value
        return False


@functools.lru_cache(maxsize=4096)
def _settled_cached(node: _Node) -> bool:
    if isinstance(node, _TypeVarT | _UnknownT | _AliasT):
        return False
    if isinstance(node, _ClsT):
        return all(map(_settled, node.args))
    if isinstance(node, _UnionT):
        return all(map(_settled, node.members))
    if isinstance(node, _TupleT):
        return all(map(_settled, node.items))
    if isinstance(node, _CallableT):
        return _settled(node.ret) and all(map(_settled, node.params or ()))
    if isinstance(node, _TypedDictT):
        return all(_settled(field) for _, field, _ in node.fields)
    if isinstance(node, _NewTypeT):
        return _settled(node.supertype)
    return isinstance(node, _AnyT | _NeverT | _LiteralT)


def _expand(node: _Node) -> _Node:
    return node.value() if isinstance(node, _AliasT) else node


def _is_callback_protocol(cls: Any) -> bool:
    if not getattr(cls, "_is_protocol", False):
        return False
    try:
        return set(te.get_protocol_members(cls)) == {"__call__"}
    except TypeError:
        return False


def _call_signature(cls: Any, env: Mapping[Any, Any] | None = None) -> _CallableT | None:
    """The ``Callable`` that calling an instance of ``cls`` amounts to, if it can be read."""
    call = getattr(cls, "__call__", None)  # noqa: B004 - the method, not callable(cls)
    if not inspect.isfunction(call):
        return None
    read = _function_node(call, env or {}, skip=1)
    return None if read is None else read[0]


def _constructor(instance: _Node) -> tuple[_CallableT, int] | None:
    """Calling the class of ``instance`` as a ``Callable``, and its required arity."""
    if not isinstance(instance, _ClsT) or not isinstance(instance.origin, type):
        return None
    cls = instance.origin
    init_owner, init = _lookup(cls, "__init__")
    new_owner, new = _lookup(cls, "__new__")
    if init is object.__init__:
        if new is object.__new__:
            return _CallableT((), instance), 0
        if isinstance(new, staticmethod):
            new = new.__func__
        if inspect.isfunction(new):
            return _function_node(new, _owner_env(instance, new_owner), skip=1, ret=instance)
        return None
    if inspect.isfunction(init) and (new is object.__new__ or new is None):
        return _function_node(init, _owner_env(instance, init_owner), skip=1, ret=instance)
    return None


def _as_literals(node: _Node) -> _Node | None:
    """An enum class (or ``bool``) as the union of its values' literals, as mypy reads it."""
    if not isinstance(node, _ClsT) or not isinstance(node.origin, type):
        return None
    cls = node.origin
    if cls is bool:
        return _make_union([_normalize_literal(True), _normalize_literal(False)])
    if not issubclass(cls, enum.Enum) or issubclass(cls, enum.Flag):
        return None  # flags combine into values that are not members
    members = list(cls)
    if not members:
        return None
    return _make_union([_normalize_literal(m) for m in members])


def _lookup(cls: type, name: str) -> tuple[Any, Any]:
    """The class in ``cls``'s MRO that defines ``name``, and the definition."""
    for base in cls.__mro__:
        if name in vars(base):
            return base, vars(base)[name]
    return None, None


def _owner_env(node: _ClsT, owner: Any) -> dict[Any, Any]:
    """The TypeVar bindings of ``owner`` (a base of ``node``'s class) seen from ``node``:
    ``IntBox(Box[int])`` reads ``Box``'s ``T`` as ``int``."""
    if owner is None or owner is node.origin:
        return _type_env(node.origin, node.args)
    try:
        viewed = _view_as(node.origin, node.args, owner)
    except Exception:  # an exotic base: its TypeVars stay unsolved (gradual)
        viewed = None
    return _type_env(owner, viewed or ())


@attrs.frozen
class _Member:
    """A member of a class as seen on its instances."""

    node: _Node
    settable: bool
    method: bool = False
    #: Positional parameters without a default (a method with defaults takes fewer).
    required: int = 0


# What C-implemented methods of the builtins return (they have no annotations to read).
_BUILTIN_RETURNS: dict[tuple[Any, str], Any] = {
    (int, "__abs__"): int,
    (int, "__neg__"): int,
    (int, "__pos__"): int,
    (int, "__invert__"): int,
    (int, "__round__"): int,
    (int, "__trunc__"): int,
    (int, "__floor__"): int,
    (int, "__ceil__"): int,
    (float, "__abs__"): float,
    (float, "__neg__"): float,
    (float, "__pos__"): float,
    (float, "__trunc__"): int,
    (float, "__floor__"): int,
    (float, "__ceil__"): int,
    (complex, "__abs__"): float,
    (complex, "__neg__"): complex,
    (complex, "__pos__"): complex,
}
# Dunders whose return type Python itself enforces, whatever class implements them.
_ENFORCED_RETURNS: dict[str, Any] = {
    "__int__": int,
    "__float__": float,
    "__complex__": complex,
    "__bytes__": bytes,
    "__index__": int,
    "__bool__": bool,
    "__len__": int,
    "__length_hint__": int,
    "__hash__": int,
    "__str__": str,
    "__repr__": str,
    "__format__": str,
}


def _type_env(origin: Any, args: tuple[_Node, ...]) -> dict[Any, Any]:
    params = getattr(origin, "__parameters__", None)
    if not isinstance(params, tuple) or not params:
        return {}
    return dict(zip(params, (_to_annotation(a) for a in args), strict=False))


@functools.lru_cache(maxsize=1024)
def _class_hints(cls: Any) -> Mapping[str, Any]:
    try:
        return types.MappingProxyType(te.get_type_hints(cls))
    except Exception:  # an unresolvable annotation: members read from it are unknown
        return types.MappingProxyType({})


def _function_node(
    func: Any, env: Mapping[Any, Any], skip: int, ret: Any = None
) -> tuple[_CallableT, int] | None:
    """``func`` as a ``Callable`` (its first ``skip`` parameters left out), with the number
    of positional parameters it requires; ``None`` when its signature cannot be read."""
    try:
        hints = typing.get_type_hints(func)
        parameters = list(inspect.signature(func).parameters.values())[skip:]
    except Exception:  # unresolvable annotations: the caller says "unknown"
        return None
    module = str(getattr(func, "__module__", None) or "").partition(".")[0]
    if module in _STDLIB and not hints:
        # The standard library's types live in typeshed's stubs, not in its source: an
        # unannotated stdlib function (numbers.Complex.__abs__, Mapping.get) has unknown
        # types, not Any. Its arity still tells a definite misfit.
        unread = _UnknownT(f"{getattr(func, '__qualname__', func)} has no annotations to read")
        hints = dict.fromkeys([*(p.name for p in parameters), "return"], unread)
        hints["return"] = _ENFORCED_RETURNS.get(getattr(func, "__name__", ""), unread)
    returned = ret if ret is not None else _normalize(substitute(hints.get("return", Any), env))
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(param.kind not in positional for param in parameters):
        return _CallableT(None, returned), 0
    params = tuple(_normalize(substitute(hints.get(p.name, Any), env)) for p in parameters)
    required = sum(p.default is inspect.Parameter.empty for p in parameters)
    return _CallableT(params, returned), required


_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ())) - {"__main__"}


def _fit_arity(given: _Node, required: int, wanted: _Node) -> _Node:
    # Parameters with defaults may be left out by the caller.
    if (
        isinstance(given, _CallableT)
        and isinstance(wanted, _CallableT)
        and given.params is not None
        and wanted.params is not None
        and required <= len(wanted.params) < len(given.params)
    ):
        return _CallableT(given.params[: len(wanted.params)], given.ret)
    return given


def _frozen(cls: Any) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and getattr(params, "frozen", False):
        return True
    if _is_tuple_class(cls):
        return True
    setter = getattr(cls, "__setattr__", None)
    return attrs.has(cls) and getattr(setter, "__name__", "") == "_frozen_setattrs"


def _member(node: _ClsT, name: str) -> _Member | None:
    """The type of ``name`` on instances of ``node``; ``None`` when it cannot be read."""
    cls = node.origin
    for base in _mro(cls):
        own = vars(base)
        value = own.get(name, None)
        is_code = isinstance(value, staticmethod | classmethod | property) or callable(value)
        if name in own.get("__annotations__", {}) and not (name in own and is_code):
            hint = _class_hints(cls).get(name)
            if hint is None:
                return None
            member = _normalize(substitute(hint, _owner_env(node, base)))
            return _Member(member, settable=not _frozen(cls))
        if name not in own:
            continue
        return _code_member(base, name, value, _owner_env(node, base))
    assigned = _assigned_attributes(cls)
    if assigned is not None and assigned.get(name) is not None:
        # Set in a method (``self.item = item``): settable, of the annotated type.
        hint = assigned[name]
        owner = next((b for b in _mro(cls) if name in (_assigned_in(b) or {})), cls)
        return _Member(_normalize(substitute(hint, _owner_env(node, owner))), settable=True)
    return None


def _code_member(base: Any, name: str, value: Any, env: Mapping[Any, Any]) -> _Member | None:
    if isinstance(value, property):
        if value.fget is None:
            return None
        read = _function_node(value.fget, env, skip=1)
        return None if read is None else _Member(read[0].ret, settable=value.fset is not None)
    if isinstance(value, staticmethod | classmethod):
        skip = 1 if isinstance(value, classmethod) else 0
        read = _function_node(value.__func__, env, skip=skip)
        return None if read is None else _Member(read[0], False, True, read[1])
    if inspect.isfunction(value):
        read = _function_node(value, env, skip=1)
        return None if read is None else _Member(read[0], False, True, read[1])
    if inspect.ismethoddescriptor(value) or inspect.isbuiltin(value):
        returned = _BUILTIN_RETURNS.get((base, name), _ENFORCED_RETURNS.get(name))
        if returned is None:
            return None
        return _Member(_CallableT(None, _ClsT(returned)), False, True)
    if value is None or inspect.isdatadescriptor(value):
        return None  # a slot, or a value that tells nothing of the type
    return _Member(_normalize(type(value)), settable=True)


def _keyed(check: _Check, a: _Node, b: _Node, where: str) -> Callable[[], Verdict]:
    return lambda: _prefix(check.run(a, b), where)


def _mro(cls: Any) -> tuple[Any, ...]:
    return getattr(cls, "__mro__", ()) if isinstance(cls, type) else ()


def _declares(cls: Any, member: str) -> bool:
    """Whether instances of ``cls`` have ``member``: a class attribute or an annotated field."""
    if hasattr(cls, member):
        return True
    # Dataclass fields without a default and plain annotated attributes live only in the
    # annotations; attrs slotted fields are class attributes already.
    return any(member in getattr(base, "__annotations__", {}) for base in _mro(cls))


def _assigned_attributes(cls: Any) -> Mapping[str, Any] | None:
    """The attributes the methods of ``cls`` (and its bases) assign on ``self``, with their
    annotations where they can be read (``None`` values otherwise); ``None`` when some
    class's source cannot be read. The source is parsed, never run."""
    try:
        return _assigned_cached(cls)
    except TypeError:
        return None


@functools.lru_cache(maxsize=512)
def _assigned_cached(cls: Any) -> Mapping[str, Any] | None:
    found: dict[str, Any] = {}
    for base in reversed(_mro(cls)):
        if getattr(base, "__module__", None) == "builtins":
            continue
        own = _assigned_in(base)
        if own is None:
            return None
        found.update(own)
    return types.MappingProxyType(found)


@functools.lru_cache(maxsize=512)
def _assigned_in(cls: type) -> Mapping[str, Any] | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except Exception:  # no source (C, exec, a REPL) or none that parses: unknown
        return None
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, Any] = {}
    for method in body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or not method.args.args:
            continue
        self_name = method.args.args[0].arg
        params = {a.arg: a.annotation for a in method.args.args + method.args.kwonlyargs}
        for statement in ast.walk(method):
            targets: list[ast.expr] = []
            annotation: ast.expr | None = None
            if isinstance(statement, ast.Assign):
                targets = statement.targets
                if isinstance(statement.value, ast.Name):
                    annotation = params.get(statement.value.id)
                elif isinstance(statement.value, ast.Constant):
                    # ``self.name = "x"``: mypy infers the literal's class.
                    value = statement.value.value
                    annotation = None if value is None else ast.Name(type(value).__name__)
            elif isinstance(statement, ast.AnnAssign):
                targets, annotation = [statement.target], statement.annotation
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == self_name
                ):
                    read = _read_annotation(annotation, namespace)
                    if read is not None or target.attr not in found:
                        found[target.attr] = read
    return types.MappingProxyType(found)


def _read_annotation(annotation: Any, namespace: dict[str, Any]) -> Any:
    if annotation is None:
        return None
    try:
        # The same evaluation of a type expression that typing.get_type_hints performs.
        return eval(ast.unparse(annotation), namespace)
    except Exception:  # a name that does not resolve: the member's type is unknown
        return None


def _open(cls: Any) -> bool:
    """Whether instances of ``cls`` may carry attributes the class does not declare."""
    return any("__dict__" in vars(base) for base in _mro(cls))


def _nominal_subclass(cls: Any, base: Any) -> bool:
    if getattr(base, "__module__", None) == "numbers":
        # The numbers ABCs know the builtins only by run-time registration, which a
        # static checker does not see: to mypy an int is not a numbers.Number.
        return base in _mro(cls)
    return issubclass(cls, base)


def _is_tuple_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple)


def _is_mapping_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, cabc.Mapping)


def _namedtuple_items(cls: type) -> tuple[_Node, ...] | None:
    fields = getattr(cls, "_fields", None)
    if fields is None:
        return None
    try:
        hints = te.get_type_hints(cls)
    except Exception:
        hints = {}
    return tuple(_normalize(hints.get(name, Any)) for name in fields)


def _variances(origin: Any) -> list[str]:
    params = getattr(origin, "__parameters__", ())
    if origin in _ARITY or not isinstance(params, tuple):
        if origin is cabc.Generator or origin is cabc.Coroutine:
            # Generator[Yield, Send, Return]: the send type flows in.
            return ["co", "contra", "co"]
        if origin is cabc.AsyncGenerator:
            return ["co", "contra"]
        return ["co"] * 8
    # A user generic's TypeVar is invariant unless declared otherwise: only the built-in
    # containers are read covariantly (the contract's departure from mypy).
    return [_variance(param) for param in params] + ["co"] * 8


def _variance(param: Any) -> str:
    if getattr(param, "__covariant__", False):
        return "co"
    if getattr(param, "__contravariant__", False):
        return "contra"
    return "inv"


_ARGUMENT_NAMES: dict[Any, tuple[str, ...]] = {
    dict: ("key type", "value type"),
    collections.defaultdict: ("key type", "value type"),
    collections.OrderedDict: ("key type", "value type"),
    collections.ChainMap: ("key type", "value type"),
    cabc.Mapping: ("key type", "value type"),
    cabc.MutableMapping: ("key type", "value type"),
    cabc.ItemsView: ("key type", "value type"),
    type: ("class",),
}


def _argument_name(origin: Any, index: int) -> str:
    name = _class_name(origin)
    np = sys.modules.get("numpy")
    if np is not None and origin is np.ndarray:
        return "dtype of ndarray"
    names = _ARGUMENT_NAMES.get(origin)
    if names is not None and index < len(names):
        return f"{names[index]} of {name}"
    if origin in _ELEMENT_CONTAINERS and index == 0:
        return f"element type of {name}"
    return f"type argument {index + 1} of {name}"


def _view_as(origin: Any, args: tuple[_Node, ...], target: Any) -> tuple[_Node, ...] | None:
    if origin is target:
        return args
    if origin in _FIXED_ELEMENTS and target in _ELEMENT_VIEWS:
        return (_ClsT(_FIXED_ELEMENTS[origin]),)
    if origin in _MAPPINGS or origin is collections.Counter:
        key = args[0] if args else _AnyT()
        value: _Node = _ClsT(int) if origin is collections.Counter else _AnyT()
        if origin is not collections.Counter and len(args) == 2:
            value = args[1]
        if target in _MAPPINGS:
            return (key, value)
        if target in _ELEMENT_VIEWS:
            return (key,)
        return None
    if origin in _ELEMENT_CONTAINERS and target in _ELEMENT_VIEWS:
        return (args[0] if args else _AnyT(),)
    if origin is cabc.Coroutine and target is cabc.Awaitable:
        return (args[2] if len(args) == 3 else _AnyT(),)
    if origin is cabc.ItemsView and target in _ELEMENT_VIEWS:
        pair = _TupleT(tuple(args) if len(args) == 2 else (_AnyT(), _AnyT()), variadic=False)
        return (pair,)
    if origin in _ARITY:
        return None
    return _view_through_bases(origin, args, target)


def _view_through_bases(
    origin: Any, args: tuple[_Node, ...], target: Any
) -> tuple[_Node, ...] | None:
    params = getattr(origin, "__parameters__", None) or ()
    env = dict(zip(params, (_to_annotation(a) for a in args), strict=False))
    bases: tuple[Any, ...] = (
        getattr(origin, "__orig_bases__", None) or getattr(origin, "__bases__", None) or ()
    )
    for base in bases:
        base_origin = typing.get_origin(base) or base
        if base_origin is typing.Generic or not isinstance(base_origin, type):
            continue
        try:
            if not issubclass(base_origin, target):
                continue
        except TypeError:
            continue
        base_args = tuple(_normalize(substitute(a, env)) for a in typing.get_args(base))
        if base_origin is tuple:
            element = _normalize_tuple(base, typing.get_args(base))
            if isinstance(element, _TupleT):
                return _view_as(tuple, (element.element(),), target)
        return _view_as(base_origin, _fill_args(base_origin, list(base_args)), target)
    return None


# --------------------------------------------------------------------------------------
# Public API


def check(produced: Any, consumed: Any, bindings: Mapping[Any, Any] | None = None) -> Verdict:
    """Check that a value of type ``produced`` may be passed where ``consumed`` is expected.

    Parameters
    ----------
    produced
        The type handed over (e.g. a stage's return annotation).
    consumed
        The type expected (e.g. the next stage's data parameter annotation). Its
        ``TypeVar``\\ s are solved from ``produced``.
    bindings
        ``TypeVar`` solutions already known; the verdict carries them plus the new ones.

    Returns
    -------
    Verdict
        ``COMPATIBLE``; ``INCOMPATIBLE`` with ``reason`` saying which sub-type failed; or
        ``UNKNOWN`` with ``reason`` saying what could not be decided.

    Examples
    --------
    >>> from typing import TypeVar
    >>> T = TypeVar("T")
    >>> verdict = check(list[int], list[T])
    >>> verdict.status, verdict.bindings[T]
    (<Status.COMPATIBLE: 'compatible'>, <class 'int'>)
    """
    if not bindings:
        try:
            return _check_cached(produced, consumed, _spelling(produced), _spelling(consumed))
        except TypeError:  # unhashable annotation metadata: check without the cache
            pass
    return _check_uncached(produced, consumed, bindings or {})


@functools.lru_cache(maxsize=4096)
def _check_cached(produced: Any, consumed: Any, *spellings: Any) -> Verdict:
    return _check_uncached(produced, consumed, {})


def _check_uncached(produced: Any, consumed: Any, bindings: Mapping[Any, Any]) -> Verdict:
    run = _Check(bindings)
    try:
        verdict = run.run(_normalize(produced), _normalize(consumed))
    except Exception as exc:  # a check must never crash on an exotic type
        return _unknown(
            f"cannot compare {format_type(produced)} with {format_type(consumed)}: {exc}"
        )
    # Verdicts are cached and shared, so their bindings must not be mutable.
    return Verdict(verdict.status, verdict.reason, types.MappingProxyType(run.bindings))


def is_compatible(produced: Any, consumed: Any) -> bool:
    """``True`` when a value of type ``produced`` fits a parameter annotated ``consumed``.

    Undecidable (exotic) cases count as compatible; use :func:`check` to tell them apart.

    Examples
    --------
    >>> is_compatible(list[int], list[float])
    True
    >>> is_compatible(list[str], list[int])
    False
    """
    return check(produced, consumed).ok


def explain(produced: Any, consumed: Any) -> str | None:
    """Why ``produced`` does not fit ``consumed``, or ``None`` when it does.

    Examples
    --------
    >>> explain(list[str], list[int])
    'element type of list: str is not int'
    >>> explain(int, float) is None
    True
    """
    verdict = check(produced, consumed)
    if verdict.status is Status.INCOMPATIBLE:
        return verdict.reason
    return None


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
    return str(_normalize(tp))
