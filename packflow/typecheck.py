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

The engine lives in the private package ``packflow._types`` (``model``: the normalized
nodes; ``rules``: the comparison); this module is its public face.

Where the engine cannot decide (an exotic construct), the verdict is ``UNKNOWN`` with a
note naming the construct: the pipeline checker reports it as a note and treats it as
compatible, or, with ``strict=True``, as an error. It never raises on a strange type.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any

from packflow._types.model import (
    cache_spelling,
    format_type,
    normalize,
    resolve_forward_refs,
    substitute,
)
from packflow._types.rules import Check, Status, Verdict

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
            return _check_cached(
                produced, consumed, cache_spelling(produced), cache_spelling(consumed)
            )
        except TypeError:  # unhashable annotation metadata: check without the cache
            pass
    return _check_uncached(produced, consumed, bindings or {})


@functools.lru_cache(maxsize=4096)
def _check_cached(produced: Any, consumed: Any, *spellings: Any) -> Verdict:
    return _check_uncached(produced, consumed, {})


def _check_uncached(produced: Any, consumed: Any, bindings: Mapping[Any, Any]) -> Verdict:
    run = Check(bindings)
    try:
        verdict = run.run(normalize(produced), normalize(consumed))
    except Exception as exc:  # a check must never crash on an exotic type
        return Verdict(
            Status.UNKNOWN,
            f"cannot compare {format_type(produced)} with {format_type(consumed)}: {exc}",
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
