"""What the gradient-boosted tree pipelines (XGBoost, LightGBM) share.

A tree model pipeline is the same skeleton whatever the library: a config naming the
model file, the method and the thread count; an initializer that loads the model in the
library's own format (never a pickle) and checks it against the config; one execute
stage that calls the model once per batch and turns the result into records the way
:func:`~packflow.prebuilt.sklearn_model` does. A library module supplies only how to
load its booster, what it says about itself (:class:`TreeFacts`) and how to predict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from packflow.config import BackendConfig
from packflow.exceptions import ConfigError
from packflow.pipeline import Pipeline
from packflow.prebuilt.modelfile import refuse_string_features

__all__ = ["TreeFacts", "TreeModel", "TreeModelConfig", "tree_model_pipeline"]

Method = Literal["predict", "predict_proba"]
METHODS: tuple[str, ...] = ("predict", "predict_proba")

#: How a library's raw prediction reads: a value per row (regression), the probability
#: of class 1 (binary), one probability per class (multiclass), or a class number.
Output = Literal["values", "binary", "classes", "labels"]


def _known_method(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in METHODS:
        raise ValueError(f"'{attribute.name}' must be one of {', '.join(METHODS)}, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(
            f"'{attribute.name}' must be 0 (the library's default) or a positive number of "
            f"threads, got {value}"
        )


@attrs.frozen(kw_only=True)
class TreeModelConfig(BackendConfig):
    """The config of a tree model pipeline (``xgboost_model``, ``lightgbm_model``).

    Attributes
    ----------
    model_path
        The model file, in the library's own format; a relative path is read from the
        working directory.
    method
        ``"predict"`` (a value, or a class label for a classifier) or ``"predict_proba"``
        (a label and the probability of each class).
    threads
        Threads per prediction; ``0`` lets the library choose.
    """

    model_path: str
    method: str = attrs.field(default="predict", validator=_known_method)
    threads: int = attrs.field(default=0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class TreeFacts:
    """What a loaded booster says about itself, read once at build time.

    Attributes
    ----------
    objective
        The training objective as the library names it (``"binary:logistic"``,
        ``"multiclass"``).
    output
        How its prediction reads (see ``Output``); ``"values"`` for a regressor.
    classes
        The number of classes of a classifier, else 0.
    features
        How many features the model was trained on.
    feature_names
        The names it was trained with, or ``None`` when it was trained on bare arrays.
    probabilities
        Whether the objective gives probabilities (``predict_proba`` needs them).
    """

    objective: str
    output: Output
    classes: int
    features: int
    feature_names: tuple[str, ...] | None
    probabilities: bool


class TreeModel:
    """A loaded booster, the function that predicts with it and how its results read.

    Made by a tree model pipeline's ``booster`` initializer, once per built instance,
    after the model was checked against the config.
    """

    __slots__ = ("booster", "classes", "facts", "keys", "library", "method", "path", "predict")

    def __init__(
        self,
        booster: Any,
        *,
        library: str,
        path: str,
        method: str,
        facts: TreeFacts,
        predict: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
    ) -> None:
        self.booster = booster
        self.library = library
        self.path = path
        self.method = method
        self.facts = facts
        self.predict = predict
        # The native formats store no class labels: a classifier's classes are 0..k-1
        # (both libraries' scikit-learn wrappers encode labels that way before training).
        self.classes: list[int] = list(range(facts.classes))
        # Dict keys of a record are strings (JSON); the label itself stays a number.
        self.keys: list[str] = [str(label) for label in self.classes]

    def __repr__(self) -> str:
        return f"<TreeModel {self.library} {self.path!r}: {self.facts.objective}, {self.method}>"

    def run(self, features: npt.NDArray[Any]) -> list[dict[str, Any]]:
        """Predict a 2-D feature array in one call; one record per row.

        ``predict`` gives ``{"prediction": value}``: the value of a regressor (a list for
        a model with several targets), the class label of a classifier. ``predict_proba``
        gives ``{"label": most probable class, "probabilities": {class: probability}}``,
        the classes as text (``"0"``), since a record's keys are strings.
        """
        raw = self.predict(features)
        output = self.facts.output
        if output == "values":
            return [{"prediction": value} for value in raw.tolist()]
        if output == "labels":
            return [{"prediction": value} for value in raw.astype(np.int64).tolist()]
        if output == "binary":
            if self.method == "predict":
                # A bool array viewed as int8 lists as 0 and 1, without a call per record.
                return [{"prediction": up} for up in (raw > 0.5).view(np.int8).tolist()]
            positive = raw.tolist()
            first, second = self.keys
            return [
                {"label": int(p > 0.5), "probabilities": {first: 1.0 - p, second: p}}
                for p in positive
            ]
        best = raw.argmax(axis=1).tolist()
        if self.method == "predict":
            return [{"prediction": label} for label in best]
        keys = self.keys
        return [
            {"label": label, "probabilities": dict(zip(keys, row, strict=True))}
            for label, row in zip(best, raw.tolist(), strict=True)
        ]


def fit_problems(who: str, facts: TreeFacts, config: TreeModelConfig) -> list[str]:
    """Every way the model does not fit the config: features, their names, the method."""
    problems: list[str] = []
    features = list(config.feature_names)
    if facts.features != len(features):
        problems.append(
            f"the model was trained on {facts.features} features, but feature_names lists "
            f"{len(features)}: {', '.join(features) or 'none'}"
        )
    elif facts.feature_names is not None and list(facts.feature_names) != features:
        problems.append(
            f"the model was trained on the features {', '.join(facts.feature_names)} in that "
            f"order, but feature_names lists {', '.join(features)}"
        )
    if config.method == "predict_proba" and not facts.probabilities:
        problems.append(
            f"method 'predict_proba' needs a classifier that gives probabilities, but the "
            f"model's objective is {facts.objective!r}; use method='predict'"
        )
    return problems


def check_arguments(who: str, feature_names: Sequence[str], method: str) -> None:
    """Refuse ``feature_names`` given as one string and an unknown ``method``.

    Raises
    ------
    ConfigError
        Naming the argument and what to write instead.
    """
    refuse_string_features(who, feature_names)
    if method not in METHODS:
        raise ConfigError(
            f"{who}: method must be one of {', '.join(METHODS)}, got {method!r}",
            field="method",
        )


def tree_model_pipeline(
    who: str,
    *,
    name: str,
    config_model: type[TreeModelConfig],
    model_path: str | os.PathLike[str],
    feature_names: Sequence[str],
    method: str,
    threads: int,
    initializer: Callable[..., Any],
    execute: Callable[..., Any],
    config: dict[str, Any],
) -> Pipeline:
    """The pipeline every tree model factory returns: numpy features, one initializer
    (the booster) and one execute stage, every setting in the config."""
    check_arguments(who, feature_names, method)
    settings: dict[str, Any] = {"input_format": "numpy", "numpy_dtype": "float64", **config}
    pipe = Pipeline(
        name,
        config_model=config_model,
        model_path=os.fspath(model_path),
        feature_names=list(feature_names),
        method=method,
        threads=threads,
        **settings,
    )
    pipe.add_initializer(initializer)
    pipe.add_execute(execute)
    return pipe


def softmax(margins: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Row-wise softmax of class margins (XGBoost's ``multi:softmax`` keeps only labels)."""
    shifted = margins - margins.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return result
