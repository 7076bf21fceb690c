"""Small text helpers shared by every error message: suggestions and value summaries.

One home for "did you mean" and for describing a value briefly, so that every message
in the package suggests and describes the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["closest", "describe", "short_repr"]


def closest(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice closest to ``word`` (for a "did you mean"), or ``None`` when none is close.

    Examples
    --------
    >>> closest("modle", ["config", "logger", "model"])
    'model'
    >>> closest("zzz", ["model"]) is None
    True
    """
    import difflib  # only when a mistake is being reported

    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any, limit: int = 60) -> str:
    """A value's type and a short repr of it: ``"int 5"``, ``"str 'abc'"``.

    Examples
    --------
    >>> describe(5)
    'int 5'
    """
    return f"{type(value).__name__} {short_repr(value, limit)}"
