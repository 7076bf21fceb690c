"""The registry of input formats: the one place that maps ``input_format`` to a format.

A format is a :class:`~packflow.preprocess.plan.Format` defined beside its preprocessor
(its factory, its plan rules, the type it hands to the first stage). Adding one means a
member of ``InputFormat``, its ``Format``, and its entry in :data:`FORMATS`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from packflow.config import BackendConfig, InputFormat, parse_input_format
from packflow.exceptions import UnknownPreprocessorError
from packflow.preprocess.numpy_preprocessor import NUMPY
from packflow.preprocess.passthrough import PASSTHROUGH
from packflow.preprocess.plan import Format
from packflow.preprocess.records_preprocessor import RECORDS

__all__ = ["FORMATS", "format_of"]

#: Every input format, by its ``InputFormat``.
FORMATS: Final = MappingProxyType({f.input_format: f for f in (PASSTHROUGH, RECORDS, NUMPY)})


def format_of(config: BackendConfig) -> Format:
    """The format ``config.input_format`` names.

    ``input_format`` is read with ``packflow.config.parse_input_format``, the one parser
    of it, so a value given as a string (a config subclass may declare the field as
    ``str``) is understood, or refused, exactly as when a config is resolved.

    Raises
    ------
    UnknownPreprocessorError
        When ``input_format`` names no format.
    """
    value = config.input_format
    try:
        input_format: InputFormat = parse_input_format(value)
    except ValueError as error:
        raise UnknownPreprocessorError(
            f"no preprocessor for input_format={value!r}: {error}"
        ) from None
    found = FORMATS.get(input_format)
    if found is None:
        raise UnknownPreprocessorError(
            f"no preprocessor is registered for input_format={input_format.value!r}"
        )
    return found
