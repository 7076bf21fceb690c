"""Project templates: what `packflow create --template ...` writes, and that it holds.

The template tests of every kind (check, validate, run, export, the project's own tests)
are in tests/test_cli.py; these are about what a template's files promise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from packflow.cli import main
from packflow.prebuilt import onnx_model
from packflow.projects import create_project
from packflow.projects.bundle import packflow_requirement_problems

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_records() -> list[dict[str, float]]:
    features, _ = load_iris(return_X_y=True)
    return [dict(zip(IRIS_FEATURES, map(float, row), strict=True)) for row in features]


def test_the_onnx_templates_train_py_writes_the_model_the_template_ships(
    tmp_path: Path,
) -> None:
    project = create_project("flowers", tmp_path, template="onnx")
    shipped = tmp_path / "shipped.onnx"
    shipped.write_bytes((project / "model.onnx").read_bytes())
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    records = iris_records()
    before = onnx_model(shipped, feature_names=IRIS_FEATURES)(records)
    after = onnx_model(project / "model.onnx", feature_names=IRIS_FEATURES)(records)
    # Equal to the solver's tolerance (another scikit-learn release may stop at another
    # step), and the same labels for every flower of the data set.
    assert [o["output_label"] for o in after] == [o["output_label"] for o in before]
    np.testing.assert_allclose(
        [[o["output_probability"][k] for k in "012"] for o in after],
        [[o["output_probability"][k] for k in "012"] for o in before],
        atol=1e-2,
    )


@pytest.mark.parametrize("template", ["blank", "onnx", "sklearn", "xgboost", "lightgbm"])
def test_a_templates_requirement_on_packflow_is_an_exact_pin_of_this_version(
    template: str, tmp_path: Path
) -> None:
    from packflow._version import package_version

    project = create_project("pinned", tmp_path, template=template)
    lines = [
        line
        for line in (project / "requirements.txt").read_text().splitlines()
        if line.startswith("packflow")
    ]
    assert len(lines) == 1 and lines[0].endswith(f"=={package_version()}")
    assert packflow_requirement_problems(project / "requirements.txt") == []


@pytest.mark.parametrize(
    ("template", "model"), [("xgboost", "model.json"), ("lightgbm", "model.txt")]
)
def test_a_tree_template_checks_validates_runs_exports_passes_its_tests_and_retrains(
    template: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "trees", "--template", template]) == 0
    assert (tmp_path / "trees" / model).is_file()
    assert main(["check", "trees"]) == 0
    assert main(["validate", "trees"]) == 0
    ran = subprocess.run(
        [sys.executable, "-m", "packflow", "run", "trees", "--input", "trees/sample.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    outputs = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [o["label"] for o in outputs] == [
        "setosa",
        "versicolor",
        "setosa",
        "virginica",
        "versicolor",
        "virginica",
    ]
    assert all(set(o["probabilities"]) == {"setosa", "versicolor", "virginica"} for o in outputs)
    assert main(["export", "trees"]) == 0
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "trees",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout
    # train.py is seeded and single-threaded: it writes the shipped model byte for byte.
    first = (tmp_path / "trees" / model).read_bytes()
    (tmp_path / "trees" / model).unlink()
    again = subprocess.run(
        [sys.executable, "train.py"],
        cwd=tmp_path / "trees",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "trees" / model).read_bytes() == first
