"""The rules: may a value of one normalized type be handed where another is expected?

Internal to packflow; :mod:`packflow.typecheck` is the public face. :class:`Check` is one
recursive visitor over :mod:`packflow._types.model` nodes, threading the ``TypeVar``
bindings of one check; the structural lookups below it read members, protocols,
constructors and generic bases from the classes themselves.
"""

from __future__ import annotations

import ast
import collections
import collections.abc as cabc
import enum
import functools
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import typing_extensions as te

from packflow._types.model import (
    ARITY,
    TYPEVARTUPLE_TYPES,
    AliasT,
    AnyT,
    CallableT,
    ClsT,
    LiteralT,
    NeverT,
    NewTypeT,
    Node,
    OverloadT,
    ParamListT,
    ParamSpecT,
    TupleT,
    TypedDictT,
    TypeGuardT,
    TypeVarT,
    TypeVarTupleT,
    UnionT,
    UnknownT,
    class_name,
    fill_args,
    format_type,
    literal_repr,
    make_union,
    normalize,
    normalize_literal,
    normalize_params,
    normalize_tuple,
    substitute,
    to_annotation,
)


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


# --------------------------------------------------------------------------------------
# The rules. ``Check`` threads the TypeVar bindings through one check.

_OK = Verdict(Status.COMPATIBLE)
_VARIADICS = (TypeVarTupleT, ParamSpecT, ParamListT)


def _fail(reason: str) -> Verdict:
    return Verdict(Status.INCOMPATIBLE, reason)


def _unknown(note: str) -> Verdict:
    return Verdict(Status.UNKNOWN, note)


def _prefix(verdict: Verdict, where: str) -> Verdict:
    if verdict.status is Status.COMPATIBLE or verdict.reason is None:
        return verdict
    return Verdict(verdict.status, f"{where}: {verdict.reason}", verdict.bindings)


def _is_not(produced: Node, consumed: Node) -> Verdict:
    mine, theirs = str(produced), str(consumed)
    if mine == theirs and isinstance(produced, ClsT) and isinstance(consumed, ClsT):
        # Two classes of the same name from different modules.
        mine = f"{getattr(produced.origin, '__module__', '?')}.{mine}"
        theirs = f"{getattr(consumed.origin, '__module__', '?')}.{theirs}"
    return _fail(f"{mine} is not {theirs}")


class Check:
    """One run of the rules; ``bindings`` are the TypeVars solved so far."""

    __slots__ = ("assumed", "bindings", "depth")

    def __init__(
        self, bindings: Mapping[Any, Any], assumed: set[tuple[Node, Node]] | None = None
    ) -> None:
        self.bindings: dict[Any, Any] = dict(bindings)
        self.depth = 0
        # Pairs of recursive aliases under comparison: met again, they are assumed to fit
        # (the usual coinductive reading of recursive types).
        self.assumed: set[tuple[Node, Node]] = set() if assumed is None else assumed

    def fork(self, bindings: Mapping[Any, Any]) -> Check:
        """A trial run with its own ``bindings`` that shares the alias assumptions."""
        return Check(bindings, self.assumed)

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

    def run(self, p: Node, c: Node) -> Verdict:
        if (p is c or (type(p) is type(c) and p == c)) and _settled(p):
            return _OK  # every type fits itself; the common case of two matching stages
        self.depth += 1
        try:
            if self.depth > 60:
                return _unknown(f"types nest too deeply to compare ({p} -> {c})")
            return self._rules(p, c)
        finally:
            self.depth -= 1

    def _rules(self, p: Node, c: Node) -> Verdict:
        if isinstance(p, AliasT) or isinstance(c, AliasT):
            return self._aliases(p, c)
        if isinstance(c, AnyT) or isinstance(p, AnyT | NeverT):
            return _OK
        if isinstance(p, TypeVarT):
            return self.run(self._producer_typevar(p), c)
        if isinstance(c, TypeVarT):
            return self._solve(p, c)
        if isinstance(p, UnionT):
            return self._union_producer(p.members, p, c)
        if isinstance(c, UnionT):
            return self._into_union(p, c)
        if isinstance(c, ClsT) and c.origin is object:
            return _OK
        if isinstance(p, UnknownT):
            return _unknown(p.why)
        if isinstance(c, UnknownT):
            return _unknown(c.why)
        if isinstance(c, NeverT):
            return _fail(f"{p} is not Never (nothing fits Never)")
        if isinstance(c, TypeGuardT):
            return self._into_guard(p, c)
        if isinstance(p, TypeGuardT):
            return self.run(ClsT(bool), c)  # a type guard is a bool where no guard is wanted
        if isinstance(p, ParamListT) and isinstance(c, ParamListT):
            return self._parameters(p.as_callable(), c.as_callable())
        if isinstance(p, _VARIADICS) or isinstance(c, _VARIADICS):
            return _unknown(f"cannot compare {p} with {c}")
        if isinstance(c, NewTypeT):
            return self._into_newtype(p, c)
        if isinstance(p, NewTypeT):
            return self.run(p.supertype, c)
        if isinstance(p, LiteralT):
            if isinstance(c, LiteralT):
                if (p.kind, p.value) == (c.kind, c.value):
                    return _OK
                return _is_not(p, c)
            return _prefix(self.run(normalize(p.kind), c), f"value {literal_repr(p.value)}")
        if isinstance(c, LiteralT):
            values = _as_literals(p)
            if values is not None and self.run(values, c).status is Status.COMPATIBLE:
                return _OK
            return _fail(f"{p} is not {c} (only the literal value itself fits)")
        if isinstance(c, TypedDictT):
            return self._into_typeddict(p, c)
        if isinstance(p, TypedDictT):
            return self._from_typeddict(p, c)
        if isinstance(c, TupleT):
            return self._into_tuple(p, c)
        if isinstance(c, CallableT):
            return self._into_callable(p, c)
        if isinstance(p, TupleT):
            return self.run(ClsT(tuple, (p.element(),), raw=p.raw), c)
        callback = isinstance(c, ClsT) and _is_callback_protocol(c.origin)
        if callback and isinstance(p, ClsT) and p.origin is type:
            assert isinstance(c, ClsT)
            signature = _call_signature(c.origin)
            if signature is None:
                return _unknown(f"cannot read the call signature of protocol {c}")
            return self.run(p, signature)  # the class's constructor, as a Callable
        if isinstance(p, CallableT):
            if isinstance(c, ClsT) and _is_callback_protocol(c.origin):
                signature = _call_signature(c.origin)
                if signature is None:
                    return _unknown(f"cannot read the call signature of protocol {c}")
                return self.run(p, signature)
            return _fail(f"a callable {p} is not {c}")
        if isinstance(p, ClsT) and isinstance(c, ClsT):
            return self._classes(p, c)
        return _unknown(f"no rule relates {p} to {c}")

    def _aliases(self, p: Node, c: Node) -> Verdict:
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
            if isinstance(consumed, TypeVarT) and not isinstance(produced, TypeVarT):
                return self._solve(p, consumed)  # solved to the alias, which reads best
            if isinstance(produced, UnionT) and not isinstance(consumed, AnyT | TypeVarT):
                # Name the alias, not its expansion, when one of its members fails.
                return self._union_producer(produced.members, p, consumed)
            return self.run(produced, consumed)
        finally:
            self.assumed.discard(pair)

    def _member(self, member: Node, union: Node, c: Node) -> Verdict:
        verdict = self.run(member, c)
        if verdict.status is Status.INCOMPATIBLE:
            suffix = f" (a member of the union {union})"
            reason = str(verdict.reason)
            # A recursive alias meets its own union again one level down: say it once.
            return _fail(reason if reason.endswith(suffix) else reason + suffix)
        return verdict

    def _union_producer(self, members: tuple[Node, ...], union: Node, c: Node) -> Verdict:
        return self.all_of(functools.partial(self._member, m, union, c) for m in members)

    # -- TypeVars -----------------------------------------------------------------

    def _producer_typevar(self, p: TypeVarT) -> Node:
        node = normalize(self.bindings[p.var]) if p.var in self.bindings else p
        # An unsolved TypeVar on the producing side is gradual: nothing is known of it.
        return AnyT() if isinstance(node, TypeVarT) else node

    def _solve(self, p: Node, c: TypeVarT) -> Verdict:
        var = c.var
        constraints = getattr(var, "__constraints__", ())
        bound = getattr(var, "__bound__", None)
        if constraints:
            for constraint in constraints:
                trial = self.fork(self.bindings)
                if trial.run(p, normalize(constraint)).ok:
                    return self._bind(var, normalize(constraint))
            options = ", ".join(format_type(x) for x in constraints)
            return _fail(f"{p} fits none of the constraints of {var.__name__} ({options})")
        if bound is not None:
            verdict = self.run(p, normalize(bound))
            if verdict.status is Status.INCOMPATIBLE:
                return _fail(f"{p} is outside the bound of {var.__name__}: {verdict.reason}")
            if verdict.status is Status.UNKNOWN:
                solved = self._bind(var, p)
                return solved if not solved.ok else _prefix(verdict, f"bound of {var.__name__}")
        return self._bind(var, p)

    def _bind(self, var: Any, node: Node) -> Verdict:
        if isinstance(node, AnyT):
            self.bindings.setdefault(var, Any)
            return _OK
        previous = self.bindings.get(var)
        if previous is None or previous is Any:
            self.bindings[var] = to_annotation(node)
            return _OK
        old = normalize(previous)
        if self.fork({}).run(node, old).status is Status.COMPATIBLE:
            return _OK
        if self.fork({}).run(old, node).status is Status.COMPATIBLE:
            self.bindings[var] = to_annotation(node)
            return _OK
        # Two unrelated solutions: like mypy's join, the variable becomes wide enough
        # for both (a union is the most precise such type).
        joined = make_union([old, node])
        bound = getattr(var, "__bound__", None)
        if bound is not None and not self.fork({}).run(joined, normalize(bound)).ok:
            return _fail(f"{var.__name__} cannot be both {old} and {node}")
        self.bindings[var] = to_annotation(joined)
        return _OK

    # -- unions, NewType, TypedDict ---------------------------------------------------

    def _into_union(self, p: Node, c: UnionT) -> Verdict:
        unknown: Verdict | None = None
        failures: list[Verdict] = []
        # Concrete members first: None fits the None of ``T | None`` rather than solving T.
        order = sorted(c.members, key=lambda m: isinstance(m, TypeVarT))
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

    def _into_guard(self, p: Node, c: TypeGuardT) -> Verdict:
        # As in mypy: a guard's verdict narrows, so a plain bool is no guard, TypeGuard is
        # covariant in its type and TypeIs (which also narrows on False) invariant.
        if not isinstance(p, TypeGuardT):
            return _fail(f"{p} is not {c} (only a type guard is a type guard)")
        if p.strict is not c.strict:
            return _fail(f"{p} is not {c} (TypeGuard and TypeIs narrow differently)")
        where = f"guarded type of {c}"
        if c.strict:
            return self._invariant(p.guarded, c.guarded, where, "TypeIs is invariant")
        return _prefix(self.run(p.guarded, c.guarded), where)

    def _into_newtype(self, p: Node, c: NewTypeT) -> Verdict:
        node = p
        while isinstance(node, NewTypeT):
            if node.newtype is c.newtype:
                return _OK
            node = node.supertype
        return _fail(f"{p} is not {c} (a NewType: wrap the value with {c}(...))")

    def _into_typeddict(self, p: Node, c: TypedDictT) -> Verdict:
        if isinstance(p, TypedDictT):
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
        if isinstance(p, ClsT) and _is_mapping_class(p.origin):
            key_type, value_type = self._mapping_args(p)
            # The one gradual exemption (DESIGN.md): a ``dict[str, Any]`` may hold the
            # TypedDict, because its keys cannot be known statically. ``object`` values,
            # concrete value types and read-only mappings do not get it (as in mypy).
            if not issubclass(p.origin, dict):
                return _fail(
                    f"{p} is not {c} (only dict[str, Any] fits a TypedDict consumer, "
                    f"not another mapping)"
                )
            if self.run(key_type, ClsT(str)).status is Status.INCOMPATIBLE:
                return _fail(f"{p} has keys of type {key_type}, {c} has str keys")
            if not isinstance(value_type, AnyT):
                return _fail(
                    f"value type of {class_name(p.origin)}: {value_type} is not Any "
                    f"(only dict[str, Any] fits the TypedDict {c}; its values are "
                    "checked key by key)"
                )
            return _OK
        return _fail(f"{p} is not {c} (a TypedDict is a dict with declared keys)")

    def _from_typeddict(self, p: TypedDictT, c: Node) -> Verdict:
        # A TypedDict may hold more keys than it declares (structural subtypes add keys),
        # so, as in mypy, its values are only known to be ``object``: it is a
        # ``Mapping[str, object]``. It also fits ``dict[str, Any]``, the records contract
        # (DESIGN.md), but no other dict.
        if isinstance(c, ClsT) and _is_mapping_class(c.origin):
            key_type, value_type = c.args if len(c.args) == 2 else (AnyT(), AnyT())
            verdict = self.run(ClsT(str), key_type)
            if verdict.status is Status.INCOMPATIBLE:
                return _fail(f"key type of {c}: the keys of {p} are str, not {key_type}")
            if issubclass(c.origin, dict):
                # Only dict itself: a TypedDict is no Counter, OrderedDict or defaultdict.
                if c.origin is dict and isinstance(value_type, AnyT):
                    return _OK
                return _fail(
                    f"{p} is not {c} (a TypedDict fits dict[str, Any] or Mapping[str, object])"
                )
            if c.origin is not cabc.Mapping:
                return _fail(f"{p} is not {c} (a TypedDict is a read-only Mapping[str, object])")
            values = self.run(ClsT(object), value_type)
            if values.status is Status.INCOMPATIBLE:
                return _fail(
                    f"value type of {c}: the values of {p} are only known to be object "
                    f"(it may hold keys beyond those it declares), not {value_type}"
                )
            return values
        return self.run(ClsT(cabc.Mapping, (ClsT(str), ClsT(object))), c)

    def _mapping_args(self, p: ClsT) -> tuple[Node, Node]:
        args = self._view_as(p, cabc.Mapping)
        if args is None or len(args) != 2:
            return AnyT(), AnyT()
        return args[0], args[1]

    # -- tuples and callables ---------------------------------------------------------

    def _into_tuple(self, p: Node, c: TupleT) -> Verdict:
        if isinstance(p, ClsT) and isinstance(p.origin, type) and issubclass(p.origin, tuple):
            fields = _namedtuple_items(p.origin)
            if fields is None:
                return self.run(TupleT((AnyT(),), variadic=True), c)
            p = TupleT(fields, variadic=False, raw=p.raw)
        if not isinstance(p, TupleT):
            return _is_not(p, c)
        if p.variadic and isinstance(p.items[0], AnyT):
            return _OK  # bare ``tuple`` is ``tuple[Any, ...]``: gradual in its length too
        if any(isinstance(item, TypeVarTupleT) for item in p.items):
            # An unsolved TypeVarTuple on the producing side: its items are not known.
            return _unknown(f"the items of {p} are not known (a TypeVarTuple)")
        if c.variadic:
            return self.all_of(
                _keyed(self, item, c.items[0], f"item {i} of tuple")
                for i, item in enumerate(p.items)
            )
        if c.star is not None:
            return self._into_unbounded_tuple(p, c, c.star)
        if p.variadic or p.star is not None:
            return _fail(f"{p} has no fixed length; {c} needs exactly {len(c.items)} items")
        if len(p.items) != len(c.items):
            return _fail(f"{p} has {len(p.items)} items, {c} needs {len(c.items)}")
        return self.all_of(
            _keyed(self, a, b, f"item {i} of tuple")
            for i, (a, b) in enumerate(zip(p.items, c.items, strict=True))
        )

    def _into_unbounded_tuple(self, p: TupleT, c: TupleT, star: int) -> Verdict:
        """``p`` into ``tuple[A, *tuple[X, ...], B]`` or ``tuple[A, *Ts, B]`` (PEP 646)."""
        before, middle, after = c.items[:star], c.items[star], c.items[star + 1 :]
        if p.variadic:
            if before or after:
                return _fail(f"{p} may have fewer than the {len(c.items) - 1} items {c} needs")
            if isinstance(middle, TypeVarTupleT):
                return self._bind_items(middle.var, p)
            return _prefix(self.run(p.items[0], middle), "items of tuple")
        head: tuple[Node, ...] = p.items
        tail: tuple[Node, ...] = ()
        spread: Node | None = None
        if p.star is not None:
            head, spread, tail = p.items[: p.star], p.items[p.star], p.items[p.star + 1 :]
        fixed = len(head) + len(tail)
        if spread is None and fixed < len(before) + len(after):
            return _fail(f"{p} has {fixed} items, {c} needs at least {len(before) + len(after)}")
        if spread is not None and (len(head) < len(before) or len(tail) < len(after)):
            return _fail(f"{p} may have fewer items than {c} needs around its unpacked part")
        items = list(head) if spread is None else [*head, *tail]
        split = len(items) - len(after)
        checks = [
            _keyed(self, a, b, f"item {i} of tuple")
            for i, (a, b) in enumerate(zip(items[: len(before)], before, strict=True))
        ]
        checks += [
            _keyed(self, a, b, f"item {split + i} of tuple")
            for i, (a, b) in enumerate(zip(items[split:], after, strict=True))
        ]
        if spread is None:
            inner = items[len(before) : split]
        else:
            inner = [*head[len(before) :], spread, *tail[: len(tail) - len(after)]]
        if isinstance(middle, TypeVarTupleT):
            if spread is not None:
                return _unknown(f"cannot solve {middle} from {p}")
            solved = TupleT(tuple(inner), variadic=False)
            checks.append(lambda: self._bind_items(middle.var, solved))
        else:
            checks += [
                _keyed(self, a, middle, f"item {len(before) + i} of tuple")
                for i, a in enumerate(inner)
            ]
        return self.all_of(checks)

    def _bind_items(self, var: Any, items: TupleT) -> Verdict:
        """Solve the TypeVarTuple ``var`` to the tuple ``items``."""
        previous = self.bindings.get(var)
        if previous is None:
            self.bindings[var] = to_annotation(items)
            return _OK
        old = normalize(previous)
        if self._invariant(items, old, f"items of {var.__name__}").status is Status.COMPATIBLE:
            return _OK
        return _unknown(f"{var.__name__} would stand for both {old} and {items}")

    def _into_callable(self, p: Node, c: CallableT) -> Verdict:
        if isinstance(p, ClsT) and p.origin is type:
            # A class is a callable returning its instances.
            instance = p.args[0] if p.args else AnyT()
            verdict = self.run(instance, c.ret)
            if verdict.status is not Status.COMPATIBLE or c.params is None:
                return _prefix(verdict, "return type of Callable")
            if isinstance(instance, AnyT):
                return _OK
            constructor = _constructor(instance)
            if constructor is None:
                return _unknown(f"cannot read the constructor of {instance} to compare with {c}")
            return self.run(constructor, c)
        if isinstance(p, ClsT) and isinstance(p.origin, type):
            if not issubclass(p.origin, cabc.Callable):  # type: ignore[arg-type]
                return _fail(f"{p} is not callable")
            if c.params is None and isinstance(c.ret, AnyT):
                return _OK
            builtin = _builtin_method(p, "__call__")
            if builtin is not None:
                return self.run(builtin, c)
            signature = _call_signature(p.origin, _type_env(p.origin, p.args))
            if signature is not None:
                return self.run(signature, c)
            return _unknown(f"the call signature of {p} is not compared with {c}")
        if isinstance(p, OverloadT):
            return self._overload(p, c)
        if not isinstance(p, CallableT):
            return _is_not(p, c)
        if isinstance(_expand(c.ret), TypeGuardT) and not isinstance(_expand(p.ret), TypeGuardT):
            # As in mypy: only a type guard narrows, whatever else the callable returns.
            return _fail(
                f"return type of Callable: {p.ret} is not {c.ret} (only a type guard is a "
                "type guard)"
            )
        ret = _prefix(self.run(p.ret, c.ret), "return type of Callable")
        if ret.status is Status.INCOMPATIBLE:
            return ret
        params = self._parameters(p, c)
        return params if params.status is not Status.COMPATIBLE else ret

    def _overload(self, p: OverloadT, c: Node) -> Verdict:
        """An overloaded function fits when one of its signatures does."""
        unknown: Verdict | None = None
        first: Verdict | None = None
        for item in p.items:
            trial = self.fork(self.bindings)
            verdict = trial.run(item, c)
            if verdict.status is Status.COMPATIBLE:
                self.bindings = trial.bindings
                return _OK
            if verdict.status is Status.UNKNOWN:
                unknown = unknown or verdict
            else:
                first = first or verdict
        if unknown is not None:
            return unknown
        return _fail(f"no signature of the overloaded {p} fits {c}: {first and first.reason}")

    def _parameters(self, p: CallableT, c: CallableT) -> Verdict:
        """Whether every call ``c`` allows is a call ``p`` accepts (parameters are
        contravariant: the consumer's arguments must fit the producer's parameters)."""
        p, c = self._spread(p), self._spread(c)
        if c.params is None or p.params is None:
            return _OK  # ``...`` on either side: gradual
        if isinstance(c.rest, UnknownT):
            return _unknown(c.rest.why)
        if isinstance(p.rest, UnknownT):
            return _unknown(p.rest.why)
        if c.star is not None and p.star is None and p.rest is None:
            return _fail(f"{p} takes no *args, {c} may pass any number of arguments")
        missing = [name for name in p.keywords if name not in c.keywords]
        if missing and c.rest is None:
            # A consumer's ``...`` (``Concatenate[A, ...]``) may pass keywords too.
            return _fail(
                f"{p} requires keyword argument{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; {c} does not pass {'them' if len(missing) > 1 else 'it'}"
            )
        untaken = [
            name
            for name in c.kwonly
            if name not in p.kwonly and name not in p.names and not p.kwargs
        ]
        if untaken and p.rest is None:
            return _fail(f"{c} may be called with {untaken[0]}=...; {p} takes no such argument")
        exact = c.rest is None
        verdict = self._accepts(p, c, exact)
        if verdict.status is Status.COMPATIBLE and (c.kwonly or (p.keywords and exact)):
            return _unknown(f"the keyword parameters of {p} and {c} are not compared")
        if verdict.status is not Status.COMPATIBLE or not isinstance(c.rest, ParamSpecT):
            return verdict
        # ``Callable[Concatenate[A, P], R]`` in a consumer: P is what ``p`` takes after A.
        return self._bind_params(c.rest.var, _remaining(p, len(c.params)))

    def _accepts(self, p: CallableT, c: CallableT, exact: bool) -> Verdict:
        """Whether ``p`` may be called with ``c``'s positional arguments (and, unless
        ``exact``, any further ones, which are not known)."""
        assert p.params is not None and c.params is not None
        given = len(p.params)
        passed = len(c.params)
        fewest = passed - c.optional
        required = given - p.optional
        if exact and fewest < required:
            at_least = " at least" if p.optional or p.star is not None or p.rest else ""
            return _fail(
                f"{p} takes{at_least} {_count(required, 'argument')}, {c} passes "
                f"{fewest if fewest == passed else f'as few as {fewest}'}"
            )
        checks: list[Callable[[], Verdict]] = []
        for index, argument in enumerate(c.params):
            if index < given:
                wanted: Node | None = p.params[index]
            else:
                wanted = p.star
            if wanted is None:
                if isinstance(p.rest, ParamSpecT):
                    return _unknown(f"the parameters of {p.rest} are not known ({p})")
                if p.rest is not None:
                    break  # ``Concatenate[A, ...]``: the rest is gradual
                return _fail(f"{p} takes {_count(given, 'argument')}, {c} passes {passed}")
            checks.append(_keyed(self, argument, wanted, f"parameter {index + 1} of Callable"))
            named = c.names[index] if index < len(c.names) else None
            if named is not None:
                mine = p.names[index] if index < len(p.names) else None
                if mine != named:
                    # The consumer's caller may write ``f(x=...)``, as mypy checks it.
                    how = "by position only" if mine is None else f"as {mine!r}"
                    return _fail(
                        f"parameter {index + 1} may be passed by name ({named}=...); "
                        f"{p} takes it {how}"
                    )
        if c.star is not None and p.star is not None:
            checks.append(_keyed(self, c.star, p.star, "*args of Callable"))
        verdict = self.all_of(checks)
        if verdict.status is Status.COMPATIBLE and exact and isinstance(p.rest, ParamSpecT):
            return _unknown(f"the parameters of {p.rest} are not known ({p})")
        return verdict

    def _spread(self, node: CallableT) -> CallableT:
        """``node`` with a solved ``ParamSpec`` replaced by the parameters it stands for."""
        rest = node.rest
        if not isinstance(rest, ParamSpecT) or rest.var not in self.bindings:
            return node
        solved = normalize_params(self.bindings[rest.var])
        if solved.params is None:
            return attrs.evolve(node, params=None, rest=None)
        assert node.params is not None
        return attrs.evolve(node, params=node.params + solved.params, rest=solved.rest)

    def _bind_params(self, var: Any, params: Any) -> Verdict:
        if params is None:
            return _unknown(f"cannot tell what {var.__name__} stands for")
        previous = self.bindings.get(var)
        if previous is None:
            self.bindings[var] = params
            return _OK
        old, new = normalize_params(previous), normalize_params(params)
        if self._invariant(new, old, f"parameters of {var.__name__}").status is Status.COMPATIBLE:
            return _OK
        return _unknown(f"{var.__name__} would stand for both {old} and {new}")

    # -- classes and generics ---------------------------------------------------------

    def _classes(self, p: ClsT, c: ClsT) -> Verdict:
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
                return self.run(TupleT(items, variadic=False), c)
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
        if not c.args or all(isinstance(a, AnyT) for a in c.args):
            return _OK
        args = self._view_as(p, co)
        if args is None and co not in _mro(po):
            # A subclass only by __subclasshook__ (a protocol with ``__iter__``): its
            # element type is what its own method yields.
            args = _structural_view(p, co)
        if args is None:
            return _unknown(f"cannot relate the type arguments of {p} to {c}")
        return self._arguments(p, c, args)

    def _not_subclass(self, p: ClsT, c: ClsT) -> Verdict:
        np = sys.modules.get("numpy")
        if np is not None and c.origin is np.ndarray and p.origin in (list, tuple):
            return _fail(f"{p} is not {c} (a list is not a numpy array)")
        return _is_not(p, c)

    def _arguments(self, p: ClsT, c: ClsT, args: tuple[Node, ...]) -> Verdict:
        params = getattr(c.origin, "__parameters__", ())
        if isinstance(params, tuple) and any(isinstance(v, TYPEVARTUPLE_TYPES) for v in params):
            return self._variadic_arguments(p, c, args, params)
        if len(args) != len(c.args):
            # A bare class that takes arguments only through __class_getitem__ means Any.
            if not args or all(isinstance(a, AnyT) for a in c.args):
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

    def _variadic_arguments(
        self, p: ClsT, c: ClsT, args: tuple[Node, ...], params: tuple[Any, ...]
    ) -> Verdict:
        """The arguments of a generic over a ``TypeVarTuple`` (``Array[int, str]``, PEP 646):
        the variadic part is invariant, item by item, and solves a consumer's ``*Ts``."""
        if not args or not c.args:
            return _OK  # a bare variadic generic takes any arguments (gradual)
        if any(isinstance(a, TypeVarTupleT | UnknownT) for a in args):
            return _unknown(f"the type arguments of {p} are not known")
        if any(isinstance(a, UnknownT) for a in c.args):
            return _unknown(f"the type arguments of {c} are not known")
        star = next(i for i, v in enumerate(params) if isinstance(v, TYPEVARTUPLE_TYPES))
        after = len(params) - star - 1
        spread = [i for i, a in enumerate(c.args) if isinstance(a, TypeVarTupleT)]
        fixed = len(c.args) - len(spread)
        if len(args) < fixed or (not spread and len(args) != fixed):
            return _fail(f"{p} has {_count(len(args), 'type argument')}, {c} has {len(c.args)}")
        variances = _variances(c.origin)
        checks: list[Callable[[], Verdict]] = []

        def compare(a: Node, b: Node, variance: str, where: str) -> None:
            if variance == "contra":
                checks.append(_keyed(self, b, a, where))
            elif variance == "inv":
                checks.append(functools.partial(self._invariant, a, b, where))
            else:
                checks.append(_keyed(self, a, b, where))

        tail = len(args) - after
        for index in range(star):
            compare(args[index], c.args[index], variances[index], f"type argument {index + 1}")
        for offset in range(after):
            compare(
                args[tail + offset],
                c.args[len(c.args) - after + offset],
                variances[star + 1 + offset],
                f"type argument {tail + offset + 1}",
            )
        middle = args[star:tail]
        wanted = c.args[star : len(c.args) - after]
        if spread:
            if len(wanted) != 1:
                return _unknown(f"cannot solve the type arguments of {c}")
            solved = TupleT(tuple(middle), variadic=False)
            var = c.args[spread[0]]
            assert isinstance(var, TypeVarTupleT)
            checks.append(lambda: self._bind_items(var.var, solved))
        else:
            for index, (a, b) in enumerate(zip(middle, wanted, strict=True)):
                where = f"type argument {star + index + 1} of {class_name(c.origin)}"
                checks.append(functools.partial(self._invariant, a, b, where))
        return self.all_of(checks)

    def _invariant(
        self, a: Node, b: Node, where: str, what: str = "the type argument is invariant"
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

    def _protocol(self, p: ClsT, c: ClsT) -> Verdict:
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

    def _protocol_member(self, p: ClsT, c: ClsT, name: str) -> Verdict:
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
        got = given.node
        if name != "__call__" and isinstance(wanted.node, CallableT):
            # mypy compares a protocol's methods ignoring the names of their positional
            # parameters; only a call signature is compared by name.
            wanted = attrs.evolve(wanted, node=attrs.evolve(wanted.node, names=()))
        if wanted.settable:
            # A settable attribute is both read and written: its type is invariant.
            return self._invariant(got, wanted.node, where, "a settable attribute is invariant")
        return _prefix(self.run(got, wanted.node), where)

    def _view_as(self, p: ClsT, target: Any) -> tuple[Node, ...] | None:
        """The type arguments of ``p`` seen as an instance of the generic ``target``."""
        return _view_as(p.origin, p.args, target)


def _settled(node: Node) -> bool:
    """Whether ``node`` fits itself without a check: no TypeVar to solve, nothing unknown."""
    try:
        return _settled_cached(node)
    except TypeError:  # an unhashable literal value
        return False


@functools.lru_cache(maxsize=4096)
def _settled_cached(node: Node) -> bool:
    if isinstance(node, TypeVarT | UnknownT | AliasT):
        return False
    if isinstance(node, ClsT):
        return all(map(_settled, node.args))
    if isinstance(node, UnionT):
        return all(map(_settled, node.members))
    if isinstance(node, TupleT):
        return all(map(_settled, node.items))
    if isinstance(node, CallableT):
        return _settled(node.ret) and all(map(_settled, node.params or ()))
    if isinstance(node, TypedDictT):
        return all(_settled(field) for _, field, _ in node.fields)
    if isinstance(node, NewTypeT):
        return _settled(node.supertype)
    if isinstance(node, TypeGuardT):
        return _settled(node.guarded)
    return isinstance(node, AnyT | NeverT | LiteralT)


def _expand(node: Node) -> Node:
    return node.value() if isinstance(node, AliasT) else node


def _is_callback_protocol(cls: Any) -> bool:
    if not getattr(cls, "_is_protocol", False):
        return False
    try:
        return set(te.get_protocol_members(cls)) == {"__call__"}
    except TypeError:
        return False


def _call_signature(cls: Any, env: Mapping[Any, Any] | None = None) -> CallableT | None:
    """The ``Callable`` that calling an instance of ``cls`` amounts to, if it can be read."""
    call = getattr(cls, "__call__", None)  # noqa: B004 - the method, not callable(cls)
    if not inspect.isfunction(call):
        return None
    return _function_node(call, env or {}, skip=1)


def _structural_view(node: ClsT, target: Any) -> tuple[Node, ...] | None:
    """``node`` as an ``Iterable[X]`` or ``Iterator[X]`` read from its ``__iter__`` or
    ``__next__``, for a class that is one only structurally."""
    name = {cabc.Iterable: "__iter__", cabc.Iterator: "__next__"}.get(target)
    member = None if name is None else _member(node, name)
    if member is None or not isinstance(member.node, CallableT):
        return None
    returned = member.node.ret
    if target is cabc.Iterator:
        return (returned,)
    if isinstance(returned, ClsT) and isinstance(returned.origin, type):
        return _view_as(returned.origin, returned.args, cabc.Iterator)
    return None


def _constructor(instance: Node) -> Node | None:
    """Calling the class of ``instance`` as a ``Callable`` (an overload for some builtins)."""
    if not isinstance(instance, ClsT) or not isinstance(instance.origin, type):
        return None
    cls = instance.origin
    if cls in _BUILTIN_CONSTRUCTORS:
        return _BUILTIN_CONSTRUCTORS[cls](instance)
    init_owner, init = _lookup(cls, "__init__")
    new_owner, new = _lookup(cls, "__new__")
    if init is object.__init__:
        if new is object.__new__:
            return CallableT((), instance)
        if isinstance(new, staticmethod):
            new = new.__func__
        if inspect.isfunction(new):
            return _function_node(new, _owner_env(instance, new_owner), skip=1, ret=instance)
        return None
    if inspect.isfunction(init) and (new is object.__new__ or new is None):
        return _function_node(init, _owner_env(instance, init_owner), skip=1, ret=instance)
    return None


def _as_literals(node: Node) -> Node | None:
    """An enum class (or ``bool``) as the union of its values' literals, as mypy reads it."""
    if not isinstance(node, ClsT) or not isinstance(node.origin, type):
        return None
    cls = node.origin
    if cls is bool:
        return make_union([normalize_literal(True), normalize_literal(False)])
    if not issubclass(cls, enum.Enum) or issubclass(cls, enum.Flag):
        return None  # flags combine into values that are not members
    members = list(cls)
    if not members:
        return None
    return make_union([normalize_literal(m) for m in members])


def _lookup(cls: type, name: str) -> tuple[Any, Any]:
    """The class in ``cls``'s MRO that defines ``name``, and the definition."""
    for base in cls.__mro__:
        if name in vars(base):
            return base, vars(base)[name]
    return None, None


def _owner_env(node: ClsT, owner: Any) -> dict[Any, Any]:
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

    node: Node
    settable: bool
    method: bool = False


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


def _fn(params: tuple[Node, ...], ret: Node, optional: int = 0) -> CallableT:
    return CallableT(params, ret, optional=optional)


def _element(node: ClsT) -> Node:
    args = _view_as(node.origin, node.args, cabc.Iterable)
    return args[0] if args else AnyT()


def _key_value(node: ClsT) -> tuple[Node, Node]:
    args = _view_as(node.origin, node.args, cabc.Mapping)
    return (args[0], args[1]) if args and len(args) == 2 else (AnyT(), AnyT())


_INT, _BOOL, _STR, _OBJECT = ClsT(int), ClsT(bool), ClsT(str), ClsT(object)
_INDEX = ClsT(typing.SupportsIndex)
_BUFFER = make_union([ClsT(bytes), ClsT(bytearray), ClsT(memoryview)])

#: A member of a builtin or ``collections.abc`` class, as typeshed declares it (their
#: methods are written in C or left unannotated), read on an instance ``node``.
_Method = Callable[[ClsT], Node]


def _sequence(cls: Any, sliced: _Method | None, contains: Node = _OBJECT) -> dict[Any, _Method]:
    def getitem(node: ClsT) -> Node:
        by_index = _fn((_INDEX,), _element(node))
        if sliced is None:
            return by_index
        return OverloadT((by_index, _fn((ClsT(slice),), sliced(node))))

    return {
        (cls, "__getitem__"): getitem,
        (cls, "__len__"): lambda node: _fn((), _INT),
        (cls, "__iter__"): lambda node: _fn((), ClsT(cabc.Iterator, (_element(node),))),
        (cls, "__contains__"): lambda node: _fn((contains,), _BOOL),
        (cls, "__reversed__"): lambda node: _fn((), ClsT(cabc.Iterator, (_element(node),))),
    }


def _mapping(cls: Any) -> dict[Any, _Method]:
    def get(node: ClsT) -> Node:
        key, value = _key_value(node)
        maybe = make_union([value, ClsT(type(None))])
        return OverloadT((_fn((key,), maybe), _fn((key, value), value)))

    return {
        (cls, "get"): get,
        (cls, "__getitem__"): lambda node: _fn(_key_value(node)[:1], _key_value(node)[1]),
        (cls, "__len__"): lambda node: _fn((), _INT),
        (cls, "__iter__"): lambda node: _fn((), ClsT(cabc.Iterator, (_key_value(node)[0],))),
        (cls, "__contains__"): lambda node: _fn((_OBJECT,), _BOOL),
    }


def _collection(cls: Any) -> dict[Any, _Method]:
    return {
        (cls, "__len__"): lambda node: _fn((), _INT),
        (cls, "__iter__"): lambda node: _fn((), ClsT(cabc.Iterator, (_element(node),))),
        (cls, "__contains__"): lambda node: _fn((_OBJECT,), _BOOL),
    }


def _same(node: ClsT) -> Node:
    return ClsT(node.origin, node.args)


_BUILTIN_METHODS: dict[tuple[Any, str], _Method] = {
    **_sequence(list, lambda node: ClsT(list, (_element(node),))),
    **_sequence(tuple, lambda node: TupleT((_element(node),), variadic=True)),
    **_sequence(str, _same, contains=_STR),
    **_sequence(bytes, _same, contains=make_union([_INDEX, _BUFFER])),
    **_sequence(bytearray, _same, contains=make_union([_INDEX, _BUFFER])),
    **_sequence(range, _same),
    **_sequence(memoryview, _same),
    **_sequence(collections.deque, None),
    **_sequence(cabc.Sequence, lambda node: ClsT(cabc.Sequence, (_element(node),))),
    **_sequence(cabc.MutableSequence, lambda node: ClsT(cabc.MutableSequence, (_element(node),))),
    **_mapping(dict),
    **_mapping(collections.OrderedDict),
    **_mapping(collections.defaultdict),
    **_mapping(collections.Counter),
    **_mapping(cabc.Mapping),
    **_collection(set),
    **_collection(frozenset),
    (cabc.Sized, "__len__"): lambda node: _fn((), _INT),
    (cabc.Iterable, "__iter__"): lambda node: _fn((), ClsT(cabc.Iterator, (_element(node),))),
    (cabc.Container, "__contains__"): lambda node: _fn((_OBJECT,), _BOOL),
    (cabc.Iterator, "__next__"): lambda node: _fn((), _element(node)),
    # ``partial.__call__(self, /, *args: Any, **kwargs: Any) -> T``
    (functools.partial, "__call__"): lambda node: CallableT(
        None, node.args[0] if node.args else AnyT()
    ),
}


def _builtin_method(node: ClsT, name: str) -> Node | None:
    """A member of ``node`` from the table, when its class inherits it from a builtin."""
    for base in _mro(node.origin):
        if name in vars(base):
            method = _BUILTIN_METHODS.get((base, name))
            return None if method is None else method(node)
    return None


def _union(*members: Any) -> Node:
    return make_union([ClsT(m) if isinstance(m, type) else m for m in members])


# The builtins' constructors as typeshed declares them (``int(x: ConvertibleToInt = ...)``).
_BUILTIN_CONSTRUCTORS: dict[type, _Method] = {
    int: lambda node: OverloadT(
        (
            _fn((_union(str, _BUFFER, typing.SupportsInt, typing.SupportsIndex),), node, 1),
            _fn((_union(str, bytes, bytearray), _INDEX), node),
        )
    ),
    float: lambda node: _fn((_union(str, _BUFFER, typing.SupportsFloat, _INDEX),), node, 1),
    complex: lambda node: OverloadT(
        (
            _fn(
                (
                    _union(complex, typing.SupportsComplex, typing.SupportsFloat, _INDEX),
                    _union(complex, typing.SupportsFloat, _INDEX),
                ),
                node,
                2,
            ),
            _fn((_STR,), node),
        )
    ),
    bool: lambda node: _fn((_OBJECT,), node, 1),
    str: lambda node: OverloadT((_fn((_OBJECT,), node, 1), _fn((_BUFFER, _STR, _STR), node, 2))),
    list: lambda node: _fn((ClsT(cabc.Iterable, (_element(node),)),), node, 1),
    set: lambda node: _fn((ClsT(cabc.Iterable, (_element(node),)),), node, 1),
    frozenset: lambda node: _fn((ClsT(cabc.Iterable, (_element(node),)),), node, 1),
}


def _type_env(origin: Any, args: tuple[Node, ...]) -> dict[Any, Any]:
    params = getattr(origin, "__parameters__", None)
    if not isinstance(params, tuple) or not params:
        return {}
    return dict(zip(params, (to_annotation(a) for a in args), strict=False))


@functools.lru_cache(maxsize=1024)
def _class_hints(cls: Any) -> Mapping[str, Any]:
    try:
        return types.MappingProxyType(te.get_type_hints(cls))
    except Exception:  # an unresolvable annotation: members read from it are unknown
        return types.MappingProxyType({})


def _function_node(
    func: Any, env: Mapping[Any, Any], skip: int, ret: Any = None
) -> CallableT | None:
    """``func`` as a ``Callable`` (its first ``skip`` parameters left out): its positional
    parameters and how many have defaults, its ``*args``, its required keyword-only
    parameters, and ``*args: P.args`` as the ``ParamSpec`` ``P``; ``None`` when its
    signature cannot be read."""
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
        unread = UnknownT(f"{getattr(func, '__qualname__', func)} has no annotations to read")
        hints = dict.fromkeys([*(p.name for p in parameters), "return"], unread)
        hints["return"] = _ENFORCED_RETURNS.get(getattr(func, "__name__", ""), unread)
    returned = ret if ret is not None else normalize(substitute(hints.get("return", Any), env))
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params: list[Node] = []
    names: list[str | None] = []
    optional = 0
    star: Node | None = None
    rest: Node | None = None
    keywords: list[str] = []
    kwonly: list[str] = []
    kwargs = False
    for param in parameters:
        hint = hints.get(param.name, Any)
        if param.kind in positional:
            params.append(normalize(substitute(hint, env)))
            # ``__x`` is the pre-PEP 570 spelling of a positional-only parameter.
            private = param.name.startswith("__") and not param.name.endswith("__")
            by_name = param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and not private
            names.append(param.name if by_name else None)
            optional = optional + 1 if param.default is not inspect.Parameter.empty else 0
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            spec = getattr(hint, "__origin__", None) if _is_paramspec_part(hint) else None
            if spec is not None:
                listed = normalize_params(env.get(spec, spec))
                if listed.params is None:
                    return CallableT(None, returned)
                params.extend(listed.params)
                rest = listed.rest
            else:
                star = normalize(substitute(hint, env))
        elif param.kind is inspect.Parameter.KEYWORD_ONLY:
            kwonly.append(param.name)
            if param.default is param.empty:
                keywords.append(param.name)
        elif param.kind is inspect.Parameter.VAR_KEYWORD and not _is_paramspec_part(hint):
            kwargs = True
    return CallableT(
        tuple(params),
        returned,
        rest=rest,
        star=star,
        keywords=tuple(keywords),
        optional=optional,
        names=tuple(names),
        kwonly=tuple(kwonly),
        kwargs=kwargs,
    )


def _is_paramspec_part(hint: Any) -> bool:
    return type(hint).__name__ in ("ParamSpecArgs", "ParamSpecKwargs")


def _remaining(p: CallableT, skip: int) -> Any:
    """What a ``ParamSpec`` stands for when it takes ``p``'s parameters after the first
    ``skip``, as an annotation; ``None`` when that cannot be written."""
    if p.params is None:
        return Ellipsis
    if p.star is not None or p.keywords or p.optional:
        return None
    left = [to_annotation(node) for node in p.params[skip:]]
    if p.rest is None:
        return left
    tail = Ellipsis if isinstance(p.rest, AnyT) else getattr(p.rest, "var", None)
    if tail is None:
        return None
    if not left:
        return tail
    return te.Concatenate[tuple([*left, tail])]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ())) - {"__main__"}


def _frozen(cls: Any) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and getattr(params, "frozen", False):
        return True
    if _is_tuple_class(cls):
        return True
    setter = getattr(cls, "__setattr__", None)
    return attrs.has(cls) and getattr(setter, "__name__", "") == "_frozen_setattrs"


def _member(node: ClsT, name: str) -> _Member | None:
    """The type of ``name`` on instances of ``node``; ``None`` when it cannot be read."""
    cls = node.origin
    for base in _mro(cls):
        own = vars(base)
        value = own.get(name, None)
        is_code = isinstance(value, staticmethod | classmethod | property) or callable(value)
        if name in _own_annotations(base) and not (name in own and is_code):
            hint = _class_hints(cls).get(name)
            if hint is None:
                return None
            member = normalize(substitute(hint, _owner_env(node, base)))
            return _Member(member, settable=not _frozen(cls))
        if name not in own:
            if (base, name) in _BUILTIN_METHODS:
                # typeshed declares it where the C class inherits it (memoryview's
                # ``__contains__`` works through ``__iter__``).
                return _Member(_BUILTIN_METHODS[base, name](node), False, True)
            continue
        return _code_member(node, base, name, value, _owner_env(node, base))
    assigned = _assigned_attributes(cls)
    if assigned is not None and assigned.get(name) is not None:
        # Set in a method (``self.item = item``): settable, of the annotated type.
        hint = assigned[name]
        owner = next((b for b in _mro(cls) if name in (_assigned_in(b) or {})), cls)
        return _Member(normalize(substitute(hint, _owner_env(node, owner))), settable=True)
    return None


def _code_member(
    node: ClsT, base: Any, name: str, value: Any, env: Mapping[Any, Any]
) -> _Member | None:
    if (base, name) in _BUILTIN_METHODS:
        # Builtins and collections.abc have no annotations to read: their typeshed
        # signatures are in the table.
        return _Member(_BUILTIN_METHODS[base, name](node), False, True)
    if isinstance(value, property):
        if value.fget is None:
            return None
        read = _function_node(value.fget, env, skip=1)
        return None if read is None else _Member(read.ret, settable=value.fset is not None)
    if isinstance(value, staticmethod | classmethod):
        skip = 1 if isinstance(value, classmethod) else 0
        read = _function_node(value.__func__, env, skip=skip)
        return None if read is None else _Member(read, False, True)
    if inspect.isfunction(value):
        read = _function_node(value, env, skip=1)
        return None if read is None else _Member(read, False, True)
    if inspect.ismethoddescriptor(value) or inspect.isbuiltin(value):
        returned = _BUILTIN_RETURNS.get((base, name), _ENFORCED_RETURNS.get(name))
        if returned is None:
            return None
        return _Member(CallableT(None, ClsT(returned)), False, True)
    if value is None or inspect.isdatadescriptor(value):
        return None  # a slot, or a value that tells nothing of the type
    return _Member(normalize(type(value)), settable=True)


def _keyed(check: Check, a: Node, b: Node, where: str) -> Callable[[], Verdict]:
    return lambda: _prefix(check.run(a, b), where)


def _mro(cls: Any) -> tuple[Any, ...]:
    return getattr(cls, "__mro__", ()) if isinstance(cls, type) else ()


def _declares(cls: Any, member: str) -> bool:
    """Whether instances of ``cls`` have ``member``: a class attribute or an annotated field."""
    # Looked up along the MRO, not with hasattr: a metaclass's members (an Enum class's
    # ``__getitem__``) belong to the class, not to its instances.
    if any(member in vars(base) or (base, member) in _BUILTIN_METHODS for base in _mro(cls)):
        return True
    # Dataclass fields without a default and plain annotated attributes live only in the
    # annotations; attrs slotted fields are class attributes already.
    return any(member in _own_annotations(base) for base in _mro(cls))


def _own_annotations(cls: Any) -> Mapping[str, Any]:
    # The class's own annotations (``type.__annotations__`` itself is a descriptor).
    try:
        return inspect.get_annotations(cls)
    except Exception:  # not a class, or a broken __annotations__: nothing declared
        return {}


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


def _namedtuple_items(cls: type) -> tuple[Node, ...] | None:
    fields = getattr(cls, "_fields", None)
    if fields is None:
        return None
    try:
        hints = te.get_type_hints(cls)
    except Exception:
        hints = {}
    return tuple(normalize(hints.get(name, Any)) for name in fields)


# Generic builtins that are not containers, with typeshed's (invariant) type variable.
_INVARIANT_BUILTINS = frozenset({functools.partial})


def _variances(origin: Any) -> list[str]:
    params = getattr(origin, "__parameters__", ())
    if origin in ARITY or not isinstance(params, tuple):
        if origin is cabc.Generator or origin is cabc.Coroutine:
            # Generator[Yield, Send, Return]: the send type flows in.
            return ["co", "contra", "co"]
        if origin is cabc.AsyncGenerator:
            return ["co", "contra"]
        return ["co"] * 8
    if origin in _INVARIANT_BUILTINS:
        return ["inv"]
    # A user generic's TypeVar is invariant unless declared otherwise: only the built-in
    # containers are read covariantly (the contract's departure from mypy).
    return [_variance(param) for param in params] + ["co"] * 8


def _variance(param: Any) -> str:
    if type(param).__name__ == "ParamSpec":
        # Parameter lists compare as callables do (contravariantly, as in mypy): the
        # rule for two ParamListT nodes already reads them that way round.
        return "co"
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
    name = class_name(origin)
    np = sys.modules.get("numpy")
    if np is not None and origin is np.ndarray:
        return "dtype of ndarray"
    names = _ARGUMENT_NAMES.get(origin)
    if names is not None and index < len(names):
        return f"{names[index]} of {name}"
    if origin in _ELEMENT_CONTAINERS and index == 0:
        return f"element type of {name}"
    return f"type argument {index + 1} of {name}"


def _view_as(origin: Any, args: tuple[Node, ...], target: Any) -> tuple[Node, ...] | None:
    if origin is target:
        return args
    if origin in _FIXED_ELEMENTS and target in _ELEMENT_VIEWS:
        return (ClsT(_FIXED_ELEMENTS[origin]),)
    if origin in _MAPPINGS or origin is collections.Counter:
        key = args[0] if args else AnyT()
        value: Node = ClsT(int) if origin is collections.Counter else AnyT()
        if origin is not collections.Counter and len(args) == 2:
            value = args[1]
        if target in _MAPPINGS:
            return (key, value)
        if target in _ELEMENT_VIEWS:
            return (key,)
        return None
    if origin in _ELEMENT_CONTAINERS and target in _ELEMENT_VIEWS:
        return (args[0] if args else AnyT(),)
    if origin is cabc.Coroutine and target is cabc.Awaitable:
        return (args[2] if len(args) == 3 else AnyT(),)
    if origin is cabc.ItemsView and target in _ELEMENT_VIEWS:
        pair = TupleT(tuple(args) if len(args) == 2 else (AnyT(), AnyT()), variadic=False)
        return (pair,)
    if origin in ARITY:
        return None
    return _view_through_bases(origin, args, target)


def _view_through_bases(
    origin: Any, args: tuple[Node, ...], target: Any
) -> tuple[Node, ...] | None:
    params = getattr(origin, "__parameters__", None) or ()
    env = dict(zip(params, (to_annotation(a) for a in args), strict=False))
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
        base_args = tuple(normalize(substitute(a, env)) for a in typing.get_args(base))
        if base_origin is tuple:
            element = normalize_tuple(base, typing.get_args(base))
            if isinstance(element, TupleT):
                return _view_as(tuple, (element.element(),), target)
        return _view_as(base_origin, fill_args(base_origin, list(base_args)), target)
    return None
