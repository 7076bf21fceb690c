"""``lightgbm_model``: a pipeline around a LightGBM booster (extra ``lightgbm``).

Only LightGBM's own text format is read (what ``Booster.save_model`` and
``LGBMModel.booster_.save_model`` write). Pickles are never loaded: unpickling runs code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from packflow.pipeline import Pipeline
from packflow.prebuilt.extras import import_extra, require_extra
from packflow.prebuilt.modelfile import model_error, require_file, sniff
from packflow.prebuilt.trees import (
    Method,
    Output,
    TreeFacts,
    TreeModel,
    TreeModelConfig,
    fit_problems,
    tree_model_pipeline,
)
from packflow.records import Records

__all__ = ["LightGBMModelConfig", "lightgbm_model"]

_WHO = "lightgbm_model"
#: The names LightGBM gives the features of a model trained on a bare array.
_UNNAMED = re.compile(r"Column_\d+\Z")


@attrs.frozen(kw_only=True)
class LightGBMModelConfig(TreeModelConfig):
    """The config of a :func:`lightgbm_model` pipeline (see :class:`TreeModelConfig`).

    ``threads`` is LightGBM's ``num_threads`` for prediction; ``0`` keeps its default.
    """


def _facts(booster: Any) -> TreeFacts:
    objective = str(booster.params.get("objective", "regression")).split()[0]
    per_iteration = int(booster.num_model_per_iteration())
    names = [str(n) for n in booster.feature_name()]
    output: Output
    if objective == "binary":
        output, classes, probabilities = "binary", 2, True
    elif objective in ("multiclass", "multiclassova", "softmax", "multiclass_ova", "ova"):
        output, classes, probabilities = "classes", per_iteration, True
    else:
        output, classes, probabilities = "values", 0, False
    named = not all(_UNNAMED.match(n) for n in names)
    return TreeFacts(
        objective=objective,
        output=output,
        classes=classes,
        features=int(booster.num_feature()),
        feature_names=tuple(names) if named else None,
        probabilities=probabilities,
    )


def _predictor(booster: Any, threads: int) -> Callable[[npt.NDArray[Any]], npt.NDArray[Any]]:
    predict = booster.predict
    if not threads:
        return predict  # type: ignore[no-any-return]

    def with_threads(features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        result: npt.NDArray[Any] = predict(features, num_threads=threads)
        return result

    return with_threads


def load(config: TreeModelConfig) -> TreeModel:
    """Load ``config.model_path`` with LightGBM and check it against ``config``.

    Raises
    ------
    MissingExtraError
        When lightgbm is not installed.
    ModelFileError
        When the file is missing or is not a LightGBM text model (a pickle is refused
        without being loaded), or does not fit the config: another number (or other
        names) of features than ``feature_names``, or ``predict_proba`` on a model that
        gives no probabilities. Every mismatch is listed in ``problems``.
    """
    lgb = import_extra("lightgbm", "lightgbm", _WHO)
    path = config.model_path
    where = f"{_WHO}: model file {path!r}"
    require_file(where, path)
    kind = sniff(path)
    if kind is None or "LightGBM" not in kind:
        seen = f"; it looks like {kind}" if kind else ""
        raise model_error(
            where,
            path,
            [
                "is not a LightGBM text model (the format Booster.save_model writes, which "
                f"starts with 'tree'){seen}"
            ],
        )
    try:
        booster = lgb.Booster(model_file=path)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise model_error(where, path, [f"is not a model LightGBM can load: {message}"]) from exc
    facts = _facts(booster)
    problems = fit_problems(_WHO, facts, config)
    if problems:
        raise model_error(where, path, problems)
    return TreeModel(
        booster,
        library="lightgbm",
        path=path,
        method=config.method,
        facts=facts,
        predict=_predictor(booster, config.threads),
    )


def booster(config: LightGBMModelConfig) -> TreeModel:
    """Initializer: the booster, loaded and checked once per built instance."""
    return load(config)


def run_booster(features: npt.NDArray[np.number[Any]], booster: TreeModel) -> Records:
    """Execute: one ``Booster.predict`` per batch, rows mapped to records."""
    return booster.run(features)


def lightgbm_model(
    model_path: str | os.PathLike[str],
    *,
    feature_names: Sequence[str],
    method: Method = "predict",
    name: str = "lightgbm_model",
    threads: int = 0,
    **config: Any,
) -> Pipeline:
    """A pipeline that runs a LightGBM model saved in LightGBM's text format.

    Each record's ``feature_names`` become one row of a 2-D float64 array; one
    ``Booster.predict`` per batch; the results become records as
    :func:`~packflow.prebuilt.sklearn_model` gives them (see :meth:`TreeModel.run`):
    ``{"prediction": value}`` for a regressor or, with ``predict``, the class of a
    classifier; ``{"label": class, "probabilities": {"0": p, ...}}`` with
    ``predict_proba``. The booster is loaded by the initializer ``booster``, once per
    built instance, and checked there: a model trained on another number of features
    (or on named features in another order) is refused before any record runs.

    Parameters
    ----------
    model_path
        A text model written by ``save_model``; a relative path is read from the
        working directory when the pipeline is built.
    feature_names
        The fields that make the model's input, in the order it was trained on.
    method
        ``"predict"`` or ``"predict_proba"`` (objectives ``binary``, ``multiclass``,
        ``multiclassova``).
    name
        The pipeline's name (its part name in a composition).
    threads
        LightGBM's ``num_threads`` for prediction; ``0`` keeps its default.
    **config
        Other :class:`~packflow.BackendConfig` fields.

    Raises
    ------
    MissingExtraError
        When lightgbm is not installed (``pip install 'packflow[lightgbm]'``).
    ConfigError
        When ``feature_names`` is a string, or ``method`` is not one of the two.

    Building raises :class:`~packflow.InferenceBackendInitializationError`, caused by a
    :class:`~packflow.exceptions.ModelFileError`, when the file is missing, not a
    LightGBM text model, or does not fit.

    Examples
    --------
    >>> pipe = lightgbm_model("model.txt", feature_names=["a", "b"])  # doctest: +SKIP
    >>> pipe({"a": 1.0, "b": 2.0})  # doctest: +SKIP
    {'prediction': 0.73}
    """
    require_extra("lightgbm", "lightgbm", _WHO)
    return tree_model_pipeline(
        _WHO,
        name=name,
        config_model=LightGBMModelConfig,
        model_path=model_path,
        feature_names=feature_names,
        method=method,
        threads=threads,
        initializer=booster,
        execute=run_booster,
        config=config,
    )
