"""The reference path: a plain interpreter of a plan, one record at a time.

It defines what the preprocessors do: it skips what is missing and raises the precise
error (record index, field). The compiled loops (:mod:`packflow.preprocess.compiled`)
hand it every row they cannot settle on their own, and the tests hold the two to the same
answers. The helpers at the end give ``packflow.utils`` the same readings.
"""

from __future__ import annotations

from typing import Any, Final

from packflow.exceptions import PreprocessorInitError, PreprocessorRuntimeError
from packflow.preprocess.plan import MISSING, SCALARS, Path, Plan

__all__ = [
    "CleanKeys",
    "flatten_record",
    "is_branch",
    "not_a_dict",
    "read_flat_key",
    "read_nested_path",
    "reference_record",
    "reference_values",
    "write_nested_path",
]


def not_a_dict(index: int, row: Any) -> PreprocessorRuntimeError:
    return PreprocessorRuntimeError(
        f"record {index} is a {type(row).__name__}, not a dict", index=index
    )


def is_branch(value: Any, flatten_lists: bool) -> bool:
    """Whether flattening descends into ``value`` (empty containers stay as values)."""
    if isinstance(value, dict):
        return bool(value)
    return flatten_lists and isinstance(value, list) and bool(value)


def _list_index(segment: str, size: int) -> int | None:
    if segment.isascii() and segment.isdigit() and (segment == "0" or segment[0] != "0"):
        position = int(segment)
        if position < size:
            return position
    return None


#: Per record: for each dict met (by id), its keys that are not strings, by ``str()``.
_Stringified = dict[int, dict[str, Any]]


def _read_flat(plan: Plan, container: Any, path: Path, memo: _Stringified) -> list[Any]:
    """Every value the flat key ``path`` may denote in ``container``, most nested first.

    A flat key ``"a.b.c"`` is the joined key path of one leaf; since keys may themselves
    contain the delimiter, the runs ``a|b|c``, ``a|b.c``, ``a.b|c`` and ``a.b.c`` are all
    tried. More than one result is a collision.
    """
    found: list[Any] = []
    delimiter = plan.delimiter
    for end in range(1, len(path) + 1):
        value: Any = MISSING
        if isinstance(container, dict):
            key = delimiter.join(path[:end])
            if key in container:
                value = container[key]
            else:
                value = _stringified(container, memo).get(key, MISSING)
        elif end == 1 and plan.flatten_lists and isinstance(container, list):
            position = _list_index(path[0], len(container))
            if position is not None:
                value = container[position]
        if value is MISSING:
            continue
        if end == len(path):
            if not is_branch(value, plan.flatten_lists):
                found.append(value)
        elif is_branch(value, plan.flatten_lists):
            found.extend(_read_flat(plan, value, path[end:], memo))
    return found


def _stringified(container: dict[Any, Any], memo: _Stringified) -> dict[str, Any]:
    """``container``'s keys that are not strings, under their ``str()``.

    Flattening writes every key with ``str()``, so a flat key must find them too. Built
    once per dict and record, so that a wide record is not scanned once per name.
    """
    found = memo.get(id(container))
    if found is None:
        found = {str(k): v for k, v in container.items() if k.__class__ is not str}
        memo[id(container)] = found
    return found


def _flat_value(
    plan: Plan, index: int, record: dict[str, Any], name: str, memo: _Stringified
) -> Any:
    values = _read_flat(plan, record, plan.split(name), memo)
    if not values:
        return MISSING
    if len(values) > 1 and plan.check_collisions:
        raise _collision(plan, index, name)
    return values[0]


def _collision(plan: Plan, index: int, name: str) -> PreprocessorRuntimeError:
    return PreprocessorRuntimeError(
        f"record {index}: the flattened key {name!r} comes from more than one key path "
        f"(a key contains the delimiter {plan.delimiter!r}); rename the keys or set "
        f"ignore_delimiter_collisions=True to read the nested one",
        index=index,
        field=name,
    )


def _flatten(plan: Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one record into delimiter-joined keys."""
    flat: dict[str, Any] = {}
    leaves = _flatten_into(flat, "", record, plan.delimiter, plan.flatten_lists)
    if leaves == len(flat):
        return flat
    # Fewer keys than leaves: two key paths gave one key. Redo it carefully, to report
    # the collision or, when collisions are ignored, keep the most nested value.
    return _flatten_carefully(plan, index, record)


def _flatten_into(
    flat: dict[str, Any], prefix: str, mapping: dict[Any, Any], delimiter: str, lists: bool
) -> int:
    """Write the leaves under ``mapping`` into ``flat``; return how many there were."""
    leaves = 0
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if value.__class__ not in SCALARS:
            if isinstance(value, dict) and value:
                leaves += _flatten_into(flat, name + delimiter, value, delimiter, lists)
                continue
            if lists and isinstance(value, list) and value:
                leaves += _flatten_into(
                    flat, name + delimiter, dict(enumerate(value)), delimiter, lists
                )
                continue
        flat[name] = value
        leaves += 1
    return leaves


def _flatten_carefully(plan: Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    delimiter = plan.delimiter
    lists = plan.flatten_lists

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}{delimiter}{key}", item)
        elif lists and isinstance(value, list) and value:
            for position, item in enumerate(value):
                walk(f"{prefix}{delimiter}{position}", item)
        elif prefix in flat:
            if plan.check_collisions:
                raise _collision(plan, index, prefix)
            flat[prefix] = _flat_value(plan, index, record, prefix, {})
        else:
            flat[prefix] = value

    for key, value in record.items():
        walk(str(key), value)
    return flat


def _read_path(container: Any, path: Path) -> Any:
    for segment in path:
        if not isinstance(container, dict) or segment not in container:
            return MISSING
        container = container[segment]
    return container


def _loose_keys(container: Any, path: Path, delimiter: str) -> tuple[str, ...] | None:
    """The keys that lead to ``path`` when keys may contain the delimiter, or ``None``.

    With ``ignore_delimiter_collisions`` the user says keys contain the delimiter, so
    ``"a.b"`` may be the key ``"a.b"`` as well as the path ``a`` -> ``b``; the most nested
    reading is tried first, as when flattening. Only keys that exist are followed, so
    the search stays as small as the record.
    """
    if not isinstance(container, dict):
        return None
    for end in range(1, len(path) + 1):
        key = delimiter.join(path[:end])
        if key not in container:
            continue
        if end == len(path):
            return (key,)
        rest = _loose_keys(container[key], path[end:], delimiter)
        if rest is not None:
            return (key, *rest)
    return None


def _keys_of(plan: Plan, container: Any, path: Path) -> tuple[str, ...] | None:
    """The keys that lead to the nested ``path`` in ``container``, or ``None``."""
    if plan.check_collisions or len(path) == 1:
        value = container
        for segment in path:
            if not isinstance(value, dict) or segment not in value:
                return None
            value = value[segment]
        return path
    return _loose_keys(container, path, plan.delimiter)


def _read_nested(plan: Plan, container: Any, path: Path) -> Any:
    """The value at the nested ``path``, or ``MISSING``."""
    if plan.check_collisions or len(path) == 1:
        return _read_path(container, path)
    keys = _loose_keys(container, path, plan.delimiter)
    return MISSING if keys is None else _read_path(container, keys)


def _visited_dicts(plan: Plan, record: dict[str, Any]) -> list[tuple[str, dict[Any, Any]]]:
    """The dicts that the checked nested paths go through, each with its path's name."""
    visited = []
    for name in plan.checked_paths:
        container: Any = record
        for segment in (None, *plan.split(name)[:-1]):
            if segment is not None:
                if segment not in container:
                    break
                container = container[segment]
            if not isinstance(container, dict):
                break
            visited.append((name, container))
    return visited


def _check_keys(plan: Plan, index: int, record: dict[str, Any]) -> None:
    """Report a key containing the delimiter on the way of a requested nested path."""
    delimiter = plan.delimiter
    for name, container in _visited_dicts(plan, record):
        for key in container:
            if isinstance(key, str) and delimiter in key:
                raise PreprocessorRuntimeError(
                    f"record {index}: key {key!r} contains the delimiter "
                    f"{delimiter!r}, so the nested path {name!r} is ambiguous; rename "
                    f"the key, use flatten_nested_inputs=True to read flat keys, or set "
                    f"ignore_delimiter_collisions=True",
                    index=index,
                    field=key,
                )


class CleanKeys:
    """Keys already seen not to contain the delimiter, for the fast path's check.

    Checking every key of every visited dict for the delimiter costs a scan per record;
    records of one schema share their keys, so the fast path instead asks whether all of
    a dict's keys are known clean (one hash lookup per key, in C) and hands a row with
    an unknown key to the reference path, which checks it and teaches its keys here.
    Bounded so that records with ever-new keys cannot grow it without limit.
    """

    LIMIT: Final = 65_536

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.keys: set[Any] = set()

    def learn(self, record: Any) -> None:
        """Remember the keys of ``record``'s checked dicts (call after they passed)."""
        if not self.plan.checked_paths or not isinstance(record, dict):
            return
        for _, container in _visited_dicts(self.plan, record):
            if len(self.keys) >= self.LIMIT:
                return
            self.keys.update(container)


def _pop_path(plan: Plan, record: dict[str, Any], path: Path) -> Any:
    """Remove ``path`` from ``record``, copying (never mutating) the dicts on the way."""
    keys = _keys_of(plan, record, path)
    if keys is None:
        return MISSING
    parent = record
    for segment in keys[:-1]:
        child = dict(parent[segment])
        parent[segment] = child
        parent = child
    return parent.pop(keys[-1])


def _put_path(
    index: int | None,
    record: dict[str, Any],
    path: Path,
    value: Any,
    name: str,
    copy: bool,
    delimiter: str,
) -> None:
    """Set ``path`` in ``record``, creating dicts (and copying existing ones if ``copy``)."""
    parent = record
    for depth, segment in enumerate(path[:-1]):
        child = parent.get(segment, MISSING)
        if child is MISSING:
            child = {}
        elif not isinstance(child, dict):
            where = "" if index is None else f"record {index}: "
            raise PreprocessorRuntimeError(
                f"{where}cannot write {name!r}: {delimiter.join(path[: depth + 1])!r} "
                f"holds a {type(child).__name__}, not a dict",
                index=index,
                field=name,
            )
        elif copy:
            child = dict(child)
        parent[segment] = child
        parent = child
    parent[path[-1]] = value


def _renamed_nested(plan: Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    moved = []
    for old, new in plan.rename:
        value = _pop_path(plan, out, plan.split(old))
        if value is not MISSING:
            moved.append((new, value))
    for new, value in moved:
        _put_path(index, out, plan.split(new), value, new, True, plan.delimiter)
    return out


def _renamed_flat(plan: Plan, flat: dict[str, Any]) -> dict[str, Any]:
    sources = {old for old, _ in plan.rename}
    out = {key: value for key, value in flat.items() if key not in sources}
    for old, new in plan.rename:
        if old in flat:
            out[new] = flat[old]
    return out


def reference_values(plan: Plan, index: int, record: Any) -> list[Any]:
    """The value of each feature of ``record`` (``MISSING`` where it is not there)."""
    if not isinstance(record, dict):
        raise not_a_dict(index, record)
    if plan.flatten:
        values = []
        memo: _Stringified = {}
        for names in plan.candidates:
            value: Any = MISSING
            for name in names:
                value = _flat_value(plan, index, record, name, memo)
                if value is not MISSING:
                    break
            values.append(value)
        return values
    _check_keys(plan, index, record)
    if plan.overlapping:
        renamed = _renamed_nested(plan, index, record)
        return [_read_nested(plan, renamed, plan.split(f)) for f in plan.features]
    values = []
    for names in plan.candidates:
        value = MISSING
        for name in names:
            value = _read_nested(plan, record, plan.split(name))
            if value is not MISSING:
                break
        values.append(value)
    return values


def reference_record(plan: Plan, index: int, record: Any) -> dict[str, Any]:
    """Transform one record: the definition of the ``records`` preprocessor."""
    if plan.features:
        values = reference_values(plan, index, record)
        out: dict[str, Any] = {}
        for feature, value in zip(plan.features, values, strict=True):
            if value is MISSING:
                continue
            if plan.flatten:
                out[feature] = value
            else:
                _put_path(index, out, plan.split(feature), value, feature, False, plan.delimiter)
        return out
    if not isinstance(record, dict):
        raise not_a_dict(index, record)
    if plan.flatten:
        flat = _flatten(plan, index, record)
        return _renamed_flat(plan, flat) if plan.rename else flat
    _check_keys(plan, index, record)
    return _renamed_nested(plan, index, record)


# --- the same readings, one record at a time (for packflow.utils) -----------------------


def _record_plan(
    delimiter: str, *, flatten: bool, lists: bool = False, check: bool = True
) -> Plan:
    if not delimiter:
        raise PreprocessorInitError("nested_field_delimiter must not be empty")
    return Plan(
        delimiter=delimiter,
        flatten=flatten,
        flatten_lists=lists,
        check_collisions=check,
        rename=(),
        features=(),
        candidates=(),
        checked_paths=(),
        overlapping=False,
    )


def read_flat_key(record: dict[str, Any], name: str, delimiter: str) -> Any:
    """The value the flat key ``name`` denotes in ``record``, or ``MISSING``.

    What ``feature_names`` reads with ``flatten_nested_inputs=True`` (the most nested
    reading wins when several key paths give ``name``), without flattening the record.
    """
    plan = _record_plan(delimiter, flatten=True, check=False)
    return _flat_value(plan, 0, record, name, {})


def read_nested_path(record: dict[str, Any], name: str, delimiter: str) -> Any:
    """The value at the nested path ``name`` in ``record`` (nested dicts only), or ``MISSING``."""
    return _read_path(record, tuple(name.split(delimiter)))


def write_nested_path(record: dict[str, Any], name: str, value: Any, delimiter: str) -> None:
    """Set the nested path ``name`` in ``record`` in place, creating the dicts on the way.

    Raises
    ------
    PreprocessorRuntimeError
        When the path goes through a value that is not a dict (it is never overwritten).
    """
    path = tuple(name.split(delimiter))
    _put_path(None, record, path, value, name, False, delimiter)


def flatten_record(
    record: dict[str, Any], delimiter: str, *, lists: bool, ignore_collisions: bool, index: int = 0
) -> dict[str, Any]:
    """``record`` flattened as ``flatten_nested_inputs=True`` does it.

    Raises
    ------
    PreprocessorRuntimeError
        When two key paths flatten to one key, unless ``ignore_collisions`` (then the
        most nested value wins).
    """
    plan = _record_plan(delimiter, flatten=True, lists=lists, check=not ignore_collisions)
    return _flatten(plan, index, record)
