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

The package, one layer per module, each importing only those above it in this list:

- ``plan``: the :class:`Plan` of a config, the shared option rules, :class:`Format`;
- ``reference``: the reference interpreter (and the one-record readings of
  ``packflow.utils``);
- ``compiled``: the code generator of the fast loops;
- ``passthrough``, ``records_preprocessor``, ``numpy_preprocessor``: one format each,
  its preprocessor with its ``Format`` (factory, plan rules, output type);
- ``formats``: the registry, ``FORMATS`` and ``format_of(config)``.
"""

from __future__ import annotations

from typing import Any

from packflow.config import BackendConfig
from packflow.preprocess.formats import format_of
from packflow.preprocess.passthrough import passthrough
from packflow.preprocess.plan import Preprocessor, make_plan

__all__ = ["Preprocessor", "build_preprocessor", "is_passthrough", "preprocessor_output_type"]


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
    return format_of(config).output_type(config)


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
    format = format_of(config)
    plan = make_plan(config, format)
    if plan.is_identity:
        return passthrough
    return format.build(plan, config)


def is_passthrough(preprocessor: Preprocessor) -> bool:
    """Whether ``preprocessor`` hands the records on untouched (the very same list)."""
    return preprocessor is passthrough
