"""Prebuilt pipelines: a model file in, an ordinary :class:`~packflow.Pipeline` out.

- :func:`onnx_model`: an ONNX model run by onnxruntime (``pip install 'packflow[onnx]'``).
- :func:`sklearn_model`: a fitted scikit-learn estimator saved with joblib
  (``pip install 'packflow[sklearn]'``; trusted files only, loading one runs code).
- :func:`threshold` and :func:`label_map`: small pieces to put after a model with ``>>``.

Each returns a pipeline like one written by hand: ``check()`` it, compose it, ``replace``
its stages, bind it in a project's ``inference.py``, override its config (its config
model is :class:`OnnxModelConfig`, :class:`SklearnModelConfig`, ...). Importing this
module imports neither onnxruntime nor scikit-learn; building a model pipeline does.
"""

from __future__ import annotations

from packflow.prebuilt.fields import LabelMapConfig, ThresholdConfig, label_map, threshold
from packflow.prebuilt.onnx import OnnxModelConfig, OnnxSession, onnx_model
from packflow.prebuilt.sklearn import SklearnEstimator, SklearnModelConfig, sklearn_model

__all__ = [
    "LabelMapConfig",
    "OnnxModelConfig",
    "OnnxSession",
    "SklearnEstimator",
    "SklearnModelConfig",
    "ThresholdConfig",
    "label_map",
    "onnx_model",
    "sklearn_model",
    "threshold",
]
