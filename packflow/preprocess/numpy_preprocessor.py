"""The ``numpy`` format: a 2-D array, one row per record and one column per feature."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from packflow._lazy import LazyModule
from packflow._text import closest, short_repr
from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import PreprocessorInitError, PreprocessorRuntimeError
from packflow.preprocess.compiled import (
    compile_loop,
    compiled_or_none,
    fast_body,
    fast_namespace,
    first_sources,
    indent,
    unknown_keys,
)
from packflow.preprocess.plan import MISSING, Format, Plan, describe_plan
from packflow.preprocess.reference import CleanKeys, reference_values
from packflow.records import Records

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:  # numpy is imported by the first numpy pipeline, not by `import packflow`
    np = LazyModule("numpy", globals(), "np")
    npt = LazyModule("numpy.typing", globals(), "npt")

__all__ = ["NUMPY", "NumpyPreprocessor", "dtype_of", "dtype_problem"]


def dtype_of(name: str) -> np.dtype[Any]:
    problem = dtype_problem(name)
    if problem:
        raise PreprocessorInitError(problem)
    return np.dtype(name)


def dtype_problem(name: str) -> str:
    """Why ``name`` cannot be the ``numpy`` preprocessor's dtype, or ``""``."""
    try:
        # np.dtype("") would quietly mean float64; an empty name is a mistake.
        dtype = np.dtype(name) if name else None
    except TypeError:
        dtype = None
    if dtype is None:
        common = ["float64", "float32", "int64", "int32", "bool", "str", "object"]
        close = closest(name, common)
        hint = f"; did you mean {close!r}?" if close else ""
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


class NumpyPreprocessor:
    """The ``numpy`` preprocessor for one plan: one column per feature."""

    def __init__(self, plan: Plan, dtype: np.dtype[Any] | None) -> None:
        self.plan = plan
        self.dtype = dtype
        self._clean = CleanKeys(plan)
        self._fast = compiled_or_none(self._compile_fast)
        numeric = dtype is not None and dtype.kind in "biufc"
        self._inexact = dtype is not None and dtype.kind in "fc"
        # float64 and complex128 hold any Python float exactly: nothing overflows.
        self._widest = dtype is not None and dtype in (np.float64, np.complex128)
        self._stream = compiled_or_none(self._compile_stream) if numeric else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.plan, self.dtype))

    def __repr__(self) -> str:
        return f"<numpy preprocessor dtype={self.dtype} {describe_plan(self.plan)}>"

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
        count = shape[0] * shape[1]
        values, seen = self._stream(records)
        try:
            if self._widest:
                # No errstate here (entering it costs about a microsecond a call): a
                # Python float cannot overflow a 64-bit float, and a None made NaN shows
                # in the one isfinite below.
                array = np.fromiter(values, dtype=self.dtype, count=count)
            else:
                with np.errstate(over="raise"):
                    array = np.fromiter(values, dtype=self.dtype, count=count)
        except CAST_ERRORS as exc:
            raise self._bad_value(self._values(records), shape, str(exc)) from exc
        except PreprocessorRuntimeError:
            # A row the reference path refused; an earlier row may hold a key with the
            # delimiter, which is then the first error of the batch.
            if unknown_keys(self._clean, seen):
                self._values(records)
            raise
        if unknown_keys(self._clean, seen):
            # Raises for the first record holding a key with the delimiter.
            self._values(records)
        if self._inexact and not np.isfinite(array).all():
            # A NaN may be a None that numpy cast (an overflow raised above, or cannot
            # happen for the widest dtypes); a NaN or infinity sent as a float stays.
            self._refuse_none(lambda: self._values(records), shape)
        return array.reshape(shape)

    def _refuse_none(self, values: Callable[[], list[Any]], shape: tuple[int, int]) -> None:
        """numpy casts ``None`` to NaN for a float dtype: a missing value passing as a
        number. Refuse it, naming the record and feature (a NaN given as a float stays)."""
        for position, value in enumerate(values()):
            if value is None:
                index, feature = self._where(position, shape)
                raise PreprocessorRuntimeError(
                    f"record {index}, feature {feature!r}: is None, which {self.dtype} "
                    "would turn into NaN; give a number, or drop or fill the record first",
                    index=index,
                    field=feature,
                )

    def _row(self, index: int, record: Any) -> list[Any]:
        """The reference path for one row: its values, or the error naming the feature."""
        row = reference_values(self.plan, index, record)
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
        lines, expressions = fast_body(plan, first_sources(plan))
        source = (
            "def _columns(records):\n"
            "    values = []\n"
            "    extend = values.extend\n"
            "    for r in records:\n"
            "        try:\n"
            f"{indent(lines, 3)}"
            f"            extend(({', '.join(expressions)},))\n"
            "        except Exception:\n"
            f"            extend(_slow(len(values) // {len(plan.features)}, r))\n"
            "    return values\n"
        )
        return compile_loop(source, "_columns", fast_namespace(plan, self._clean, self._row))

    def _compile_stream(self) -> Callable[[Records], tuple[Iterator[Any], set[Any]]] | None:
        plan = self.plan
        if plan.overlapping or not all(plan.candidates):
            return None
        lines, expressions = fast_body(plan, first_sources(plan), gather_keys=True)
        # One call per row returning a tuple, chained in C, costs less than a generator
        # resumed once per value. The keys the collision check covers are gathered for
        # the batch and checked once at the end (see unknown_keys).
        source = (
            "def _stream(records):\n"
            "    seen = set()\n"
            "    _see = seen.update\n"
            "    def row(index, r):\n"
            "        try:\n"
            f"{indent(lines, 3)}"
            f"            return ({', '.join(expressions)},)\n"
            "        except Exception:\n"
            "            return _slow(index, r)\n"
            "    return chain(map(row, count(), records)), seen\n"
        )
        namespace = fast_namespace(plan, self._clean, self._row)
        namespace.update(chain=itertools.chain.from_iterable, count=itertools.count)
        return compile_loop(source, "_stream", namespace)

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
        except CAST_ERRORS as exc:
            raise self._bad_value(values, shape, str(exc)) from exc
        if array.ndim != 1:
            raise self._bad_value(values, shape, "a value is not a scalar")
        if self._inexact and np.isnan(array).any():
            self._refuse_none(lambda: values, shape)
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
            except CAST_ERRORS:
                ok = False
            if not ok:
                index, feature = self._where(position, shape)
                return PreprocessorRuntimeError(
                    f"record {index}, feature {feature!r}: cannot convert "
                    f"{_described(value)} to {target}",
                    index=index,
                    field=feature,
                )
        return PreprocessorRuntimeError(f"cannot build the array: {reason}")

    def _check_uniform(
        self, values: list[Any], shape: tuple[int, int], dtype: np.dtype[Any]
    ) -> None:
        """Refuse an array that numpy could only build by turning values into strings
        or objects: mixed types must be cast on purpose, with ``numpy_dtype``.

        The value blamed is the wrong one wherever it falls in the batch: ``None`` is
        always wrong (a missing value); otherwise the batch's kind is numbers if it holds
        any, else strings, else bytes, and the first value of another kind is named.
        """
        if dtype.kind not in "OUS":
            return
        kinds = [_kind_of(value) for value in values]
        present = set(kinds)
        expected = next((k for k in ("number", "str", "bytes") if k in present), None)
        for position, (value, kind) in enumerate(zip(values, kinds, strict=True)):
            if value is not None and kind == expected:
                continue
            index, feature = self._where(position, shape)
            if value is None:
                reason = "is None, a missing value; give a value, or drop or fill the record"
            elif expected is None:
                reason = (
                    f"{_described(value)}: numpy can only hold {kind} values in an object "
                    f"array; set numpy_dtype='object' to accept that"
                )
            else:
                plural = "numbers" if expected == "number" else f"{expected} values"
                reason = (
                    f"{_described(value)} in a batch of {plural}; numpy would silently "
                    f"make a {dtype} array. Fix the data or set numpy_dtype to cast on "
                    f"purpose (e.g. 'float64', or 'object' to keep the values as they are)"
                )
            raise PreprocessorRuntimeError(
                f"record {index}, feature {feature!r}: {reason}", index=index, field=feature
            )


#: What numpy raises for a value it cannot cast to the array's dtype.
CAST_ERRORS: Final = (ValueError, TypeError, OverflowError, FloatingPointError)


def _kind_of(value: Any) -> str:
    if isinstance(value, (bool, int, float, complex, np.number, np.bool_)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    return type(value).__name__


def _needs_features(config: BackendConfig) -> list[str]:
    if config.feature_names:
        return []
    return ["input_format='numpy' needs feature_names: they are the columns of the array"]


def _scalar_dtype(config: BackendConfig) -> list[str]:
    problem = "" if config.numpy_dtype is None else dtype_problem(config.numpy_dtype)
    return [problem] if problem else []


def _build(plan: Plan, config: BackendConfig) -> NumpyPreprocessor:
    dtype = None if config.numpy_dtype is None else dtype_of(config.numpy_dtype)
    return NumpyPreprocessor(plan, dtype)


def _output_type(config: BackendConfig) -> Any:
    """``NDArray[<scalar type>]`` for a ``numpy_dtype``; ``NDArray[Any]`` without one,
    since the dtype is then inferred from each batch and cannot be known statically."""
    if config.numpy_dtype is None:
        return npt.NDArray[Any]
    return npt.NDArray[dtype_of(config.numpy_dtype).type]  # type: ignore[misc]


NUMPY = Format(
    input_format=InputFormat.NUMPY,
    build=_build,
    output_type=_output_type,
    rules=(_needs_features, _scalar_dtype),
)


def _described(value: Any) -> str:
    """A value and its type, as the messages of this module show them: ``'4' (str)``."""
    return f"{short_repr(value, 40)} ({type(value).__name__})"
