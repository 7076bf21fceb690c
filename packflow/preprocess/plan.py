"""Planning: everything about a config that does not depend on the data.

``make_plan(config, format)`` checks the options once, with the rules every format
shares and the rules of its own :class:`Format`, and reports every problem at once; the
resulting :class:`Plan` is what the reference interpreter and the compiled loops read.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import PreprocessorInitError
from packflow.records import Records

__all__ = [
    "MISSING",
    "SCALARS",
    "Format",
    "Path",
    "Plan",
    "Preprocessor",
    "Rule",
    "describe_plan",
    "make_plan",
    "only_numpy_takes_a_dtype",
]

#: A preprocessor takes the batch (a list of dicts) and returns what the first stage
#: receives: ``Records`` for ``passthrough``/``records``, a 2-D array for ``numpy``.
Preprocessor = Callable[[Records], Any]

#: A format's own check of a config: the problems it finds, as sentences.
Rule = Callable[[BackendConfig], list[str]]

Path = tuple[str, ...]


class Missing:
    """The value of a path that is not there (``None`` is a legitimate value)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = Missing()

# Values of these classes are never flattened, so the fast path need not look further.
SCALARS: Final = frozenset({int, float, str, bool, type(None), bytes})


@attrs.frozen
class Plan:
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


@attrs.frozen
class Format:
    """One input format: its plan rules, its factory and the type it gives the first stage.

    Adding a format is one ``Format`` beside its preprocessor, listed in
    :data:`packflow.preprocess.formats.FORMATS` (and a member of ``InputFormat``).
    """

    input_format: InputFormat
    #: Builds the preprocessor of a plan that is not the identity.
    build: Callable[[Plan, BackendConfig], Preprocessor]
    #: The type the preprocessor hands to the first stage, for the pipeline's type check.
    output_type: Callable[[BackendConfig], Any]
    #: The format's own checks, run with the shared ones when the plan is made.
    rules: tuple[Rule, ...] = ()
    #: Whether the output rows keep every renamed field next to ``feature_names``.
    keeps_renamed: bool = False


def only_numpy_takes_a_dtype(config: BackendConfig) -> list[str]:
    """The rule of every format but ``numpy``: ``numpy_dtype`` is not for it."""
    if config.numpy_dtype is None:
        return []
    return [
        f"numpy_dtype={config.numpy_dtype!r} only applies to input_format='numpy' "
        f"(input_format is {str(config.input_format)!r})"
    ]


def make_plan(config: BackendConfig, format: Format) -> Plan:
    """Check ``config`` for ``format`` and plan the work.

    Raises
    ------
    PreprocessorInitError
        With every problem found, the shared ones first, then the format's.
    """
    delimiter = config.nested_field_delimiter
    rename = tuple(config.rename_fields.items())
    features = tuple(config.feature_names)
    problems = _shared_problems(config, rename, features)
    for rule in format.rules:
        problems.extend(rule(config))
    if problems:
        raise PreprocessorInitError("; ".join(problems))
    targets = {new: old for old, new in rename}

    def split(name: str) -> Path:
        return tuple(name.split(delimiter))

    if not config.flatten_nested_inputs:
        for label, group in (("feature_names", features), ("rename_fields targets", targets)):
            problems.extend(_prefix_problems(label, [split(n) for n in group], delimiter))
    if format.keeps_renamed and features:
        # The original Packflow keeps every renamed field next to the selected ones: a
        # rename is a request for that field, so selecting must not drop it.
        kept = tuple(new for _, new in rename if new not in features)
        if not config.flatten_nested_inputs:
            problems.extend(_nesting_problems(features, kept, delimiter))
        features = (*features, *kept)
    if problems:
        raise PreprocessorInitError("; ".join(problems))

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
    return Plan(
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


def _shared_problems(
    config: BackendConfig, rename: tuple[tuple[str, str], ...], features: tuple[str, ...]
) -> list[str]:
    """The rules of every format (those that need no valid delimiter to check)."""
    delimiter = config.nested_field_delimiter
    problems: list[str] = []
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
    duplicates = sorted(f for f, count in collections.Counter(features).items() if count > 1)
    if duplicates:
        problems.append(f"feature_names lists {', '.join(map(repr, duplicates))} twice")
    targets: dict[str, str] = {}
    for old, new in rename:
        if new in targets:
            problems.append(f"rename_fields renames both {targets[new]!r} and {old!r} to {new!r}")
        targets[new] = old
    return problems


def _prefix_problems(label: str, paths: list[Path], delimiter: str) -> list[str]:
    """Names of one group of which one lies inside another (``"a"`` and ``"a.b"``)."""
    # One set lookup per prefix rather than comparing every pair: configs with
    # thousands of features must still build at once.
    known = set(paths)
    return [
        f"{label} holds both {delimiter.join(other[:depth])!r} and "
        f"{delimiter.join(other)!r}, which lies inside it"
        for other in paths
        for depth in range(1, len(other))
        if other[:depth] in known
    ]


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


def describe_plan(plan: Plan) -> str:
    """The options of ``plan`` in a few words, for a preprocessor's ``repr``."""
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
