"""Prebuilt tree model pipelines on the real libraries: XGBoost and LightGBM.

Every model is trained here, in a few milliseconds, on scikit-learn's bundled datasets,
and every prediction is compared with the library's own on the same rows.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from packflow import InferenceBackendInitializationError, PreprocessorRuntimeError
from packflow.exceptions import ConfigError, MissingExtraError, ModelFileError
from packflow.loaders import InferenceBackendLoader
from packflow.prebuilt import label_map, lightgbm_model, threshold, xgboost_model

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
XGB = {"nthread": 1, "max_depth": 3, "seed": 0}
LGB = {"num_threads": 1, "verbose": -1, "num_leaves": 7, "seed": 0, "deterministic": True}


def as_records(rows: NDArray[Any], names: list[str]) -> list[dict[str, float]]:
    return [dict(zip(names, map(float, row), strict=True)) for row in rows]


def flower(values: list[float]) -> dict[str, float]:
    return dict(zip(IRIS_FEATURES, values, strict=True))


def names_of(width: int) -> list[str]:
    return [f"f{i}" for i in range(width)]


def model_error(info: pytest.ExceptionInfo[BaseException]) -> ModelFileError:
    assert isinstance(info.value, InferenceBackendInitializationError), repr(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, ModelFileError), repr(info.value)
    return cause


@pytest.fixture(scope="module")
def iris() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    features, classes = load_iris(return_X_y=True)
    return features, classes


@pytest.fixture(scope="module")
def cancer() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    features, classes = load_breast_cancer(return_X_y=True)
    return features, classes


@pytest.fixture(scope="module")
def diabetes() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    features, target = load_diabetes(return_X_y=True)
    return features, target


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tree-models")


def train_xgb(features: Any, labels: Any, rounds: int = 8, **params: Any) -> Any:
    return xgb.train({**XGB, **params}, xgb.DMatrix(features, label=labels), rounds)


def train_lgb(features: Any, labels: Any, rounds: int = 8, **params: Any) -> Any:
    return lgb.train({**LGB, **params}, lgb.Dataset(features, label=labels), rounds)


@pytest.fixture(scope="module")
def xgb_iris(models: Path, iris: tuple[Any, Any]) -> tuple[Any, Path]:
    booster = train_xgb(*iris, objective="multi:softprob", num_class=3)
    path = models / "iris.json"
    booster.save_model(path)
    return booster, path


@pytest.fixture(scope="module")
def lgb_iris(models: Path, iris: tuple[Any, Any]) -> tuple[Any, Path]:
    booster = train_lgb(*iris, objective="multiclass", num_class=3)
    path = models / "iris.txt"
    booster.save_model(path)
    return booster, path


# --------------------------------------------------------------------------- xgboost_model


def test_xgboost_multiclass_probabilities_are_the_boosters_by_class(
    iris: tuple[Any, Any], xgb_iris: tuple[Any, Path]
) -> None:
    booster, path = xgb_iris
    features, _ = iris
    outputs = xgboost_model(path, feature_names=IRIS_FEATURES, method="predict_proba")(
        as_records(features, IRIS_FEATURES)
    )
    expected = booster.predict(xgb.DMatrix(features))
    assert [o["label"] for o in outputs] == expected.argmax(axis=1).tolist()
    assert all(list(o["probabilities"]) == ["0", "1", "2"] for o in outputs)
    np.testing.assert_array_equal(
        [list(o["probabilities"].values()) for o in outputs], expected.astype(np.float64)
    )


def test_xgboost_predict_gives_the_classifiers_labels(
    cancer: tuple[Any, Any], models: Path
) -> None:
    features, classes = cancer
    classifier = xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(features, classes)
    path = models / "cancer.json"
    classifier.save_model(path)
    names = names_of(features.shape[1])
    records = as_records(features, names)
    labels = xgboost_model(path, feature_names=names)(records)
    assert [o["prediction"] for o in labels] == classifier.predict(features).tolist()
    probabilities = xgboost_model(path, feature_names=names, method="predict_proba")(records)
    np.testing.assert_allclose(
        [[o["probabilities"]["0"], o["probabilities"]["1"]] for o in probabilities],
        classifier.predict_proba(features),
        rtol=1e-6,
    )
    assert [o["label"] for o in probabilities] == classifier.predict(features).tolist()


def test_xgboost_regressor_in_ubj_gives_one_number_per_record(
    diabetes: tuple[Any, Any], models: Path
) -> None:
    features, target = diabetes
    booster = train_xgb(features, target, objective="reg:squarederror")
    path = models / "diabetes.ubj"
    booster.save_model(path)
    names = names_of(features.shape[1])
    outputs = xgboost_model(path, feature_names=names)(as_records(features, names))
    expected = booster.predict(xgb.DMatrix(features)).tolist()
    assert [o["prediction"] for o in outputs] == expected


def test_xgboost_softmax_gives_labels_and_probabilities_from_its_margins(
    iris: tuple[Any, Any], models: Path
) -> None:
    features, classes = iris
    booster = train_xgb(features, classes, objective="multi:softmax", num_class=3)
    path = models / "iris-softmax.json"
    booster.save_model(path)
    records = as_records(features, IRIS_FEATURES)
    labels = xgboost_model(path, feature_names=IRIS_FEATURES)(records)
    assert [o["prediction"] for o in labels] == booster.predict(xgb.DMatrix(features)).tolist()
    probabilities = xgboost_model(path, feature_names=IRIS_FEATURES, method="predict_proba")(
        records
    )
    margins = booster.predict(xgb.DMatrix(features), output_margin=True)
    expected = np.exp(margins) / np.exp(margins).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        [list(o["probabilities"].values()) for o in probabilities], expected, rtol=1e-5
    )


def test_xgboost_model_takes_one_event_and_returns_one_record(xgb_iris: tuple[Any, Path]) -> None:
    booster, path = xgb_iris
    row = [6.5, 3.0, 5.2, 2.0]
    output = xgboost_model(path, feature_names=IRIS_FEATURES)(
        dict(zip(IRIS_FEATURES, row, strict=True))
    )
    assert output == {"prediction": int(booster.predict(xgb.DMatrix([row])).argmax())}


def test_xgboost_feature_names_stored_in_the_model_are_checked_in_order(
    iris: tuple[Any, Any], models: Path
) -> None:
    features, classes = iris
    dmatrix = xgb.DMatrix(features, label=classes, feature_names=IRIS_FEATURES)
    booster = xgb.train({**XGB, "objective": "multi:softprob", "num_class": 3}, dmatrix, 3)
    path = models / "iris-named.json"
    booster.save_model(path)
    assert xgboost_model(path, feature_names=IRIS_FEATURES).build()  # the same order: fine
    swapped = [IRIS_FEATURES[1], IRIS_FEATURES[0], *IRIS_FEATURES[2:]]
    with pytest.raises(InferenceBackendInitializationError) as info:
        xgboost_model(path, feature_names=swapped).build()
    assert "trained on the features sepal_length, sepal_width, petal_length" in str(
        model_error(info)
    )


def test_xgboost_reads_no_pickle_and_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Trap(str(marker))))
    with pytest.raises(InferenceBackendInitializationError) as info:
        xgboost_model(path, feature_names=["a"]).build()
    message = str(model_error(info))
    assert "JSON (.json) or UBJSON (.ubj)" in message and "pickle" in message
    assert not marker.exists()


# --------------------------------------------------------------------------- lightgbm_model


def test_lightgbm_multiclass_probabilities_are_the_boosters_by_class(
    iris: tuple[Any, Any], lgb_iris: tuple[Any, Path]
) -> None:
    booster, path = lgb_iris
    features, _ = iris
    records = as_records(features, IRIS_FEATURES)
    outputs = lightgbm_model(path, feature_names=IRIS_FEATURES, method="predict_proba")(records)
    expected = booster.predict(features)
    assert [o["label"] for o in outputs] == expected.argmax(axis=1).tolist()
    np.testing.assert_array_equal([list(o["probabilities"].values()) for o in outputs], expected)
    labels = lightgbm_model(path, feature_names=IRIS_FEATURES)(records)
    assert [o["prediction"] for o in labels] == expected.argmax(axis=1).tolist()


def test_lightgbm_binary_classifier_agrees_with_lgbmclassifier(
    cancer: tuple[Any, Any], models: Path
) -> None:
    features, classes = cancer
    classifier = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, n_jobs=1, verbose=-1)
    classifier.fit(features, classes)
    path = models / "cancer.txt"
    classifier.booster_.save_model(path)
    names = names_of(features.shape[1])
    records = as_records(features, names)
    labels = lightgbm_model(path, feature_names=names)(records)
    assert [o["prediction"] for o in labels] == classifier.predict(features).tolist()
    probabilities = lightgbm_model(path, feature_names=names, method="predict_proba")(records)
    np.testing.assert_allclose(
        [[o["probabilities"]["0"], o["probabilities"]["1"]] for o in probabilities],
        classifier.predict_proba(features),
        rtol=1e-12,
    )


def test_lightgbm_regressor_gives_one_number_per_record(
    diabetes: tuple[Any, Any], models: Path
) -> None:
    features, target = diabetes
    booster = train_lgb(features, target, objective="regression")
    path = models / "diabetes.txt"
    booster.save_model(path)
    names = names_of(features.shape[1])
    outputs = lightgbm_model(path, feature_names=names, threads=1)(as_records(features, names))
    assert [o["prediction"] for o in outputs] == booster.predict(features).tolist()


def test_lightgbm_feature_names_stored_in_the_model_are_checked_in_order(
    iris: tuple[Any, Any], models: Path
) -> None:
    features, classes = iris
    dataset = lgb.Dataset(features, label=classes, feature_name=IRIS_FEATURES)
    booster = lgb.train({**LGB, "objective": "multiclass", "num_class": 3}, dataset, 3)
    path = models / "iris-named.txt"
    booster.save_model(path)
    assert lightgbm_model(path, feature_names=IRIS_FEATURES).build()
    with pytest.raises(InferenceBackendInitializationError) as info:
        lightgbm_model(path, feature_names=list(reversed(IRIS_FEATURES))).build()
    assert "in that order, but feature_names lists petal_width" in str(model_error(info))


def test_lightgbm_reads_no_pickle_and_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model.txt"
    path.write_bytes(pickle.dumps(_Trap(str(marker))))
    with pytest.raises(InferenceBackendInitializationError) as info:
        lightgbm_model(path, feature_names=["a"]).build()
    message = str(model_error(info))
    assert "not a LightGBM text model" in message and "pickle" in message
    assert not marker.exists()


# --------------------------------------------------------------------------- both


class _Trap:
    """Unpickling it writes a file: proof that a loader ran a pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.marker).write_text, ("unpickled",))


FACTORIES = [
    pytest.param(xgboost_model, "iris.json", id="xgboost"),
    pytest.param(lightgbm_model, "iris.txt", id="lightgbm"),
]


@pytest.fixture(scope="module")
def both(xgb_iris: tuple[Any, Path], lgb_iris: tuple[Any, Path]) -> Path:
    assert xgb_iris[1].parent == lgb_iris[1].parent
    return xgb_iris[1].parent


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_feature_count_other_than_the_models_is_refused_at_build(
    factory: Any, file: str, both: Path
) -> None:
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(both / file, feature_names=IRIS_FEATURES[:3]).build()
    error = model_error(info)
    assert error.path == str(both / file)
    assert (
        "trained on 4 features, but feature_names lists 3: sepal_length, sepal_width, petal_length"
    ) in str(error)


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_missing_model_file_is_refused_at_build_naming_the_file(
    factory: Any, file: str, tmp_path: Path
) -> None:
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(tmp_path / file, feature_names=IRIS_FEATURES).build()
    assert f"{tmp_path / file}' does not exist" in str(model_error(info))


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_corrupt_model_file_is_refused_at_build(
    factory: Any, file: str, both: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / file
    corrupt.write_bytes((both / file).read_bytes()[:200])
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(corrupt, feature_names=IRIS_FEATURES).build()
    assert "can load" in str(model_error(info))


@pytest.mark.parametrize(
    ("factory", "other", "hint"),
    [
        pytest.param(xgboost_model, "iris.txt", "a LightGBM text model", id="xgboost"),
        pytest.param(lightgbm_model, "iris.json", "an XGBoost JSON model", id="lightgbm"),
    ],
)
def test_a_model_file_of_the_other_library_is_refused_naming_its_kind(
    factory: Any, other: str, hint: str, both: Path
) -> None:
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(both / other, feature_names=IRIS_FEATURES).build()
    assert f"it looks like {hint}" in str(model_error(info))


@pytest.mark.parametrize(
    ("factory", "train", "file"),
    [
        pytest.param(xgboost_model, train_xgb, "reg.json", id="xgboost"),
        pytest.param(lightgbm_model, train_lgb, "reg.txt", id="lightgbm"),
    ],
)
def test_predict_proba_on_a_regressor_is_refused_at_build(
    factory: Any, train: Any, file: str, diabetes: tuple[Any, Any], tmp_path: Path
) -> None:
    features, target = diabetes
    train(features[:, :2], target, rounds=2).save_model(tmp_path / file)
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(tmp_path / file, feature_names=["a", "b"], method="predict_proba").build()
    assert "method 'predict_proba' needs a classifier" in str(model_error(info))


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_every_mismatch_is_reported_at_once(
    factory: Any, file: str, diabetes: tuple[Any, Any], tmp_path: Path
) -> None:
    features, target = diabetes
    train = train_xgb if factory is xgboost_model else train_lgb
    train(features[:, :2], target, rounds=2).save_model(tmp_path / file)
    with pytest.raises(InferenceBackendInitializationError) as info:
        factory(tmp_path / file, feature_names=["a"], method="predict_proba").build()
    assert len(model_error(info).problems) == 2


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_an_unknown_method_and_a_string_of_features_are_refused_at_definition(
    factory: Any, file: str
) -> None:
    with pytest.raises(ConfigError, match="method must be one of predict, predict_proba"):
        factory(file, feature_names=["a"], method="decision_function")
    with pytest.raises(ConfigError, match=r"write feature_names=\['a'\]"):
        factory(file, feature_names="a")


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_negative_thread_count_is_a_config_error(factory: Any, file: str, both: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        factory(both / file, feature_names=IRIS_FEATURES, threads=-1).build()


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_tree_model_composes_with_label_map_and_threshold(
    factory: Any, file: str, both: Path
) -> None:
    named = (
        factory(both / file, feature_names=IRIS_FEATURES, method="predict_proba", name="model")
        >> label_map(["label", "probabilities"], {0: "setosa", 1: "versicolor", 2: "virginica"})
        >> threshold("probabilities.virginica", 0.5, "virginica")
    )
    named.check()
    output = named(flower([6.5, 3.0, 5.2, 2.0]))
    assert output["label"] == "virginica" and output["virginica"] is True


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_the_override_file_sets_a_tree_models_method_by_part_name(
    factory: Any, file: str, both: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"configs": {"model": {"method": "predict_proba"}}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(overrides))
    pipe = factory(both / file, feature_names=IRIS_FEATURES, name="model") >> threshold(
        "label", 1, "not_setosa"
    )
    output = pipe.build()(flower([6.5, 3.0, 5.2, 2.0]))
    assert set(output) == {"label", "probabilities", "not_setosa"}


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_an_unbound_tree_model_pipeline_pickles_and_builds_its_own_booster(
    factory: Any, file: str, both: Path, iris: tuple[Any, Any]
) -> None:
    pipe = factory(both / file, feature_names=IRIS_FEATURES, method="predict_proba")
    records = as_records(iris[0][:5], IRIS_FEATURES)
    copy = pickle.loads(pickle.dumps(pipe))
    assert copy(records) == pipe(records)


@pytest.mark.parametrize(("factory", "file"), FACTORIES)
def test_a_non_numeric_feature_names_the_record_and_field_with_on_error_row(
    factory: Any, file: str, both: Path
) -> None:
    built = factory(both / file, feature_names=IRIS_FEATURES).build()
    good = flower([6.5, 3.0, 5.2, 2.0])
    outputs = built([good, {**good, "petal_width": "wide"}], on_error="row")
    assert "prediction" in outputs[0]
    assert outputs[1]["error"]["index"] == 1 and "petal_width" in outputs[1]["error"]["message"]
    with pytest.raises(PreprocessorRuntimeError, match="record 0, feature 'petal_width'"):
        built([{**good, "petal_width": "wide"}])


@pytest.mark.parametrize(
    ("library", "file", "call"),
    [
        pytest.param("xgboost", "model.json", "xgboost_model", id="xgboost"),
        pytest.param("lightgbm", "model.txt", "lightgbm_model", id="lightgbm"),
    ],
)
def test_a_tree_model_project_loads_from_its_packflow_yaml(
    library: str, file: str, call: str, both: Path, tmp_path: Path
) -> None:
    source = both / ("iris.json" if library == "xgboost" else "iris.txt")
    (tmp_path / file).write_bytes(source.read_bytes())
    (tmp_path / "packflow.yaml").write_text(
        "name: trees\nversion: 0.1.0\nruntime:\n  inference_backend: inference:pipe\n"
    )
    (tmp_path / "inference.py").write_text(
        "from pathlib import Path\n"
        f"from packflow.prebuilt import {call}\n"
        f"pipe = {call}(Path(__file__).with_name({file!r}), "
        f"feature_names={IRIS_FEATURES!r}, method='predict_proba')\n"
    )
    built = InferenceBackendLoader.from_project(tmp_path)
    assert built(flower([5.1, 3.5, 1.4, 0.2]))["label"] == 0
    sys.modules.pop("inference", None)


def test_importing_packflow_prebuilt_imports_neither_xgboost_nor_lightgbm() -> None:
    code = (
        "import sys, packflow.prebuilt\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('xgboost', 'lightgbm')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class _Uninstalled:
    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == self.name or name.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.mark.parametrize(
    ("package", "make"),
    [
        ("xgboost", lambda: xgboost_model("m.json", feature_names=["a"])),
        ("lightgbm", lambda: lightgbm_model("m.txt", feature_names=["a"])),
    ],
)
def test_a_missing_tree_library_names_the_extra_to_install(
    package: str, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Uninstalled(package), *sys.meta_path])
    with pytest.raises(MissingExtraError) as info:
        make()
    assert f"pip install 'packflow[{package}]'" in str(info.value)
    assert importlib.util.find_spec("packflow.prebuilt") is not None
