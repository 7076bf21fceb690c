"""Prebuilt pipelines: a model file in, an ordinary :class:`~packflow.Pipeline` out.

- :func:`onnx_model`: an ONNX model run by onnxruntime (``pip install 'packflow[onnx]'``).
- :func:`sklearn_model`: a fitted scikit-learn estimator saved with joblib
  (``pip install 'packflow[sklearn]'``; trusted files only, loading one runs code).
- :func:`xgboost_model`: an XGBoost model in its JSON or UBJSON format
  (``pip install 'packflow[xgboost]'``).
- :func:`lightgbm_model`: a LightGBM model in its text format
  (``pip install 'packflow[lightgbm]'``).
- :func:`threshold` and :func:`label_map`: small pieces to put after a model with ``>>``.

Each returns a pipeline like one written by hand: ``check()`` it, compose it, ``replace``
its stages, bind it in a project's ``inference.py``, override its config (its config
model is :class:`OnnxModelConfig`, :class:`SklearnModelConfig`, ...). Importing this
module imports no model library; building a model pipeline does.
"""

from __future__ import annotations

from packflow.prebuilt.fields import LabelMapConfig, ThresholdConfig, label_map, threshold
from packflow.prebuilt.lightgbm import LightGBMModelConfig, lightgbm_model
from packflow.prebuilt.onnx import OnnxModelConfig, OnnxSession, onnx_model
from packflow.prebuilt.sklearn import SklearnEstimator, SklearnModelConfig, sklearn_model
from packflow.prebuilt.trees import TreeModel, TreeModelConfig
from packflow.prebuilt.xgboost import XGBoostModelConfig, xgboost_model

__all__ = [
    "LabelMapConfig",
    "LightGBMModelConfig",
    "OnnxModelConfig",
    "OnnxSession",
    "SklearnEstimator",
    "SklearnModelConfig",
    "ThresholdConfig",
    "TreeModel",
    "TreeModelConfig",
    "XGBoostModelConfig",
    "label_map",
    "lightgbm_model",
    "onnx_model",
    "sklearn_model",
    "threshold",
    "xgboost_model",
]
