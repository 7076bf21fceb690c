"""Logging: everything goes through the standard logger ``"packflow"``.

The level of that logger follows the environment variable ``PACKFLOW_LOG_LEVEL``
(``DEBUG``, ``INFO``, ... or a number). packflow never installs handlers on the root
logger; it only adds a ``NullHandler`` to its own, as a library should.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["LOGGER_NAME", "configure_from_env", "get_logger"]

LOGGER_NAME = "packflow"


def _parse_level(value: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    return level if isinstance(level, int) else None


def configure_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Set the ``packflow`` logger's level from ``PACKFLOW_LOG_LEVEL``, if set.

    An unknown level name is reported with a ``RuntimeWarning`` (shown on stderr by
    default, even before any logging is configured; a warning through the ``packflow``
    logger would reach no handler at import time) and otherwise ignored, so that a typo
    in an environment variable never stops a service from starting.
    """
    env = os.environ if environ is None else environ
    raw = env.get("PACKFLOW_LOG_LEVEL")
    logger = logging.getLogger(LOGGER_NAME)
    if raw is None:
        return
    level = _parse_level(raw)
    if level is None:
        from packflow._text import closest

        match = closest(raw.strip().upper(), _LEVELS)
        hint = f"; did you mean {match!r}?" if match else ""
        warnings.warn(
            f"PACKFLOW_LOG_LEVEL={raw!r} is not a logging level (use one of "
            f"{', '.join(_LEVELS)} or a number){hint}; the packflow logger's level is left "
            "unchanged",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    logger.setLevel(level)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``packflow`` logger, or its child ``packflow.<name>``."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())
configure_from_env()
