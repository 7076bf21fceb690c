"""Iris species from flower measurements: a prebuilt ONNX pipeline and a label map.

``model.onnx`` is made by ``train.py`` (scikit-learn + skl2onnx, seeded). The model
returns a class number and ZipMap probabilities by class number; ``label_map`` names
both.
"""

from __future__ import annotations

from pathlib import Path

from packflow.prebuilt import label_map, onnx_model

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = {0: "setosa", 1: "versicolor", 2: "virginica"}

pipe = onnx_model(
    Path(__file__).with_name("model.onnx"),
    feature_names=FEATURES,
    output_fields={"output_label": "species", "output_probability": "probabilities"},
    name="iris",
) >> label_map(["species", "probabilities"], SPECIES, name="species_names")
