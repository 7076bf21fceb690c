"""Preprocessors: turn a batch of records into what the first stage receives.

``build_preprocessor(config)`` plans the work once per config: it validates the options,
splits every requested name into its key path, and compiles a selector specialised to
those paths (Python source generated once and executed, so that the hot loop is a flat
sequence of dict lookups with the keys as constants). The compiled *fast path* only
handles the common case: every row is a plain ``dict``, every requested path exists and
reaches a plain value, no key is ambiguous. Any other row is handed to the *reference
path*, a plain interpreter of the same plan that defines the semantics, skips what is
missing and raises the precise error. The tests hold the two to the same answers.

Semantics, in brief (``docs/preprocessors-and-config.md`` has worked examples):

- Without ``flatten_nested_inputs``, a name containing the delimiter is a nested path,
  read by traversal of nested dicts; the output keeps the nested shape. When any nested
  path is requested, a key containing the delimiter in the record, or in a nested dict
  that such a path goes through, is reported (``ignore_delimiter_collisions`` turns the
  check off; then a path also matches such keys, the most nested reading first).
- With ``feature_names``, the ``records`` output also keeps every renamed field that
  ``feature_names`` does not list, after the listed ones (as the original Packflow).
- With ``flatten_nested_inputs``, every name is a *flat key*: records are (logically)
  flattened first, then renamed, then selected. Two different key paths that flatten to
  the same key are reported when that key is used (``ignore_delimiter_collisions``:
  the fully nested reading wins).
"""

from __future__ import annotations

import collections
import difflib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import (
    PreprocessorInitError,
    PreprocessorRuntimeError,
    UnknownPreprocessorError,
)
from packflow.records import Records

__all__ = ["Preprocessor", "build_preprocessor", "is_passthrough", "preprocessor_output_type"]

#: A preprocessor takes the batch (a list of dicts) and returns what the first stage
#: receives: ``Records`` for ``passthrough``/``records``, a 2-D array for ``numpy``.
Preprocessor = Callable[[Records], Any]

Path = tuple[str, ...]


class _Missing:
    """The value of a path that is not there (``None`` is a legitimate value)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


class _Bail(Exception):
    """Raised inside the compiled fast path to hand a row to the reference path."""


# Values of these classes are never flattened, so the fast path need not look further.
_SCALARS: Final = frozenset({int, float, str, bool, type(None), bytes})


def preprocessor_output_type(config: BackendConfig) -> Any:
    """The type the configured preprocessor hands to the first stage.

    ``packflow.Records`` (``list[dict[str, Any]]``) for ``passthrough`` and ``records``;
    for ``numpy``, ``NDArray[<scalar type>]`` when ``numpy_dtype`` is set (e.g.
    ``NDArray[np.float64]`` for ``"float64"``) and ``NDArray[Any]`` when it is not,
    because the dtype is then inferred from each batch and cannot be known statically.

    Raises
    ------
    UnknownPreprocessorError
        When ``config.input_format`` names no preprocessor.
    PreprocessorInitError
        When ``numpy_dtype`` is not a numpy dtype.
    """
    input_format = _input_format(config)
    if input_format is InputFormat.NUMPY:
        if config.numpy_dtype is None:
            return npt.NDArray[Any]
        return npt.NDArray[_dtype(config.numpy_dtype).type]  # type: ignore[misc]
    return Records


def build_preprocessor(config: BackendConfig) -> Preprocessor:
    """Build the preprocessor that ``config.input_format`` names, planned for ``config``.

    All the checks that do not need data happen here, so that the pipeline's
    ``check()``/``build()`` report them before the first batch.

    Parameters
    ----------
    config
        A resolved config (see ``packflow.config.resolve_config``).

    Returns
    -------
    Preprocessor
        A callable taking the batch (a list of dicts). With no option set, the
        ``records`` preprocessor returns the very list it was given (zero cost).
        Otherwise it returns new dicts and never mutates its input; values are not
        copied.

    Raises
    ------
    UnknownPreprocessorError
        When ``config.input_format`` names no preprocessor.
    PreprocessorInitError
        When the options cannot work together: an empty delimiter, ``numpy`` without
        ``feature_names``, duplicate feature names, two fields renamed to one name, a
        nested feature inside another one, ``flatten_lists`` without
        ``flatten_nested_inputs``, options given to ``passthrough``, an unknown or
        misplaced ``numpy_dtype``.

    Examples
    --------
    >>> pre = build_preprocessor(BackendConfig(feature_names=["b", "a"]))
    >>> pre([{"a": 1, "b": 2, "c": 3}])
    [{'b': 2, 'a': 1}]
    """
    input_format = _input_format(config)
    plan = _plan(config, input_format)
    if input_format is InputFormat.PASSTHROUGH or plan.is_identity:
        return _passthrough
    if input_format is InputFormat.NUMPY:
        dtype = None if config.numpy_dtype is None else _dtype(config.numpy_dtype)
        return _NumpyPreprocessor(plan, dtype)
    return _RecordsPreprocessor(plan)


def _passthrough(records: Records) -> Records:
    return records


def is_passthrough(preprocessor: Preprocessor) -> bool:
    """Whether ``preprocessor`` hands the records on untouched (the very same list)."""
    return preprocessor is _passthrough


# --- planning ---------------------------------------------------------------------------


def _input_format(config: BackendConfig) -> InputFormat:
    value = config.input_format
    if isinstance(value, InputFormat):
        return value
    known = [f.value for f in InputFormat]
    if isinstance(value, str) and value in known:
        return InputFormat(value)
    close = difflib.get_close_matches(str(value), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownPreprocessorError(
        f"no preprocessor for input_format={value!r} (known: {', '.join(known)}){hint}"
    )


def _dtype(name: str) -> np.dtype[Any]:
    problem = _dtype_problem(name)
    if problem:
        raise PreprocessorInitError(problem)
    return np.dtype(name)


def _dtype_problem(name: str) -> str:
    """Why ``name`` cannot be the ``numpy`` preprocessor's dtype, or ``""``."""
    try:
        # np.dtype("") would quietly mean float64; an empty name is a mistake.
        dtype = np.dtype(name) if name else None
    except TypeError:
        dtype = None
    if dtype is None:
        common = ["float64", "float32", "int64", "int32", "bool", "str", "object"]
        close = difflib.get_close_matches(name, common, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"numpy_dtype={name!r} is not a numpy dtype{hint}"
    if dtype.kind == "V":
        # Structured ("i4,f8"), subarray ("(2,)f8") and raw void dtypes change the
        # array's shape or hold bytes: not one scalar per feature.
        sort = "structured" if dtype.fields else "subarray" if dtype.subdtype else "void"
        return (
            f"numpy_dtype={name!r} is a {sort} dtype "
            f"({dtype}); the array holds one scalar per feature, so use a scalar dtype "
            f"such as 'float64', 'int64', 'bool', 'str' or 'object'"
        )
    return ""


@attrs.frozen
class _Plan:
    """Everything about a config that does not depend on the data."""

    delimiter: str
    flatten: bool
    flatten_lists: bool
    check_collisions: bool
    rename: tuple[tuple[str, str], ...]
    features: tuple[str, ...]
    #: Per feature: the names to read it from, in order (rename source first).
    candidates: tuple[tuple[str, ...], ...]
    #: Nested names whose traversal is checked for keys containing the delimiter.
    checked_paths: tuple[str, ...]
    #: True when a feature and a renamed path overlap (one inside the other), so that
    #: features must be read from the renamed record rather than straight from the input.
    overlapping: bool

    @property
    def is_identity(self) -> bool:
        return not (self.rename or self.features or self.flatten)

    def split(self, name: str) -> Path:
        return tuple(name.split(self.delimiter))


def _plan(config: BackendConfig, input_format: InputFormat) -> _Plan:
    delimiter = config.nested_field_delimiter
    rename = tuple(config.rename_fields.items())
    features = tuple(config.feature_names)
    problems: list[str] = []
    if input_format is InputFormat.PASSTHROUGH:
        given = [
            name
            for name, value in (
                ("rename_fields", rename),
                ("feature_names", features),
                ("flatten_nested_inputs", config.flatten_nested_inputs),
                ("flatten_lists", config.flatten_lists),
                ("numpy_dtype", config.numpy_dtype),
            )
            if value
        ]
        if given:
            problems.append(
                f"input_format='passthrough' hands records over untouched, so "
                f"{', '.join(given)} would be ignored; use input_format='records' or "
                f"remove them"
            )
    if not delimiter:
        problems.append("nested_field_delimiter must not be empty")
    elif len(delimiter) > 1:
        delimited: tuple[tuple[str, Sequence[str]], ...] = (
            ("rename_fields", [n for pair in rename for n in pair]),
            ("feature_names", features),
        )
        for label, names_given in delimited:
            for name in dict.fromkeys(names_given):
                if _delimiter_overlaps(name, delimiter):
                    problems.append(
                        f"{label}: {name!r} holds overlapping copies of the delimiter "
                        f"{delimiter!r}, so it does not say where one key ends and the "
                        f"next begins; choose another delimiter"
                    )
    if config.flatten_lists and not config.flatten_nested_inputs:
        problems.append(
            "flatten_lists=True only applies when flatten_nested_inputs=True; set both or neither"
        )
    if input_format is InputFormat.NUMPY and not features:
        problems.append(
            "input_format='numpy' needs feature_names: they are the columns of the array"
        )
    if config.numpy_dtype is not None and input_format is not InputFormat.NUMPY:
        problems.append(
            f"numpy_dtype={config.numpy_dtype!r} only applies to input_format='numpy' "
            f"(input_format is {input_format.value!r})"
        )
    elif config.numpy_dtype is not None and _dtype_problem(config.numpy_dtype):
        problems.append(_dtype_problem(config.numpy_dtype))
    duplicates = sorted(f for f, count in collections.Counter(features).items() if count > 1)
    if duplicates:
        problems.append(f"feature_names lists {', '.join(map(repr, duplicates))} twice")
    targets: dict[str, str] = {}
    for old, new in rename:
        if new in targets:
            problems.append(f"rename_fields renames both {targets[new]!r} and {old!r} to {new!r}")
        targets[new] = old
    if problems:
        raise PreprocessorInitError("; ".join(problems))

    def split(name: str) -> Path:
        return tuple(name.split(delimiter))

    if not config.flatten_nested_inputs:
        for label, group in (("feature_names", features), ("rename_fields targets", targets)):
            # One set lookup per prefix rather than comparing every pair: configs with
            # thousands of features must still build at once.
            paths = [split(n) for n in group]
            known = set(paths)
            for other in paths:
                for depth in range(1, len(other)):
                    if other[:depth] in known:
                        problems.append(
                            f"{label} holds both {delimiter.join(other[:depth])!r} and "
                            f"{delimiter.join(other)!r}, which lies inside it"
                        )
        if problems:
            raise PreprocessorInitError("; ".join(problems))

    if input_format is InputFormat.RECORDS and features:
        # The original Packflow keeps every renamed field next to the selected ones: a
        # rename is a request for that field, so selecting must not drop it.
        kept = tuple(new for _, new in rename if new not in features)
        if not config.flatten_nested_inputs:
            problems.extend(_nesting_problems(features, kept, delimiter))
            if problems:
                raise PreprocessorInitError("; ".join(problems))
        features = (*features, *kept)

    sources = {old for old, _ in rename}
    candidates = []
    for feature in features:
        names: list[str] = []
        if feature in targets:
            names.append(targets[feature])
        if feature not in sources:
            names.append(feature)
        candidates.append(tuple(names))

    renamed = [split(n) for pair in rename for n in pair]
    overlapping = not config.flatten_nested_inputs and any(
        len(p) != len(f) and p[: min(len(p), len(f))] == f[: min(len(p), len(f))]
        for f in map(split, features)
        for p in renamed
    )
    checked: tuple[str, ...] = ()
    if not config.flatten_nested_inputs and not config.ignore_delimiter_collisions:
        named = [*(n for pair in rename for n in pair), *features]
        checked = tuple(dict.fromkeys(n for n in named if delimiter in n))
    return _Plan(
        delimiter=delimiter,
        flatten=config.flatten_nested_inputs,
        flatten_lists=config.flatten_lists,
        check_collisions=not config.ignore_delimiter_collisions,
        rename=rename,
        features=features,
        candidates=tuple(candidates),
        checked_paths=checked,
        overlapping=overlapping,
    )


def _nesting_problems(features: Sequence[str], kept: Sequence[str], delimiter: str) -> list[str]:
    """A kept rename target and a feature of which one lies inside the other.

    Both are written into the output row, so ``"a"`` and ``"a.b"`` would ask for ``a`` to
    be a value and a dict at once.
    """
    problems = []
    for outer_group, inner_group, outer_label, inner_label in (
        (features, kept, "feature", "rename_fields target"),
        (kept, features, "rename_fields target", "feature"),
    ):
        outers = {tuple(name.split(delimiter)) for name in outer_group}
        for name in inner_group:
            path = tuple(name.split(delimiter))
            for depth in range(1, len(path)):
                if path[:depth] in outers:
                    problems.append(
                        f"{inner_label} {name!r} lies inside {outer_label} "
                        f"{delimiter.join(path[:depth])!r}, and both are kept in the output"
                    )
    return problems


def _delimiter_overlaps(name: str, delimiter: str) -> bool:
    """Whether two occurrences of ``delimiter`` in ``name`` overlap (``"a___b"``, ``"__"``).

    Only then can ``name`` be cut into keys in more than one way that the runs of
    ``name.split(delimiter)`` do not cover: ``"a_" + "__" + "b"`` and ``"a" + "__" + "_b"``.
    """
    starts = [i for i in range(len(name)) if name.startswith(delimiter, i)]
    return any(b - a < len(delimiter) for a, b in itertools.pairwise(starts))


# --- the reference path -------------------------------------------------------------------


def _not_a_dict(index: int, row: Any) -> PreprocessorRuntimeError:
    return PreprocessorRuntimeError(
        f"record {index} is a {type(row).__name__}, not a dict", index=index
    )


def _is_branch(value: Any, flatten_lists: bool) -> bool:
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


def _read_flat(plan: _Plan, container: Any, path: Path, memo: _Stringified) -> list[Any]:
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
            if not _is_branch(value, plan.flatten_lists):
                found.append(value)
        elif _is_branch(value, plan.flatten_lists):
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
    plan: _Plan, index: int, record: dict[str, Any], name: str, memo: _Stringified
) -> Any:
    values = _read_flat(plan, record, plan.split(name), memo)
    if not values:
        return MISSING
    if len(values) > 1 and plan.check_collisions:
        raise _collision(plan, index, name)
    return values[0]


def _collision(plan: _Plan, index: int, name: str) -> PreprocessorRuntimeError:
    return PreprocessorRuntimeError(
        f"record {index}: the flattened key {name!r} comes from more than one key path "
        f"(a key contains the delimiter {plan.delimiter!r}); rename the keys or set "
        f"ignore_delimiter_collisions=True to read the nested one",
        index=index,
        field=name,
    )


def _flatten(plan: _Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
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
        if value.__class__ not in _SCALARS:
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


def _flatten_carefully(plan: _Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
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


def _keys_of(plan: _Plan, container: Any, path: Path) -> tuple[str, ...] | None:
    """The keys that lead to the nested ``path`` in ``container``, or ``None``."""
    if plan.check_collisions or len(path) == 1:
        value = container
        for segment in path:
            if not isinstance(value, dict) or segment not in value:
                return None
            value = value[segment]
        return path
    return _loose_keys(container, path, plan.delimiter)


def _read_nested(plan: _Plan, container: Any, path: Path) -> Any:
    """The value at the nested ``path``, or ``MISSING``."""
    if plan.check_collisions or len(path) == 1:
        return _read_path(container, path)
    keys = _loose_keys(container, path, plan.delimiter)
    return MISSING if keys is None else _read_path(container, keys)


def _visited_dicts(plan: _Plan, record: dict[str, Any]) -> list[tuple[str, dict[Any, Any]]]:
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


def _check_keys(plan: _Plan, index: int, record: dict[str, Any]) -> None:
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


class _CleanKeys:
    """Keys already seen not to contain the delimiter, for the fast path's check.

    Checking every key of every visited dict for the delimiter costs a scan per record;
    records of one schema share their keys, so the fast path instead asks whether all of
    a dict's keys are known clean (one hash lookup per key, in C) and hands a row with
    an unknown key to the reference path, which checks it and teaches its keys here.
    Bounded so that records with ever-new keys cannot grow it without limit.
    """

    LIMIT: Final = 65_536

    def __init__(self, plan: _Plan) -> None:
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


def _pop_path(plan: _Plan, record: dict[str, Any], path: Path) -> Any:
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


def _renamed_nested(plan: _Plan, index: int, record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    moved = []
    for old, new in plan.rename:
        value = _pop_path(plan, out, plan.split(old))
        if value is not MISSING:
            moved.append((new, value))
    for new, value in moved:
        _put_path(index, out, plan.split(new), value, new, True, plan.delimiter)
    return out


def _renamed_flat(plan: _Plan, flat: dict[str, Any]) -> dict[str, Any]:
    sources = {old for old, _ in plan.rename}
    out = {key: value for key, value in flat.items() if key not in sources}
    for old, new in plan.rename:
        if old in flat:
            out[new] = flat[old]
    return out


def _reference_values(plan: _Plan, index: int, record: Any) -> list[Any]:
    """The value of each feature of ``record`` (``MISSING`` where it is not there)."""
    if not isinstance(record, dict):
        raise _not_a_dict(index, record)
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


def _reference_record(plan: _Plan, index: int, record: Any) -> dict[str, Any]:
    """Transform one record: the definition of the ``records`` preprocessor."""
    if plan.features:
        values = _reference_values(plan, index, record)
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
        raise _not_a_dict(index, record)
    if plan.flatten:
        flat = _flatten(plan, index, record)
        return _renamed_flat(plan, flat) if plan.rename else flat
    _check_keys(plan, index, record)
    return _renamed_nested(plan, index, record)


# --- the same readings, one record at a time (for packflow.utils) -------------------------


def _record_plan(
    delimiter: str, *, flatten: bool, lists: bool = False, check: bool = True
) -> _Plan:
    if not delimiter:
        raise PreprocessorInitError("nested_field_delimiter must not be empty")
    return _Plan(
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


# --- the compiled fast path -----------------------------------------------------------------


class _Source:
    """Python source for one specialised loop, built line by line."""

    def __init__(self) -> None:
        # A dict subclass may define __missing__ (defaultdict inserts the key), so no
        # container is indexed before it is known to be a plain dict.
        self.lines: list[str] = ["if r.__class__ is not dict: raise _Bail"]
        self.variables: dict[Path, str] = {(): "r"}

    def container(self, path: Path) -> str:
        """The variable holding the dict at ``path``; emits the lookups on first use."""
        if path not in self.variables:
            parent = self.container(path[:-1])
            name = f"d{len(self.variables)}"
            self.variables[path] = name
            self.lines.append(f"{name} = {parent}[{path[-1]!r}]")
            self.lines.append(f"if {name}.__class__ is not dict: raise _Bail")
        return self.variables[path]


def _fast_body(plan: _Plan, paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """Lines that check one row ``r`` and expressions that read each of ``paths``.

    Shared by the records and numpy loops. Everything the fast path cannot settle on
    its own raises (``_Bail``, or whatever a lookup raises) so that the reference path
    takes the row.
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
        clean_tests = [f"_clean({source.container(p)})" for p in parents]
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
                source.lines.append(f"if {' or '.join(tests)}: raise _Bail")
            value = f"v{number}"
            source.lines.append(f"{value} = {read}")
            source.lines.append(
                f"if {value}.__class__ not in _SCALARS and _is_branch({value}): raise _Bail"
            )
            expressions.append(value)
        else:
            expressions.append(read)
    if not clean_tests:
        return source.lines, expressions
    return [*source.lines, f"if not ({' and '.join(clean_tests)}): raise _Bail"], expressions


def _nested_literal(plan: _Plan, expressions: Sequence[str]) -> str:
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


def _compiled_or_none(
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


def _compile(source: str, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
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


def _fast_namespace(plan: _Plan, clean: _CleanKeys, slow: Callable[..., Any]) -> dict[str, Any]:
    lists = plan.flatten_lists
    return {
        "_Bail": _Bail,
        "_SCALARS": _SCALARS,
        "_clean": clean.keys.issuperset,
        "_is_branch": lambda value: _is_branch(value, lists),
        "_slow": slow,
    }


def _describe_plan(plan: _Plan) -> str:
    parts = [
        f"{name}={value!r}"
        for name, value in (
            ("rename_fields", dict(plan.rename)),
            ("feature_names", list(plan.features)),
        )
        if value
    ]
    if plan.flatten:
        parts.append(f"flatten (lists={plan.flatten_lists}, delimiter={plan.delimiter!r})")
    return " ".join(parts)


def _indent(lines: Sequence[str], depth: int) -> str:
    return "".join(f"{'    ' * depth}{line}\n" for line in lines)


def _first_sources(plan: _Plan) -> list[Path]:
    return [plan.split(names[0]) if names else () for names in plan.candidates]


class _RecordsPreprocessor:
    """The ``records`` preprocessor for one plan."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self._clean = _CleanKeys(plan)
        self._fast = _compiled_or_none(self._compile_fast)

    def __reduce__(self) -> tuple[Any, ...]:
        # The compiled loop cannot be pickled; the plan can, and rebuilds it.
        return (type(self), (self.plan,))

    def __repr__(self) -> str:
        return f"<records preprocessor {_describe_plan(self.plan)}>"

    def __call__(self, records: Records) -> Records:
        if self._fast is not None:
            result: Records = self._fast(records)
            return result
        plan = self.plan
        return [_reference_record(plan, index, record) for index, record in enumerate(records)]

    def _slow(self, index: int, record: Any) -> dict[str, Any]:
        out = _reference_record(self.plan, index, record)
        self._clean.learn(record)
        return out

    def _compile_fast(self) -> Callable[[Records], Records] | None:
        plan = self.plan
        # Only selection is compiled: without feature_names every key of every record is
        # visited anyway, and a renamed-away or overlapping feature needs the full rename.
        if not plan.features or plan.overlapping or not all(plan.candidates):
            return None
        lines, expressions = _fast_body(plan, _first_sources(plan))
        if plan.flatten:
            items = ", ".join(
                f"{f!r}: {e}" for f, e in zip(plan.features, expressions, strict=True)
            )
            output = "{" + items + "}"
        else:
            output = _nested_literal(plan, expressions)
        source = (
            "def _select(records):\n"
            "    out = []\n"
            "    append = out.append\n"
            "    for r in records:\n"
            "        try:\n"
            f"{_indent(lines, 3)}"
            f"            append({output})\n"
            # Whatever the fast path trips on, the reference path redoes the row exactly.
            "        except Exception:\n"
            "            append(_slow(len(out), r))\n"
            "    return out\n"
        )
        return _compile(source, "_select", _fast_namespace(plan, self._clean, self._slow))


class _NumpyPreprocessor:
    """The ``numpy`` preprocessor for one plan: one column per feature."""

    def __init__(self, plan: _Plan, dtype: np.dtype[Any] | None) -> None:
        self.plan = plan
        self.dtype = dtype
        self._clean = _CleanKeys(plan)
        self._fast = _compiled_or_none(self._compile_fast)
        numeric = dtype is not None and dtype.kind in "biufc"
        self._stream = _compiled_or_none(self._compile_stream) if numeric else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.plan, self.dtype))

    def __repr__(self) -> str:
        return f"<numpy preprocessor dtype={self.dtype} {_describe_plan(self.plan)}>"

    def __call__(self, records: Records) -> npt.NDArray[Any]:
        width = len(self.plan.features)
        if not records:
            return np.empty((0, width), dtype=self.dtype or np.float64)
        if self._stream is not None:
            return self._streamed(records)
        return self._to_array(records, self._values(records))

    def _values(self, records: Records) -> list[Any]:
        """Every row's values, one after the other."""
        if self._fast is not None:
            values: list[Any] = self._fast(records)
            return values
        values = []
        for index, record in enumerate(records):
            values.extend(self._row(index, record))
        return values

    def _streamed(self, records: Records) -> npt.NDArray[Any]:
        """The array for a numeric dtype, filled straight from the compiled loop.

        Not building the list of values first is the difference between meeting the
        throughput target or not. When a value cannot be cast, the values are gathered
        again (the input is never mutated, so they are the same) to name the culprit.
        """
        assert self._stream is not None
        shape = (len(records), len(self.plan.features))
        try:
            with np.errstate(over="raise"):
                array = np.fromiter(
                    self._stream(records), dtype=self.dtype, count=shape[0] * shape[1]
                )
        except _CAST_ERRORS as exc:
            raise self._bad_value(self._values(records), shape, str(exc)) from exc
        return array.reshape(shape)

    def _row(self, index: int, record: Any) -> list[Any]:
        """The reference path for one row: its values, or the error naming the feature."""
        row = _reference_values(self.plan, index, record)
        for feature, value in zip(self.plan.features, row, strict=True):
            if value is MISSING:
                raise PreprocessorRuntimeError(
                    f"record {index} has no feature {feature!r}", index=index, field=feature
                )
        self._clean.learn(record)
        return row

    def _compile_fast(self) -> Callable[[Records], list[Any]] | None:
        plan = self.plan
        if plan.overlapping or not all(plan.candidates):
            return None
        lines, expressions = _fast_body(plan, _first_sources(plan))
        source = (
            "def _columns(records):\n"
            "    values = []\n"
            "    extend = values.extend\n"
            "    for r in records:\n"
            "        try:\n"
            f"{_indent(lines, 3)}"
            f"            extend(({', '.join(expressions)},))\n"
            "        except Exception:\n"
            f"            extend(_slow(len(values) // {len(plan.features)}, r))\n"
            "    return values\n"
        )
        return _compile(source, "_columns", _fast_namespace(plan, self._clean, self._row))

    def _compile_stream(self) -> Callable[[Records], Iterator[Any]] | None:
        plan = self.plan
        if plan.overlapping or not all(plan.candidates):
            return None
        lines, expressions = _fast_body(plan, _first_sources(plan))
        # Every lookup happens before the first yield, so a row the fast path gives up
        # on half-way yields nothing of its own before the reference path's values.
        reads = [f"x{n} = {e}" for n, e in enumerate(expressions) if not e.isidentifier()]
        names = [e if e.isidentifier() else f"x{n}" for n, e in enumerate(expressions)]
        source = (
            "def _stream(records):\n"
            "    for index, r in enumerate(records):\n"
            "        try:\n"
            f"{_indent([*lines, *reads], 3)}"
            "        except Exception:\n"
            "            yield from _slow(index, r)\n"
            "            continue\n"
            f"{_indent([f'yield {n}' for n in names], 2)}"
        )
        return _compile(source, "_stream", _fast_namespace(plan, self._clean, self._row))

    def _to_array(self, records: Records, values: list[Any]) -> npt.NDArray[Any]:
        shape = (len(records), len(self.plan.features))
        try:
            # over="raise": a finite value too large for the dtype (1e300 as float32)
            # would otherwise become inf with only a warning.
            with np.errstate(over="raise"):
                if self.dtype is not None and self.dtype.kind in "biufcO":
                    # Faster than np.array for a known numeric dtype; a sequence among
                    # the values fails here too, so the shape check below stays valid.
                    # For "object" it keeps every value as it is, a list included:
                    # np.array would make a list a row of its own or not depending on
                    # the other values of the batch.
                    array = np.fromiter(values, dtype=self.dtype, count=len(values))
                else:
                    array = np.array(values, dtype=self.dtype)
        except _CAST_ERRORS as exc:
            raise self._bad_value(values, shape, str(exc)) from exc
        if array.ndim != 1:
            raise self._bad_value(values, shape, "a value is not a scalar")
        if self.dtype is None and array.dtype.kind not in "biufc":
            self._check_uniform(values, shape, array.dtype)
        return array.reshape(shape)

    def _where(self, position: int, shape: tuple[int, int]) -> tuple[int, str]:
        index, column = divmod(position, shape[1])
        return index, self.plan.features[column]

    def _bad_value(
        self, values: list[Any], shape: tuple[int, int], reason: str
    ) -> PreprocessorRuntimeError:
        target = self.dtype if self.dtype is not None else "a numeric or string array"
        for position, value in enumerate(values):
            try:
                with np.errstate(over="raise"):
                    ok = np.array(value, dtype=self.dtype).ndim == 0
            except _CAST_ERRORS:
                ok = False
            if not ok:
                index, feature = self._where(position, shape)
                return PreprocessorRuntimeError(
                    f"record {index}, feature {feature!r}: cannot convert "
                    f"{_describe(value)} to {target}",
                    index=index,
                    field=feature,
                )
        return PreprocessorRuntimeError(f"cannot build the array: {reason}")

    def _check_uniform(
        self, values: list[Any], shape: tuple[int, int], dtype: np.dtype[Any]
    ) -> None:
        """Refuse an array that numpy could only build by turning values into strings
        or objects: mixed types must be cast on purpose, with ``numpy_dtype``."""
        if dtype.kind not in "OUS":
            return
        first = _kind_of(values[0])
        for position, value in enumerate(values):
            if _kind_of(value) == first:
                continue
            index, feature = self._where(position, shape)
            raise PreprocessorRuntimeError(
                f"record {index}, feature {feature!r}: {_describe(value)} in a batch that "
                f"starts with {first} values; numpy would silently make a {dtype} array. "
                f"Fix the data or set numpy_dtype to cast on purpose (e.g. 'float64', or "
                f"'object' to keep the values as they are)",
                index=index,
                field=feature,
            )
        if first not in ("str", "bytes"):
            raise PreprocessorRuntimeError(
                f"record 0, feature {self.plan.features[0]!r}: {_describe(values[0])}: "
                f"numpy can only hold these {first} values in an object array; set "
                f"numpy_dtype='object' to accept that",
                index=0,
                field=self.plan.features[0],
            )


#: What numpy raises for a value it cannot cast to the array's dtype.
_CAST_ERRORS: Final = (ValueError, TypeError, OverflowError, FloatingPointError)


def _kind_of(value: Any) -> str:
    if isinstance(value, (bool, int, float, complex, np.number, np.bool_)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    return type(value).__name__


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"
