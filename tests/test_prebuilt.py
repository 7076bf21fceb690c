"""Prebuilt pipelines on the real runtimes: onnxruntime and scikit-learn.

Every model is trained here, from scikit-learn's bundled datasets, and every prediction
is compared with the estimator's own.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from packflow import (
    InferenceBackendInitializationError,
    Pipeline,
    PipelineTypeError,
    PreprocessorRuntimeError,
    Records,
    StageError,
)
from packflow.cli import main
from packflow.exceptions import ConfigError, MissingExtraError, ModelFileError, RecordFieldError
from packflow.loaders import InferenceBackendLoader
from packflow.prebuilt import label_map, onnx_model, sklearn_model, threshold

ROOT = Path(__file__).resolve().parent.parent
IRIS_PROJECT = ROOT / "examples" / "iris"
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

#: Bound at module level, as ``pipe`` is in a project's ``inference.py``.
BOUND = onnx_model(IRIS_PROJECT / "model.onnx", feature_names=IRIS_FEATURES)


def as_records(rows: NDArray[Any], names: list[str]) -> list[dict[str, float]]:
    return [dict(zip(names, map(float, row), strict=True)) for row in rows]


def initialization_cause(info: pytest.ExceptionInfo[BaseException]) -> ModelFileError:
    cause = info.value.__cause__
    assert isinstance(cause, ModelFileError), repr(info.value)
    return cause


@pytest.fixture(scope="module")
def iris() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    features, classes = load_iris(return_X_y=True)
    return features, classes


@pytest.fixture(scope="module")
def iris_classifier(iris: tuple[Any, Any]) -> LogisticRegression:
    features, classes = iris
    return LogisticRegression(max_iter=1000, random_state=0).fit(features, classes)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def save_onnx(
    estimator: Any, path: Path, width: int, options: dict[str, Any] | None = None
) -> Path:
    model = to_onnx(
        estimator, initial_types=[("features", FloatTensorType([None, width]))], options=options
    )
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def iris_onnx(models: Path, iris_classifier: LogisticRegression) -> Path:
    return save_onnx(iris_classifier, models / "iris.onnx", 4)


@pytest.fixture(scope="module")
def iris_onnx_tensor(models: Path, iris_classifier: LogisticRegression) -> Path:
    return save_onnx(iris_classifier, models / "iris-tensor.onnx", 4, {"zipmap": False})


@pytest.fixture(scope="module")
def iris_joblib(models: Path, iris_classifier: LogisticRegression) -> Path:
    path = models / "iris.joblib"
    joblib.dump(iris_classifier, path)
    return path


# --------------------------------------------------------------------------- onnx_model


def test_onnx_classifier_gives_sklearns_labels_and_zipmap_probabilities(
    iris: tuple[Any, Any], iris_classifier: LogisticRegression, iris_onnx: Path
) -> None:
    features, _ = iris
    outputs = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)(
        as_records(features, IRIS_FEATURES)
    )
    as_float32 = features.astype(np.float32)
    assert [o["output_label"] for o in outputs] == iris_classifier.predict(as_float32).tolist()
    expected = iris_classifier.predict_proba(as_float32)
    for output, row in zip(outputs, expected, strict=True):
        assert list(output["output_probability"]) == ["0", "1", "2"]
        got = [output["output_probability"][label] for label in ("0", "1", "2")]
        np.testing.assert_allclose(got, row, atol=1e-5)


def test_onnx_classifier_in_tensor_form_gives_probabilities_in_class_order(
    iris: tuple[Any, Any], iris_classifier: LogisticRegression, iris_onnx_tensor: Path
) -> None:
    features, _ = iris
    outputs = onnx_model(iris_onnx_tensor, feature_names=IRIS_FEATURES)(
        as_records(features, IRIS_FEATURES)
    )
    as_float32 = features.astype(np.float32)
    assert [o["label"] for o in outputs] == iris_classifier.predict(as_float32).tolist()
    got = np.array([o["probabilities"] for o in outputs])
    np.testing.assert_allclose(got, iris_classifier.predict_proba(as_float32), atol=1e-5)


def test_onnx_regressor_gives_one_number_per_record(models: Path) -> None:
    features, target = load_diabetes(return_X_y=True)
    names = [f"x{i}" for i in range(features.shape[1])]
    regressor = LinearRegression().fit(features, target)
    path = save_onnx(regressor, models / "diabetes.onnx", len(names))
    outputs = onnx_model(path, feature_names=names)(as_records(features[:50], names))
    expected = regressor.predict(features[:50].astype(np.float32))
    assert all(isinstance(o["variable"], float) for o in outputs)
    np.testing.assert_allclose([o["variable"] for o in outputs], expected, rtol=1e-4)


def test_onnx_model_takes_one_event_and_returns_one_record(
    iris_classifier: LogisticRegression, iris_onnx: Path
) -> None:
    event = dict(zip(IRIS_FEATURES, [6.5, 3.0, 5.2, 2.0], strict=True))
    output = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)(event)
    assert isinstance(output, dict)
    assert output["output_label"] == iris_classifier.predict([[6.5, 3.0, 5.2, 2.0]])[0]


def test_a_classifiers_raw_outputs_are_valid_records(iris_onnx: Path, iris_joblib: Path) -> None:
    event = dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    onnx_output = onnx_model(iris_onnx, feature_names=IRIS_FEATURES).validate(event)
    assert onnx_output["output_label"] == 0
    pipe = sklearn_model(iris_joblib, feature_names=IRIS_FEATURES, method="predict_proba")
    assert pipe.validate(event)["label"] == 0


def test_output_fields_choose_and_rename_the_outputs(iris_onnx: Path) -> None:
    pipe = onnx_model(
        iris_onnx, feature_names=IRIS_FEATURES, output_fields={"output_label": "species"}
    )
    assert pipe(dict.fromkeys(IRIS_FEATURES, 1.0)).keys() == {"species"}


def test_a_feature_count_other_than_the_models_input_width_is_refused_at_build(
    iris_onnx: Path,
) -> None:
    with pytest.raises(InferenceBackendInitializationError) as info:
        onnx_model(iris_onnx, feature_names=IRIS_FEATURES[:3]).build()
    error = initialization_cause(info)
    assert error.path == str(iris_onnx)
    assert "takes 4 features, but feature_names lists 3" in str(error)
    assert str(iris_onnx) in str(info.value)


def test_a_missing_model_file_is_refused_at_build_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    pipe = onnx_model(missing, feature_names=["a"])
    pipe.check()  # definition and check do not touch the file
    with pytest.raises(InferenceBackendInitializationError) as info:
        pipe.build()
    error = initialization_cause(info)
    assert error.path == str(missing)
    assert f"{str(missing)!r} does not exist" in str(error)


def test_a_file_that_is_not_an_onnx_model_is_refused_at_build(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("not a model")
    with pytest.raises(InferenceBackendInitializationError) as info:
        onnx_model(path, feature_names=["a"]).build()
    assert "is not a model onnxruntime can load" in str(initialization_cause(info))


def test_a_model_with_a_non_numeric_input_is_refused_at_build(models: Path) -> None:
    encoder = OneHotEncoder().fit([["red"], ["green"]])
    model = to_onnx(encoder, initial_types=[("colour", StringTensorType([None, 1]))])
    path = models / "colour.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InferenceBackendInitializationError) as info:
        onnx_model(path, feature_names=["colour"]).build()
    assert "input 'colour' (tensor(string)" in str(initialization_cause(info))
    assert "is not numeric" in str(info.value)


def test_every_mismatch_of_a_model_is_reported_at_once(iris_onnx: Path) -> None:
    pipe = onnx_model(
        iris_onnx, feature_names=["a", "b"], output_fields={"output_lable": "species"}
    )
    with pytest.raises(InferenceBackendInitializationError) as info:
        pipe.build()
    problems = initialization_cause(info).problems
    assert len(problems) == 2
    assert "takes 4 features" in problems[0]
    assert "(did you mean 'output_label'?)" in problems[1]


def test_an_unavailable_execution_provider_is_refused_with_the_available_ones(
    iris_onnx: Path,
) -> None:
    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES, providers=["CPUExecutionProvidr"])
    with pytest.raises(InferenceBackendInitializationError) as info:
        pipe.build()
    assert "(did you mean 'CPUExecutionProvider'?)" in str(initialization_cause(info))


def test_a_non_numeric_feature_value_names_the_record_and_the_field(iris_onnx: Path) -> None:
    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)
    good = dict.fromkeys(IRIS_FEATURES, 1.0)
    with pytest.raises(PreprocessorRuntimeError) as info:
        pipe([good, {**good, "petal_width": "wide"}])
    assert (info.value.index, info.value.field) == (1, "petal_width")


def test_session_options_come_from_the_config(iris_onnx: Path) -> None:
    built = onnx_model(iris_onnx, feature_names=IRIS_FEATURES).build(intra_op_threads=1)
    session = built.resources["session"].session
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_each_built_instance_opens_its_own_session(iris_onnx: Path) -> None:
    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)
    first, second = pipe.build(), pipe.build()
    assert first.resources["session"] is not second.resources["session"]


def test_the_override_file_configures_a_prebuilt_part_by_its_name(
    iris_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        json.dumps({"configs": {"names": {"mapping": {"0": "a", "1": "b", "2": "c"}}}})
    )
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(overrides))
    pipe = onnx_model(
        iris_onnx, feature_names=IRIS_FEATURES, output_fields={"output_label": "label"}
    ) >> label_map("label", {0: "x", 1: "y", 2: "z"}, name="names")
    assert pipe(dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))) == {"label": "a"}


def test_an_unbound_prebuilt_pipeline_pickles_by_value_and_runs(iris_onnx: Path) -> None:
    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES) >> threshold(
        "output_probability.0", 0.5, "setosa"
    )
    copy = pickle.loads(pickle.dumps(pipe))
    event = dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    assert copy is not pipe
    assert copy(event) == pipe(event)
    assert copy(event)["setosa"] is True


def test_a_prebuilt_pipeline_bound_in_a_module_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(BOUND)) is BOUND


def test_a_model_with_integer_input_is_fed_integers(models: Path) -> None:
    pixels, digits = load_digits(return_X_y=True)
    pixels = pixels.astype(np.int64)
    names = [f"p{i}" for i in range(pixels.shape[1])]
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(pixels, digits)
    model = to_onnx(tree, initial_types=[("pixels", Int64TensorType([None, len(names)]))])
    path = models / "digits.onnx"
    path.write_bytes(model.SerializeToString())
    records = [dict(zip(names, map(int, row), strict=True)) for row in pixels[:100]]
    with pytest.raises(InferenceBackendInitializationError) as info:
        onnx_model(path, feature_names=names).build()
    assert "set numpy_dtype='int64'" in str(initialization_cause(info))
    outputs = onnx_model(path, feature_names=names, numpy_dtype="int64")(records)
    assert [o["output_label"] for o in outputs] == tree.predict(pixels[:100]).tolist()


def test_with_on_error_row_only_the_bad_record_gets_an_error_row(iris_onnx: Path) -> None:
    good = dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)
    outputs = pipe([good, {**good, "sepal_width": "wide"}, good], on_error="row")
    assert [o.get("output_label") for o in outputs] == [0, None, 0]
    assert outputs[1]["error"]["index"] == 1


def test_a_composition_with_a_prebuilt_model_is_checked_at_the_seam(iris_onnx: Path) -> None:
    wants_array = Pipeline("wants_array")

    @wants_array.execute
    def predict(x: NDArray[np.float64]) -> Records:
        return [{"n": len(row)} for row in x]

    with pytest.raises(PipelineTypeError) as info:
        (onnx_model(iris_onnx, feature_names=IRIS_FEATURES) >> wants_array).check()
    report = str(info.value)
    assert "run_session" in report
    assert "predict" in report


def test_a_prebuilt_pipelines_stages_can_be_replaced(iris_onnx: Path) -> None:
    def count_probabilities(records: Records) -> Records:
        return [{"classes": len(r["output_probability"])} for r in records]

    pipe = onnx_model(iris_onnx, feature_names=IRIS_FEATURES)
    counted = pipe.replace(transform_outputs=count_probabilities)
    assert counted(dict.fromkeys(IRIS_FEATURES, 1.0)) == {"classes": 3}
    assert "output_label" in pipe(dict.fromkeys(IRIS_FEATURES, 1.0))


def test_importing_packflow_prebuilt_imports_no_model_library() -> None:
    code = (
        "import sys, packflow, packflow.prebuilt\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('onnxruntime', 'sklearn', 'joblib', 'skl2onnx')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class _Uninstalled:
    """A meta path finder that makes a package look not installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == self.name or name.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.mark.parametrize(
    ("package", "extra", "make"),
    [
        ("onnxruntime", "onnx", lambda: onnx_model("m.onnx", feature_names=["a"])),
        ("sklearn", "sklearn", lambda: sklearn_model("m.joblib", feature_names=["a"])),
    ],
)
def test_a_missing_model_library_names_the_extra_to_install(
    package: str, extra: str, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Uninstalled(package), *sys.meta_path])
    with pytest.raises(MissingExtraError) as info:
        make()
    assert f"pip install 'packflow[{extra}]'" in str(info.value)
    assert (info.value.package, info.value.extra) == (package, extra)
    assert importlib.util.find_spec("packflow.prebuilt") is not None


# --------------------------------------------------------------------------- sklearn_model


def test_sklearn_predict_gives_the_estimators_labels(iris: tuple[Any, Any], models: Path) -> None:
    features, classes = iris
    names = np.array(["setosa", "versicolor", "virginica"])[classes]
    estimator = LogisticRegression(max_iter=1000).fit(features, names)
    path = models / "iris-names.joblib"
    joblib.dump(estimator, path)
    outputs = sklearn_model(path, feature_names=IRIS_FEATURES)(as_records(features, IRIS_FEATURES))
    assert [o["prediction"] for o in outputs] == estimator.predict(features).tolist()


def test_sklearn_predict_proba_names_probabilities_by_classes(
    iris: tuple[Any, Any], iris_classifier: LogisticRegression, iris_joblib: Path
) -> None:
    features, _ = iris
    pipe = sklearn_model(iris_joblib, feature_names=IRIS_FEATURES, method="predict_proba")
    outputs = pipe(as_records(features, IRIS_FEATURES))
    expected = iris_classifier.predict_proba(features)
    assert [o["label"] for o in outputs] == iris_classifier.predict(features).tolist()
    for output, row in zip(outputs, expected, strict=True):
        assert output["probabilities"] == dict(zip(["0", "1", "2"], row.tolist(), strict=True))


def test_sklearn_decision_function_of_a_binary_classifier_is_one_score(models: Path) -> None:
    features, classes = load_breast_cancer(return_X_y=True)
    names = [f"x{i}" for i in range(features.shape[1])]
    estimator = LogisticRegression(max_iter=5000).fit(features, classes)
    path = models / "cancer.joblib"
    joblib.dump(estimator, path)
    pipe = sklearn_model(path, feature_names=names, method="decision_function")
    outputs = pipe(as_records(features[:40], names))
    assert [o["decision"] for o in outputs] == estimator.decision_function(features[:40]).tolist()


def test_sklearn_decision_function_of_a_multiclass_model_is_a_score_per_class(
    iris: tuple[Any, Any], iris_classifier: LogisticRegression, iris_joblib: Path
) -> None:
    features, _ = iris
    pipe = sklearn_model(iris_joblib, feature_names=IRIS_FEATURES, method="decision_function")
    outputs = pipe(as_records(features[:10], IRIS_FEATURES))
    expected = iris_classifier.decision_function(features[:10]).tolist()
    assert [o["decision"] for o in outputs] == [
        dict(zip(["0", "1", "2"], row, strict=True)) for row in expected
    ]


def test_an_estimator_without_the_method_is_refused_at_build(models: Path) -> None:
    features, target = load_diabetes(return_X_y=True)
    path = models / "regressor.joblib"
    joblib.dump(LinearRegression().fit(features, target), path)
    names = [f"x{i}" for i in range(features.shape[1])]
    with pytest.raises(InferenceBackendInitializationError) as info:
        sklearn_model(path, feature_names=names, method="predict_proba").build()
    error = initialization_cause(info)
    assert "the LinearRegression has no method 'predict_proba'; it has predict" in str(error)
    assert error.path == str(path)


def test_an_estimator_fitted_on_another_number_of_features_is_refused_at_build(
    iris_joblib: Path,
) -> None:
    with pytest.raises(InferenceBackendInitializationError) as info:
        sklearn_model(iris_joblib, feature_names=["a", "b"]).build()
    assert "fitted on 4 features, but feature_names lists 2: a, b" in str(
        initialization_cause(info)
    )


def test_an_estimator_fitted_on_named_columns_in_another_order_is_refused(
    iris: tuple[Any, Any], models: Path
) -> None:
    import pandas as pd

    features, classes = iris
    frame = pd.DataFrame(features, columns=IRIS_FEATURES)
    path = models / "named.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(frame, classes), path)
    with pytest.raises(InferenceBackendInitializationError) as info:
        sklearn_model(path, feature_names=IRIS_FEATURES[::-1]).build()
    assert "in that order" in str(initialization_cause(info))


def test_an_unknown_sklearn_method_is_refused_when_the_pipeline_is_defined() -> None:
    with pytest.raises(ConfigError) as info:
        sklearn_model("m.joblib", feature_names=["a"], method="transform")  # type: ignore[arg-type]
    assert info.value.field == "method"


def test_feature_names_given_as_one_string_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"feature_names=\['petal_width'\]"):
        onnx_model("m.onnx", feature_names="petal_width")


# --------------------------------------------------------------------------- threshold, label_map


def test_threshold_adds_a_flag_and_leaves_the_callers_records_alone() -> None:
    records = [{"score": 0.7}, {"score": 0.5}, {"score": 0.2}]
    assert threshold("score", 0.5, "high")(records) == [
        {"score": 0.7, "high": True},
        {"score": 0.5, "high": True},
        {"score": 0.2, "high": False},
    ]
    assert records == [{"score": 0.7}, {"score": 0.5}, {"score": 0.2}]


@given(st.lists(st.floats(allow_nan=False), min_size=1), st.floats(allow_nan=False))
def test_threshold_flags_exactly_the_values_at_or_above_it(values: list[float], at: float) -> None:
    outputs = threshold("v", at, "flag")([{"v": v} for v in values])
    assert [o["flag"] for o in outputs] == [v >= at for v in values]


def test_threshold_compares_numpy_scalars_and_refuses_text() -> None:
    high = threshold("score", 0.5, "high")
    assert high({"score": np.float32(0.75)})["high"] is True
    with pytest.raises(StageError, match="threshold compares numbers"):
        high({"score": "0.75"})


def test_threshold_on_a_missing_field_names_the_record_and_the_field() -> None:
    with pytest.raises(StageError) as info:
        threshold("score", 0.5, "high")([{"score": 0.1}, {"scor": 0.9}])
    cause = info.value.__cause__
    assert isinstance(cause, RecordFieldError)
    assert (cause.index, cause.field) == (1, "score")
    assert "did you mean 'scor'?" in str(cause)


def test_label_map_names_a_label_and_the_keys_of_a_probability_dict() -> None:
    names = label_map(["label", "probabilities"], {0: "cat", 1: "dog"})
    output = names({"label": 1, "probabilities": {0: 0.25, 1: 0.75}})
    assert output == {"label": "dog", "probabilities": {"cat": 0.25, "dog": 0.75}}


def test_label_map_refuses_a_label_it_does_not_name() -> None:
    with pytest.raises(StageError) as info:
        label_map("label", {0: "cat"})([{"label": 0}, {"label": 7}])
    cause = info.value.__cause__
    assert isinstance(cause, RecordFieldError)
    assert (cause.index, cause.field) == (1, "label")


def test_label_map_refuses_a_list_instead_of_guessing_what_it_holds() -> None:
    with pytest.raises(StageError, match="label_map maps a label, or the keys of a dict"):
        label_map("probabilities", {0: "cat"})({"probabilities": [0.5, 0.5]})


def test_label_map_refuses_two_labels_with_the_same_text() -> None:
    with pytest.raises(ConfigError, match="same text '0'"):
        label_map("label", {0: "cat", "0": "dog"})


# --------------------------------------------------------------------------- examples/iris


def load_train_script() -> Any:
    spec = importlib.util.spec_from_file_location("iris_train", IRIS_PROJECT / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_iris_model_agrees_with_what_train_py_trains(
    iris: tuple[Any, Any], tmp_path: Path
) -> None:
    train = load_train_script()
    estimator = train.train()
    fresh = tmp_path / "model.onnx"
    fresh.write_bytes(train.convert(estimator))
    features, _ = iris
    records = as_records(features, train.FEATURES)
    committed = onnx_model(IRIS_PROJECT / "model.onnx", feature_names=train.FEATURES)(records)
    retrained = onnx_model(fresh, feature_names=train.FEATURES)(records)
    # The committed model and a fresh one agree to the solver's tolerance, not bit for bit:
    # another scikit-learn release may stop LogisticRegression's solver at another step.
    assert [o["output_label"] for o in committed] == [o["output_label"] for o in retrained]
    np.testing.assert_allclose(
        [[o["output_probability"][k] for k in "012"] for o in committed],
        [[o["output_probability"][k] for k in "012"] for o in retrained],
        atol=1e-2,
    )
    # The fresh conversion matches its estimator to float32 precision.
    as_float32 = features.astype(np.float32)
    assert [o["output_label"] for o in retrained] == estimator.predict(as_float32).tolist()
    probabilities = [[o["output_probability"][k] for k in "012"] for o in retrained]
    np.testing.assert_allclose(probabilities, estimator.predict_proba(as_float32), atol=1e-5)


def test_packflow_run_scores_the_iris_sample_with_the_real_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = IRIS_PROJECT / "sample.jsonl"
    assert main(["run", str(IRIS_PROJECT), "--input", str(sample)]) == 0
    outputs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    inputs = [json.loads(line) for line in sample.read_text().splitlines()]
    train = load_train_script()
    rows = np.array([[r[f] for f in train.FEATURES] for r in inputs], dtype=np.float32)
    species = ["setosa", "versicolor", "virginica"]
    expected = [species[c] for c in train.train().predict(rows)]
    assert [o["species"] for o in outputs] == expected
    assert all(sorted(o["probabilities"]) == species for o in outputs)


def test_the_iris_project_loads_from_its_packflow_yaml() -> None:
    built = InferenceBackendLoader.from_project(IRIS_PROJECT)
    output = built(dict(zip(IRIS_FEATURES, [6.5, 3.0, 5.2, 2.0], strict=True)))
    assert output["species"] == "virginica"
