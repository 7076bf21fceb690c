"""Logging: everything goes through the standard logger ``"packflow"``.

The level of that logger follows the environment variable ``PACKFLOW_LOG_LEVEL``
(``DEBUG``, ``INFO``, ... or a number). packflow never installs handlers on the root
logger; it only adds a ``NullHandler`` to its own, as a library should.
"""

from __future__ import annotations

import logging
import os

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

    An unknown level name is reported through the logger itself and otherwise ignored,
    so that a typo in an environment variable never stops a service from starting.
    """
    env = os.environ if environ is None else environ
    raw = env.get("PACKFLOW_LOG_LEVEL")
    logger = logging.getLogger(LOGGER_NAME)
    if raw is None:
        return
    level = _parse_level(raw)
    if level is None:
        logger.warning("PACKFLOW_LOG_LEVEL=%r is not a logging level; left unchanged", raw)
        return
    logger.setLevel(level)


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``packflow`` logger, or its child ``packflow.<name>``."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())
configure_from_env()
