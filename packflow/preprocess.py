"""Preprocessors: turn a batch of records into what the first stage receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import UnknownPreprocessorError
from packflow.records import Records

__all__ = ["Preprocessor", "build_preprocessor", "preprocessor_output_type"]

Preprocessor = Callable[[Records], Any]


def _passthrough(records: Records) -> Records:
    return records


def preprocessor_output_type(config: BackendConfig) -> Any:
    """The type the configured preprocessor hands to the first stage."""
    return Records


def build_preprocessor(config: BackendConfig) -> Preprocessor:
    """Build the preprocessor that ``config.input_format`` names."""
    if config.input_format in (InputFormat.PASSTHROUGH, InputFormat.RECORDS):
        return _passthrough
    raise UnknownPreprocessorError(f"no preprocessor for input_format={config.input_format!r}")
