"""``sklearn_model``: a pipeline around a fitted scikit-learn estimator (extra ``sklearn``).

The estimator is loaded with joblib, which unpickles it: **unpickling runs code**, so
load only files you trust (that you made, or got from someone you trust). ONNX
(:func:`packflow.prebuilt.onnx_model`) is the recommended format for models you ship:
an ``.onnx`` file is data, not code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from packflow.config import BackendConfig
from packflow.exceptions import ConfigError, ModelFileError
from packflow.pipeline import Pipeline
from packflow.prebuilt.extras import import_extra, require_extra
from packflow.prebuilt.modelfile import model_error, refuse_string_features, require_file
from packflow.records import Records

__all__ = ["SklearnEstimator", "SklearnModelConfig", "sklearn_model"]

Method = Literal["predict", "predict_proba", "decision_function"]
_METHODS: tuple[str, ...] = ("predict", "predict_proba", "decision_function")


def _known_method(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _METHODS:
        raise ValueError(f"'{attribute.name}' must be one of {', '.join(_METHODS)}, got {value!r}")


@attrs.frozen(kw_only=True)
class SklearnModelConfig(BackendConfig):
    """The config of a :func:`sklearn_model` pipeline.

    Attributes
    ----------
    model_path
        The joblib file of a fitted estimator; a relative path is read from the working
        directory. Trusted files only: loading it runs code.
    method
        ``"predict"``, ``"predict_proba"`` or ``"decision_function"``.
    """

    model_path: str
    method: str = attrs.field(default="predict", validator=_known_method)


class SklearnEstimator:
    """A fitted estimator, the method to call and how its results become records.

    Made by the ``estimator`` initializer of a :func:`sklearn_model` pipeline, once per
    built instance, after the estimator was checked against the config.
    """

    __slots__ = ("call", "classes", "estimator", "keys", "method", "path")

    def __init__(self, estimator: Any, *, path: str, method: str) -> None:
        self.estimator = estimator
        self.path = path
        self.method = method
        self.call = getattr(estimator, method)
        classes = getattr(estimator, "classes_", None)
        self.classes: list[Any] | None = None if classes is None else np.asarray(classes).tolist()
        # Dict keys of a record are strings (JSON); the label itself keeps its type.
        self.keys: list[str] | None = (
            None if self.classes is None else list(map(str, self.classes))
        )

    def __repr__(self) -> str:
        return f"<SklearnEstimator {self.path!r}: {type(self.estimator).__name__}.{self.method}>"

    @classmethod
    def load(cls, config: SklearnModelConfig) -> SklearnEstimator:
        """Load ``config.model_path`` with joblib and check it against ``config``.

        Raises
        ------
        MissingExtraError
            When joblib or scikit-learn is not installed.
        ModelFileError
            When the file is missing or cannot be loaded, or the estimator lacks the
            method, lacks ``classes_`` for ``predict_proba``, or expects another number
            (or other names) of features than ``feature_names``.
        """
        joblib = import_extra("joblib", "sklearn", "sklearn_model")
        import_extra("sklearn", "sklearn", "sklearn_model")
        path = config.model_path
        where = f"sklearn_model: model file {path!r}"
        require_file(where, path)
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise ModelFileError(
                f"{where} cannot be loaded with joblib: {type(exc).__name__}: {exc}", path=path
            ) from exc
        kind = type(estimator).__name__
        problems: list[str] = []
        if not callable(getattr(estimator, config.method, None)):
            has = [m for m in _METHODS if callable(getattr(estimator, m, None))]
            problems.append(
                f"the {kind} has no method {config.method!r}; it has "
                f"{', '.join(has) or 'none of ' + ', '.join(_METHODS)}"
            )
        if config.method == "predict_proba" and getattr(estimator, "classes_", None) is None:
            problems.append(f"the {kind} has no classes_ to name its probabilities")
        features = list(config.feature_names)
        expected = getattr(estimator, "n_features_in_", None)
        if expected is None:
            problems.append(
                f"the {kind} has no n_features_in_: it is not fitted (fit it before saving)"
            )
        elif expected != len(features):
            problems.append(
                f"the {kind} was fitted on {expected} features, but feature_names lists "
                f"{len(features)}: {', '.join(features)}"
            )
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None and expected == len(features) and list(names) != features:
            problems.append(
                f"the {kind} was fitted on the features {', '.join(map(str, names))} in that "
                f"order, but feature_names lists {', '.join(features)}"
            )
        if problems:
            raise model_error(where, path, problems)
        return cls(estimator, path=path, method=config.method)

    def run(self, features: npt.NDArray[Any]) -> list[dict[str, Any]]:
        """Call the method on a 2-D feature array; one record per row.

        ``predict`` gives ``{"prediction": value}`` (a list for multi-output models);
        ``predict_proba`` gives ``{"label": most probable class, "probabilities":
        {class: probability}}``; ``decision_function`` gives ``{"decision": score}``
        for a binary classifier or a regressor-like score, ``{"decision": {class:
        score}}`` for one score per class. The classes come from ``classes_``; as dict
        keys they are text (``"0"``), since a record's keys are strings.
        """
        result = self.call(features)
        if self.method == "predict":
            return [{"prediction": value} for value in np.asarray(result).tolist()]
        scores = np.asarray(result)
        classes, keys = self.classes, self.keys
        if self.method == "predict_proba":
            assert classes is not None and keys is not None  # checked at load
            best = scores.argmax(axis=1).tolist()
            return [
                {"label": classes[top], "probabilities": dict(zip(keys, row, strict=True))}
                for top, row in zip(best, scores.tolist(), strict=True)
            ]
        if scores.ndim == 1 or keys is None or scores.shape[1] != len(keys):
            return [{"decision": value} for value in scores.tolist()]
        return [{"decision": dict(zip(keys, row, strict=True))} for row in scores.tolist()]


def estimator(config: SklearnModelConfig) -> SklearnEstimator:
    """Initializer: the fitted estimator, loaded and checked once per built instance."""
    return SklearnEstimator.load(config)


def run_estimator(features: npt.NDArray[np.number[Any]], estimator: SklearnEstimator) -> Records:
    """Execute: one call of the configured method per batch, rows mapped to records."""
    return estimator.run(features)


def sklearn_model(
    model_path: str | os.PathLike[str],
    *,
    feature_names: Sequence[str],
    method: Method = "predict",
    name: str = "sklearn_model",
    **config: Any,
) -> Pipeline:
    """A pipeline that runs a fitted scikit-learn estimator saved with joblib.

    **Loading the file runs code** (joblib unpickles it): use files you trust only.
    Prefer :func:`~packflow.prebuilt.onnx_model` for models you ship.

    Each record's ``feature_names`` become one row of a 2-D float64 array; one call of
    ``method`` per batch; the results become records (see :meth:`SklearnEstimator.run`;
    class labels come from the estimator's ``classes_``). The estimator is loaded by the
    initializer ``estimator``, once per built instance, and checked there: a missing
    method or another number of features than ``feature_names`` is refused before any
    record runs.

    Parameters
    ----------
    model_path
        The joblib file; a relative path is read from the working directory when the
        pipeline is built.
    feature_names
        The fields that make the estimator's input, in the order it was fitted on.
    method
        ``"predict"``, ``"predict_proba"`` or ``"decision_function"``.
    name
        The pipeline's name (its part name in a composition).
    **config
        Other :class:`~packflow.BackendConfig` fields.

    Raises
    ------
    MissingExtraError
        When scikit-learn or joblib is not installed (``pip install 'packflow[sklearn]'``).
    ConfigError
        When ``feature_names`` is a string, or ``method`` is not one of the three.

    Examples
    --------
    >>> pipe = sklearn_model("model.joblib", feature_names=["a", "b"])  # doctest: +SKIP
    >>> pipe({"a": 1.0, "b": 2.0})  # doctest: +SKIP
    {'prediction': 1}
    """
    require_extra("sklearn", "sklearn", "sklearn_model")
    require_extra("joblib", "sklearn", "sklearn_model")
    refuse_string_features("sklearn_model", feature_names)
    if method not in _METHODS:
        raise ConfigError(
            f"sklearn_model: method must be one of {', '.join(_METHODS)}, got {method!r}",
            field="method",
        )
    settings: dict[str, Any] = {"input_format": "numpy", "numpy_dtype": "float64", **config}
    pipe = Pipeline(
        name,
        config_model=SklearnModelConfig,
        model_path=os.fspath(model_path),
        feature_names=list(feature_names),
        method=method,
        **settings,
    )
    pipe.add_initializer(estimator)
    pipe.add_execute(run_estimator)
    return pipe
