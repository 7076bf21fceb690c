"""``xgboost_model``: a pipeline around an XGBoost booster (extra ``xgboost``).

Only XGBoost's own formats are read: JSON (``.json``) and UBJSON (``.ubj``), what
``Booster.save_model`` and ``XGBModel.save_model`` write. Pickles are never loaded
(unpickling runs code), nor the deprecated binary format.
"""

from __future__ import annotations

import json
import os
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
    softmax,
    tree_model_pipeline,
)
from packflow.records import Records

__all__ = ["XGBoostModelConfig", "xgboost_model"]

_WHO = "xgboost_model"
_SUFFIXES = (".json", ".ubj")


@attrs.frozen(kw_only=True)
class XGBoostModelConfig(TreeModelConfig):
    """The config of an :func:`xgboost_model` pipeline (see :class:`TreeModelConfig`).

    ``threads`` sets the booster's ``nthread``; ``0`` keeps XGBoost's default (every core).
    """


def _facts(booster: Any) -> TreeFacts:
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
    names = booster.feature_names
    output: Output
    if objective in ("binary:logistic", "binary:logitraw"):
        output, classes, probabilities = "binary", 2, True
    elif objective == "binary:hinge":
        output, classes, probabilities = "labels", 2, False
    elif objective in ("multi:softprob", "multi:softmax"):
        output, probabilities = "classes", True
    else:
        output, classes, probabilities = "values", 0, False
    return TreeFacts(
        objective=objective,
        output=output,
        classes=classes,
        features=int(booster.num_features()),
        feature_names=None if names is None else tuple(names),
        probabilities=probabilities,
    )


def _predictor(booster: Any, objective: str) -> Callable[[npt.NDArray[Any]], npt.NDArray[Any]]:
    predict = booster.inplace_predict
    if objective == "binary:logitraw":

        def logistic(features: npt.NDArray[Any]) -> npt.NDArray[Any]:
            margin = predict(features)
            result: npt.NDArray[Any] = 1.0 / (1.0 + np.exp(-margin))
            return result

        return logistic
    if objective == "multi:softmax":
        # softmax keeps only the label; its margins give the probabilities.
        def probabilities(features: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return softmax(predict(features, predict_type="margin"))

        return probabilities
    return predict  # type: ignore[no-any-return]


def load(config: TreeModelConfig) -> TreeModel:
    """Load ``config.model_path`` with XGBoost and check it against ``config``.

    Raises
    ------
    MissingExtraError
        When xgboost is not installed.
    ModelFileError
        When the file is missing, is not a ``.json`` or ``.ubj`` file, is not an XGBoost
        model, or does not fit the config: another number (or other names) of features
        than ``feature_names``, or ``predict_proba`` on a model that gives no
        probabilities. Every mismatch is listed in ``problems``.
    """
    xgb = import_extra("xgboost", "xgboost", _WHO)
    path = config.model_path
    where = f"{_WHO}: model file {path!r}"
    require_file(where, path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SUFFIXES:
        kind = sniff(path)
        seen = f"; it looks like {kind}" if kind else ""
        raise model_error(
            where,
            path,
            [
                f"xgboost_model reads XGBoost's own formats, JSON (.json) or UBJSON (.ubj) "
                f"as Booster.save_model writes them, not {suffix or 'a file without suffix'}"
                f"{seen}"
            ],
        )
    booster = xgb.Booster()
    try:
        booster.load_model(path)
    except Exception as exc:
        kind = sniff(path)
        seen = f" (it looks like {kind})" if kind and "XGBoost" not in kind else ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise model_error(
            where, path, [f"is not an XGBoost model XGBoost can load{seen}: {message}"]
        ) from exc
    facts = _facts(booster)
    problems = fit_problems(_WHO, facts, config)
    if problems:
        raise model_error(where, path, problems)
    if config.threads:
        booster.set_param({"nthread": config.threads})
    return TreeModel(
        booster,
        library="xgboost",
        path=path,
        method=config.method,
        facts=facts,
        predict=_predictor(booster, facts.objective),
    )


def booster(config: XGBoostModelConfig) -> TreeModel:
    """Initializer: the booster, loaded and checked once per built instance."""
    return load(config)


def run_booster(features: npt.NDArray[np.number[Any]], booster: TreeModel) -> Records:
    """Execute: one ``inplace_predict`` per batch, rows mapped to records."""
    return booster.run(features)


def xgboost_model(
    model_path: str | os.PathLike[str],
    *,
    feature_names: Sequence[str],
    method: Method = "predict",
    name: str = "xgboost_model",
    threads: int = 0,
    **config: Any,
) -> Pipeline:
    """A pipeline that runs an XGBoost model saved in XGBoost's JSON or UBJSON format.

    Each record's ``feature_names`` become one row of a 2-D float64 array; one
    ``Booster.inplace_predict`` per batch; the results become records as
    :func:`~packflow.prebuilt.sklearn_model` gives them (see :meth:`TreeModel.run`):
    ``{"prediction": value}`` for a regressor or, with ``predict``, the class of a
    classifier; ``{"label": class, "probabilities": {"0": p, ...}}`` with
    ``predict_proba``. The booster is loaded by the initializer ``booster``, once per
    built instance, and checked there: a model trained on another number of features
    (or on named features in another order) is refused before any record runs.

    Parameters
    ----------
    model_path
        A ``.json`` or ``.ubj`` file written by ``save_model``; a relative path is read
        from the working directory when the pipeline is built.
    feature_names
        The fields that make the model's input, in the order it was trained on.
    method
        ``"predict"`` or ``"predict_proba"`` (classifiers: ``binary:logistic``,
        ``binary:logitraw``, ``multi:softprob``, ``multi:softmax``).
    name
        The pipeline's name (its part name in a composition).
    threads
        The booster's ``nthread``; ``0`` keeps XGBoost's default.
    **config
        Other :class:`~packflow.BackendConfig` fields.

    Raises
    ------
    MissingExtraError
        When xgboost is not installed (``pip install 'packflow[xgboost]'``).
    ConfigError
        When ``feature_names`` is a string, or ``method`` is not one of the two.

    Building raises :class:`~packflow.InferenceBackendInitializationError`, caused by a
    :class:`~packflow.exceptions.ModelFileError`, when the file is missing, not an
    XGBoost model, or does not fit.

    Examples
    --------
    >>> pipe = xgboost_model("model.json", feature_names=["a", "b"])  # doctest: +SKIP
    >>> pipe({"a": 1.0, "b": 2.0})  # doctest: +SKIP
    {'prediction': 0.73}
    """
    require_extra("xgboost", "xgboost", _WHO)
    return tree_model_pipeline(
        _WHO,
        name=name,
        config_model=XGBoostModelConfig,
        model_path=model_path,
        feature_names=feature_names,
        method=method,
        threads=threads,
        initializer=booster,
        execute=run_booster,
        config=config,
    )
