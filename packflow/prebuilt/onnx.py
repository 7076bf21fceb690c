"""``onnx_model``: a pipeline around one ONNX model, run by onnxruntime (extra ``onnx``).

The stages are module-level functions and every setting lives in the config
(:class:`OnnxModelConfig`), so a pipeline made here pickles by reference to this module
plus plain values, and a worker process (a Ray actor) builds its own session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from packflow._text import closest, short_repr
from packflow.config import BackendConfig
from packflow.exceptions import InferenceBackendRuntimeError, ModelFileError
from packflow.pipeline import Pipeline
from packflow.prebuilt.extras import import_extra, require_extra
from packflow.prebuilt.modelfile import model_error, refuse_string_features, require_file
from packflow.records import Records

__all__ = ["OnnxModelConfig", "OnnxSession", "onnx_model"]

#: ONNX tensor element types the features can be cast to, by onnxruntime's type name.
_NUMERIC_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
}


def _non_negative(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(
            f"'{attribute.name}' must be 0 (onnxruntime's default) or a positive number of "
            f"threads, got {value}"
        )


def _some_providers(instance: Any, attribute: attrs.Attribute[list[str]], value: Any) -> None:
    if not value:
        raise ValueError(
            f"'{attribute.name}' must name at least one execution provider, such as "
            "'CPUExecutionProvider'"
        )


@attrs.frozen(kw_only=True)
class OnnxModelConfig(BackendConfig):
    """The config of an :func:`onnx_model` pipeline (override any field as usual).

    Attributes
    ----------
    model_path
        The ``.onnx`` file; a relative path is read from the working directory.
    intra_op_threads
        onnxruntime's ``intra_op_num_threads``; ``0`` lets onnxruntime choose.
    providers
        Execution providers, in order of preference (``["CPUExecutionProvider"]``).
    output_fields
        ``{"model output": "record field"}``: the outputs to compute and the field each
        becomes. Empty (the default): every output, under its own name.
    """

    model_path: str
    intra_op_threads: int = attrs.field(default=0, validator=_non_negative)
    providers: list[str] = attrs.field(
        factory=lambda: ["CPUExecutionProvider"], validator=_some_providers
    )
    output_fields: dict[str, str] = attrs.field(factory=dict)


class OnnxSession:
    """One onnxruntime ``InferenceSession`` and what it needs to turn arrays into records.

    Made by the ``session`` initializer of an :func:`onnx_model` pipeline, once per built
    instance, after the model's input and outputs were checked against the config.
    """

    __slots__ = ("_texts", "dtype", "fields", "input_name", "output_names", "path", "session")

    def __init__(
        self,
        session: Any,
        *,
        path: str,
        input_name: str,
        dtype: type[np.generic],
        output_names: Sequence[str],
        fields: Sequence[str],
    ) -> None:
        self.session = session
        self.path = path
        self.input_name = input_name
        self.dtype = np.dtype(dtype)
        self.output_names = list(output_names)
        self.fields = list(fields)
        self._texts: dict[int, list[str]] = {}

    def __repr__(self) -> str:
        return f"<OnnxSession {self.path!r}: {self.input_name} -> {', '.join(self.fields)}>"

    @classmethod
    def load(cls, config: OnnxModelConfig) -> OnnxSession:
        """Open ``config.model_path`` and check it against ``config``.

        Raises
        ------
        MissingExtraError
            When onnxruntime is not installed.
        ModelFileError
            When the file is missing or not a model onnxruntime can load, or when the
            model does not fit the config: not exactly one input, a non-numeric input,
            an input width other than the number of ``feature_names``, an integer input
            fed with a float ``numpy_dtype``, ``output_fields`` naming no output, or a
            provider that is not available. Every mismatch is listed in ``problems``.
        """
        ort = import_extra("onnxruntime", "onnx", "onnx_model")
        path = config.model_path
        where = f"onnx_model: model file {path!r}"
        require_file(where, path)
        problems: list[str] = []
        available = list(ort.get_available_providers())
        missing = [p for p in config.providers if p not in available]
        for provider in missing:
            match = closest(provider, available)
            suggestion = f" (did you mean {match!r}?)" if match else ""
            problems.append(
                f"provider {provider!r} is not available in this onnxruntime{suggestion}; "
                f"available: {', '.join(available)}"
            )
        if missing:
            raise model_error(where, path, problems)
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_op_threads
        try:
            session = ort.InferenceSession(path, sess_options=options, providers=config.providers)
        except Exception as exc:
            raise ModelFileError(
                f"{where} is not a model onnxruntime can load: {type(exc).__name__}: {exc}",
                path=path,
            ) from exc
        inputs = session.get_inputs()
        input_name, dtype = "", np.float32
        if len(inputs) != 1:
            listed = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs) or "none"
            problems.append(
                f"the model has {len(inputs)} inputs ({listed}); onnx_model feeds one 2-D "
                "input of shape [batch, features]"
            )
        else:
            model_input = inputs[0]
            input_name = model_input.name
            problems += _input_problems(model_input, config)
            dtype = _NUMERIC_TYPES.get(model_input.type, np.float32)
        outputs = [o.name for o in session.get_outputs()]
        for output in config.output_fields:
            if output not in outputs:
                match = closest(output, outputs)
                suggestion = f" (did you mean {match!r}?)" if match else ""
                problems.append(
                    f"output_fields names {output!r}, which is not an output of the model"
                    f"{suggestion}; outputs: {', '.join(outputs)}"
                )
        if problems:
            raise model_error(where, path, problems)
        wanted = dict(config.output_fields) or {name: name for name in outputs}
        return cls(
            session,
            path=path,
            input_name=input_name,
            dtype=dtype,
            output_names=list(wanted),
            fields=list(wanted.values()),
        )

    def run(self, features: npt.NDArray[Any]) -> list[dict[str, Any]]:
        """One ``session.run`` over a 2-D feature array; one record per row.

        A tensor output of shape ``[batch]`` or ``[batch, 1]`` gives one value per
        record, ``[batch, k]`` a list of ``k`` values (per-class probabilities, in the
        model's class order); a ZipMap output (a sequence of maps) gives a dict of label
        to probability, its labels as text (``{"0": 0.9, "1": 0.1}``), since a record's
        keys are strings.

        Raises
        ------
        InferenceBackendRuntimeError
            When an output does not have one entry per input row.
        """
        if features.dtype != self.dtype:
            features = features.astype(self.dtype)
        results = self.session.run(self.output_names, {self.input_name: features})
        rows = features.shape[0]
        columns: list[list[Any]] = []
        for position, value in enumerate(results):
            # The common case (a label or a score per row) first, without a call.
            if type(value) is np.ndarray and value.ndim == 1 and value.shape[0] == rows:
                columns.append(value.tolist())
            else:
                columns.append(self._column(position, value, rows))
        # Dict displays for the usual one or two outputs: dict(zip(...)) per record costs
        # three times as much, which shows next to session.run on a small model.
        if len(columns) == 1:
            field = self.fields[0]
            return [{field: value} for value in columns[0]]
        if len(columns) == 2:
            first, second = self.fields
            return [{first: a, second: b} for a, b in zip(*columns, strict=True)]
        fields = self.fields
        return [dict(zip(fields, values, strict=True)) for values in zip(*columns, strict=True)]

    def _column(self, position: int, value: Any, rows: int) -> list[Any]:
        name = self.output_names[position]
        if isinstance(value, np.ndarray):
            if value.ndim == 0 or value.shape[0] != rows:
                raise self._misfit(name, f"an array of shape {list(value.shape)}", rows)
            if value.ndim == 2 and value.shape[1] == 1:
                value = value[:, 0]
            column: list[Any] = value.tolist()
            return column
        if isinstance(value, list):
            if len(value) != rows:
                raise self._misfit(name, f"a sequence of {len(value)}", rows)
            return self._text_keys(position, value)
        raise self._misfit(name, short_repr(value), rows)

    def _text_keys(self, position: int, maps: list[Any]) -> list[Any]:
        """ZipMap's maps with their labels as text: a record's keys are strings (JSON)."""
        if not maps:
            return maps
        texts = self._texts.get(position)
        if texts is None:
            # A ZipMap gives every row the model's class labels in the same order, so the
            # texts are worked out once per session and paired with each row's values.
            first = maps[0]
            labelled = isinstance(first, dict) and any(type(key) is not str for key in first)
            texts = self._texts[position] = [str(key) for key in first] if labelled else []
        if not texts:
            return maps
        return [dict(zip(texts, row.values(), strict=True)) for row in maps]

    def _misfit(self, name: str, found: str, rows: int) -> InferenceBackendRuntimeError:
        return InferenceBackendRuntimeError(
            f"onnx_model: model file {self.path!r}: output {name!r} is {found}, not one "
            f"entry per input row ({rows} rows); onnx_model maps outputs whose first "
            "dimension is the batch"
        )


def _input_problems(model_input: Any, config: OnnxModelConfig) -> list[str]:
    problems: list[str] = []
    label = f"input {model_input.name!r} ({model_input.type}, shape {model_input.shape})"
    dtype = _NUMERIC_TYPES.get(model_input.type)
    if dtype is None:
        problems.append(
            f"{label} is not numeric; onnx_model feeds numeric features (float, double or "
            "integer tensors)"
        )
    elif (
        np.issubdtype(dtype, np.integer)
        and config.numpy_dtype is not None
        and not np.issubdtype(np.dtype(config.numpy_dtype), np.integer)
    ):
        problems.append(
            f"{label} takes integers, but numpy_dtype={config.numpy_dtype!r} would cut "
            "the fractions off silently; set numpy_dtype='int64' (or the input's integer "
            "type)"
        )
    shape = list(model_input.shape)
    features = list(config.feature_names)
    if len(shape) != 2:
        problems.append(
            f"{label} is {len(shape)}-D; onnx_model feeds a 2-D input of shape [batch, features]"
        )
    elif isinstance(shape[1], int) and shape[1] != len(features):
        problems.append(
            f"{label} takes {shape[1]} features, but feature_names lists {len(features)}: "
            f"{', '.join(features)}"
        )
    return problems


def session(config: OnnxModelConfig) -> OnnxSession:
    """Initializer: the model's session, opened and checked once per built instance."""
    return OnnxSession.load(config)


def run_session(features: npt.NDArray[np.number[Any]], session: OnnxSession) -> Records:
    """Execute: one ``session.run`` per batch, outputs mapped to records by name."""
    return session.run(features)


def onnx_model(
    model_path: str | os.PathLike[str],
    *,
    feature_names: Sequence[str],
    name: str = "onnx_model",
    output_fields: Mapping[str, str] | None = None,
    intra_op_threads: int = 0,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    **config: Any,
) -> Pipeline:
    """A pipeline that runs an ONNX model over the records' features.

    Each record's ``feature_names`` (after ``rename_fields``; nested paths allowed)
    become one row of a 2-D array, cast to the model input's element type; one
    ``session.run`` per batch; each output becomes a field of every output record
    (see :meth:`OnnxSession.run`). The onnxruntime session is opened by the
    initializer ``session``, once per built instance, and the model's input (one 2-D
    numeric tensor, as wide as ``feature_names``) and outputs are checked against the
    config there, before any record runs.

    Parameters
    ----------
    model_path
        The ``.onnx`` file; a relative path is read from the working directory when the
        pipeline is built.
    feature_names
        The fields that make the model's input, in the model's column order.
    name
        The pipeline's name (its part name in a composition).
    output_fields
        ``{"model output": "record field"}``: which outputs to compute and their field
        names; by default every output, under its own name.
    intra_op_threads
        onnxruntime's intra-op thread count; ``0`` lets onnxruntime choose.
    providers
        onnxruntime execution providers, in order of preference.
    **config
        Other :class:`~packflow.BackendConfig` fields (``rename_fields``,
        ``numpy_dtype``, ...). The override file can change any field, by the
        pipeline's name in a composition.

    Returns
    -------
    Pipeline
        An ordinary pipeline with config model :class:`OnnxModelConfig`: check it,
        compose it with ``>>``, ``replace`` its stages, bind it in ``inference.py``.

    Raises
    ------
    MissingExtraError
        When onnxruntime is not installed (``pip install 'packflow[onnx]'``).
    ConfigError
        When ``feature_names`` is a string instead of a list of names.

    Building raises :class:`~packflow.InferenceBackendInitializationError`, caused by a
    :class:`~packflow.exceptions.ModelFileError`, when the file is missing or does not
    fit.

    Examples
    --------
    >>> pipe = onnx_model("model.onnx", feature_names=["a", "b"])  # doctest: +SKIP
    >>> pipe({"a": 1.0, "b": 2.0})  # doctest: +SKIP
    {'output_label': 1, 'output_probability': {'0': 0.1, '1': 0.9}}
    """
    require_extra("onnxruntime", "onnx", "onnx_model")
    refuse_string_features("onnx_model", feature_names)
    settings: dict[str, Any] = {"input_format": "numpy", "numpy_dtype": "float64", **config}
    pipe = Pipeline(
        name,
        config_model=OnnxModelConfig,
        model_path=os.fspath(model_path),
        feature_names=list(feature_names),
        output_fields=dict(output_fields or {}),
        intra_op_threads=intra_op_threads,
        providers=list(providers),
        **settings,
    )
    pipe.add_initializer(session)
    pipe.add_execute(run_session)
    return pipe
