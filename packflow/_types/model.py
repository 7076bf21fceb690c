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
    """A tuple: ``items`` in order, or ``tuple[X, ...]`` (``variadic``, one item).

    ``star`` marks the item an unpacked part stands for (PEP 646): in
    ``tuple[int, *tuple[str, ...], float]`` item 1 (``str``) repeats any number of
    times, and in ``tuple[int, *Ts]`` item 1 is the :class:`TypeVarTupleT` ``Ts``.
    """

    items: tuple[Node, ...]
    variadic: bool
    raw: Any = attrs.field(default=None, eq=False)
    star: int | None = None

    def __str__(self) -> str:
        if self.variadic:
            return f"tuple[{self.items[0]}, ...]"
        if not self.items:
            return "tuple[()]"
        shown = [str(item) for item in self.items]
        if self.star is not None:
            item = self.items[self.star]
            spread = isinstance(item, TypeVarTupleT)
            shown[self.star] = str(item) if spread else f"*tuple[{item}, ...]"
        return f"tuple[{', '.join(shown)}]"

    def element(self) -> Node:
        if self.variadic:
            return self.items[0]
        if not self.items:
            return NeverT()
        if any(isinstance(item, TypeVarTupleT) for item in self.items):
            return UnknownT(f"the items of {self} are not known (a TypeVarTuple)", raw=self.raw)
        return make_union(self.items)


@attrs.frozen
class CallableT(Node):
    """A callable: ``Callable[[A, B], R]``, ``Callable[..., R]`` (``params`` is ``None``),
    ``Callable[Concatenate[A, ...], R]`` or ``Callable[Concatenate[A, P], R]`` (``rest``
    is ``AnyT`` or the :class:`ParamSpecT`), or a function read from its signature, whose
    ``*args`` type is ``star``, whose last ``optional`` positional parameters have a
    default and whose required keyword-only parameters are ``keywords``. ``names`` are
    the names by which a caller may pass its positional parameters (``None``: by
    position only; a ``Callable[...]`` annotation has none).
    """

    params: tuple[Node, ...] | None  # None: any parameters (``...``)
    ret: Node
    raw: Any = attrs.field(default=None, eq=False)
    rest: Node | None = None
    star: Node | None = None
    keywords: tuple[str, ...] = ()
    optional: int = 0
    names: tuple[str | None, ...] = ()
    #: Every keyword-only parameter (with a default or not), and whether ``**kwargs``.
    kwonly: tuple[str, ...] = ()
    kwargs: bool = False

    def __str__(self) -> str:
        return f"Callable[{self.parameters()}, {self.ret}]"

    def parameters(self) -> str:
        """The parameter part as written inside ``Callable[...]``."""
        if self.params is None:
            return "..."
        shown = [str(p) for p in self.params]
        for index in range(len(shown) - self.optional, len(shown)):
            shown[index] += " = ..."
        if self.star is not None:
            shown.append(f"*args: {self.star}")
        if self.kwonly or self.keywords:
            shown.append("*")
            for name in self.kwonly or self.keywords:
                shown.append(name if name in self.keywords else f"{name}=...")
        if self.rest is None:
            return f"[{', '.join(shown)}]"
        tail = "..." if isinstance(self.rest, AnyT) else str(self.rest)
        if not shown:
            return tail
        return f"Concatenate[{', '.join([*shown, tail])}]"


@attrs.frozen
class ParamListT(Node):
    """The argument of a ``ParamSpec`` parameter of a generic class (``Step[[int], R]``)."""

    params: tuple[Node, ...] | None
    rest: Node | None = None
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return CallableT(self.params, AnyT(), rest=self.rest).parameters()

    def as_callable(self) -> CallableT:
        """A callable taking these parameters (its return type is not compared)."""
        return CallableT(self.params, AnyT(), rest=self.rest)


@attrs.frozen
class OverloadT(Node):
    """An overloaded function (a builtin's method read from the member table): it fits a
    callable when one of its ``items`` does."""

    items: tuple[CallableT, ...]
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"Overload[{', '.join(map(str, self.items))}]"


@attrs.frozen
class TypeGuardT(Node):
    """``TypeGuard[X]`` (``strict`` false) or ``TypeIs[X]``: a ``bool`` that narrows."""

    guarded: Node
    strict: bool
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"{'TypeIs' if self.strict else 'TypeGuard'}[{self.guarded}]"


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
class ParamSpecT(Node):
    """A ``ParamSpec``: a list of parameters, solved like a ``TypeVar``."""

    var: Any
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return str(self.var.__name__)


@attrs.frozen
class TypeVarTupleT(Node):
    """A ``TypeVarTuple`` where it is unpacked (``*Ts``): any number of types."""

    var: Any
    raw: Any = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"*{self.var.__name__}"


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
_TYPE_IS = _special_forms("TypeIs")
_CONCATENATES = _special_forms("Concatenate")
_UNPACKS = _special_forms("Unpack")
_TYPEVAR_TYPES: tuple[type, ...] = tuple({typing.TypeVar, te.TypeVar})
_PARAMSPEC_TYPES: tuple[type, ...] = tuple({typing.ParamSpec, te.ParamSpec})
TYPEVARTUPLE_TYPES: tuple[type, ...] = tuple(
    {getattr(typing, "TypeVarTuple", te.TypeVarTuple), te.TypeVarTuple}
)
_NO_DEFAULTS = tuple({getattr(typing, "NoDefault", None), getattr(te, "NoDefault", None), None})

#: What :func:`typevar_default` answers for a type parameter without a default.
NO_DEFAULT = object()


def typevar_default(param: Any) -> Any:
    """The default of a ``TypeVar``, ``ParamSpec`` or ``TypeVarTuple`` (PEP 696), or
    ``NO_DEFAULT``."""
    default = getattr(param, "__default__", None)
    if any(default is none for none in _NO_DEFAULTS):
        return NO_DEFAULT
    return default


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
    if isinstance(tp, _PARAMSPEC_TYPES):
        return ParamSpecT(tp, raw=tp)
    if isinstance(tp, TYPEVARTUPLE_TYPES) or _unpacked(tp) is not None:
        return UnknownT(f"{_fallback_repr(tp)} outside a tuple or a generic's arguments", raw=tp)
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
        strict = any(origin is form for form in _TYPE_IS)
        return TypeGuardT(normalize(args[0]), strict, raw=tp)
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
        return ClsT(origin, fill_args(origin, _class_arguments(origin, args)), raw=tp)
    if isinstance(tp, type):
        return ClsT(tp, fill_args(tp, []), raw=tp)
    if tp is Ellipsis:
        return UnknownT("`...` outside Callable or tuple", raw=tp)
    return UnknownT(f"unsupported construct {_fallback_repr(tp)}", raw=tp)


def fill_args(origin: type, args: list[Node]) -> tuple[Node, ...]:
    """The type arguments of ``origin``: those given, then each missing one's default
    (PEP 696), ``Any`` where there is none (a bare generic)."""
    arity = ARITY.get(origin)
    if arity is not None:
        return tuple(args) if args else tuple(AnyT() for _ in range(arity))
    params = getattr(origin, "__parameters__", ())
    if not isinstance(params, tuple) or len(args) >= len(params):
        return tuple(args)
    if any(isinstance(p, TYPEVARTUPLE_TYPES) for p in params):
        # A bare variadic generic: its arguments are unknown in number (gradual).
        return tuple(args)
    filled = list(args)
    env = {p: to_annotation(a) for p, a in zip(params, args, strict=False)}
    for param in params[len(args) :]:
        default = typevar_default(param)
        if default is NO_DEFAULT:
            spec = isinstance(param, _PARAMSPEC_TYPES)
            node: Node = ParamListT(None, raw=Ellipsis) if spec else AnyT()
        elif isinstance(param, _PARAMSPEC_TYPES):
            node = normalize_params(substitute(default, env), default)
        else:
            node = normalize(substitute(default, env))
        env[param] = to_annotation(node)
        filled.append(node)
    return tuple(filled)


def _class_arguments(origin: type, args: tuple[Any, ...]) -> list[Node]:
    """The arguments of a user generic: a ``ParamSpec``'s as a parameter list, an unpacked
    fixed tuple spread into its items, ``*Ts`` as a :class:`TypeVarTupleT`."""
    params = getattr(origin, "__parameters__", ())
    if not isinstance(params, tuple):
        params = ()
    found: list[Node] = []
    written: dict[Any, Any] = {}
    for index, arg in enumerate(args):
        param = params[index] if index < len(params) else None
        if param is not None:
            if arg is typevar_default(param) and any(arg is p for p in params[:index]):
                # typing_extensions fills a default naming an earlier parameter
                # (``T2 = TypeVar("T2", default=T1)``) with that parameter itself.
                arg = written.get(arg, arg)
            written[param] = arg
        if isinstance(param, _PARAMSPEC_TYPES) and _is_param_list(arg):
            found.append(normalize_params(arg, arg))
            continue
        inner = _unpacked(arg)
        if inner is None:
            found.append(normalize(arg))
        elif isinstance(inner, TYPEVARTUPLE_TYPES):
            found.append(TypeVarTupleT(inner, raw=arg))
        else:
            spread = normalize(inner)
            if isinstance(spread, TupleT) and not spread.variadic and spread.star is None:
                found.extend(spread.items)
            else:
                found.append(UnknownT(f"the unpacked {_fallback_repr(inner)}", raw=arg))
    return found


def _is_param_list(arg: Any) -> bool:
    return (
        arg is Ellipsis
        or isinstance(arg, (list, tuple, *_PARAMSPEC_TYPES))
        or any(typing.get_origin(arg) is form for form in _CONCATENATES)
    )


def _unpacked(arg: Any) -> Any:
    """What ``*X`` or ``Unpack[X]`` unpacks, or ``None`` when ``arg`` is not unpacked."""
    if getattr(arg, "__unpacked__", False) is True and typing.get_origin(arg) is tuple:
        return tuple[typing.get_args(arg)]  # type: ignore[misc]
    if any(typing.get_origin(arg) is form for form in _UNPACKS):
        args = typing.get_args(arg)
        return args[0] if args else None
    return None


def normalize_params(value: Any, raw: Any = None) -> ParamListT:
    """The parameter list ``value`` (``[A, B]``, ``...``, a ``ParamSpec``, ``Concatenate``)."""
    if value is Ellipsis:
        return ParamListT(None, raw=raw)
    if isinstance(value, _PARAMSPEC_TYPES):
        return ParamListT((), ParamSpecT(value, raw=value), raw=raw)
    if isinstance(value, list | tuple):
        return ParamListT(tuple(normalize(p) for p in value), raw=raw)
    if any(typing.get_origin(value) is form for form in _CONCATENATES):
        *prefix, last = typing.get_args(value)
        if last is Ellipsis:
            rest: Node = AnyT()
        elif isinstance(last, _PARAMSPEC_TYPES):
            rest = ParamSpecT(last, raw=last)
        else:
            rest = UnknownT(f"unsupported parameters {_fallback_repr(value)}", raw=value)
        return ParamListT(tuple(normalize(p) for p in prefix), rest, raw=raw)
    return ParamListT(None, UnknownT(f"unsupported parameters {_fallback_repr(value)}"), raw=raw)


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
    items: list[Node] = []
    star: int | None = None
    for arg in args:
        inner = _unpacked(arg)
        if inner is None:
            items.append(normalize(arg))
            continue
        if isinstance(inner, TYPEVARTUPLE_TYPES):
            spread: Node = TypeVarTupleT(inner, raw=arg)
        else:
            unpacked = normalize(inner)
            if not isinstance(unpacked, TupleT):
                return UnknownT(f"cannot unpack {_fallback_repr(inner)} in a tuple", raw=tp)
            if not unpacked.variadic and unpacked.star is None:
                items.extend(unpacked.items)  # ``*tuple[int, str]`` is two items
                continue
            if star is not None or not unpacked.variadic:
                return UnknownT(f"more than one unbounded part in {_fallback_repr(tp)}", raw=tp)
            spread = unpacked.items[0]
        if star is not None:
            return UnknownT(f"more than one unbounded part in {_fallback_repr(tp)}", raw=tp)
        star = len(items)
        items.append(spread)
    if star is not None and len(items) == 1 and not isinstance(items[0], TypeVarTupleT):
        return TupleT((items[0],), variadic=True, raw=tp)
    return TupleT(tuple(items), variadic=False, raw=tp, star=star)


def _normalize_callable(tp: Any, args: tuple[Any, ...]) -> Node:
    if not args:
        return CallableT(None, AnyT(), raw=tp)
    params, ret = args[0], args[-1]
    if len(args) != 2:
        params, ret = list(args[:-1]), args[-1]
    listed = normalize_params(params)
    if isinstance(listed.rest, UnknownT):
        return listed.rest
    return CallableT(listed.params, normalize(ret), raw=tp, rest=listed.rest)


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
    arguments: list[Any] = []
    for param in params:
        value = bindings.get(param, param)
        if value is param or not isinstance(param, TYPEVARTUPLE_TYPES):
            arguments.append(value)
            continue
        # A TypeVarTuple is solved to a tuple of types, which it stands for one by one.
        solved = normalize(value)
        if isinstance(solved, TupleT) and not solved.variadic and solved.star is None:
            arguments.extend(to_annotation(item) for item in solved.items)
        else:
            arguments.append(te.Unpack[value])
    try:
        return tp[tuple(arguments)]
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
