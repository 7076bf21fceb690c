"""Train the iris classifier and write ``model.onnx`` beside this file, reproducibly.

Run: ``python examples/iris/train.py`` (needs ``pip install -e '.[test]'``: scikit-learn
and skl2onnx). The data is scikit-learn's bundled iris set, the split and the model are
seeded, and the conversion pins its opsets, so the same library versions write the same
model; ``tests/test_prebuilt.py`` checks that the committed ``model.onnx`` agrees with a
model trained here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

#: The record fields the model reads, in the order of iris' columns.
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SEED = 0
#: Opsets onnxruntime 1.17 and later all run.
OPSETS = {"": 17, "ai.onnx.ml": 3}


def split() -> tuple[Any, Any, Any, Any]:
    """Iris' features and classes, split 80/20 (stratified, seeded)."""
    features, classes = load_iris(return_X_y=True)
    parts: tuple[Any, Any, Any, Any] = tuple(  # type: ignore[assignment]
        train_test_split(features, classes, test_size=0.2, random_state=SEED, stratify=classes)
    )
    return parts


def train() -> LogisticRegression:
    """The classifier, fitted on the training part of the split."""
    train_x, _, train_y, _ = split()
    return LogisticRegression(max_iter=1000, random_state=SEED).fit(train_x, train_y)


def convert(estimator: LogisticRegression) -> bytes:
    """The ONNX model of ``estimator``: float features in, label and ZipMap out."""
    model = to_onnx(
        estimator,
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        target_opset=OPSETS,
    )
    return bytes(model.SerializeToString())


def main() -> None:
    estimator = train()
    _, test_x, _, test_y = split()
    accuracy = float(np.mean(estimator.predict(test_x) == test_y))
    path = Path(__file__).with_name("model.onnx")
    path.write_bytes(convert(estimator))
    print(f"wrote {path} ({path.stat().st_size} bytes); held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
