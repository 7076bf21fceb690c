"""Prebuilt model pipelines against the raw library calls they wrap.

Run: ``python benchmarks/bench_prebuilt.py [onnx] [xgboost] [lightgbm]`` (all three by
default; needs ``pip install '.[onnx,xgboost,lightgbm]'``).

**onnx** (issue 10). Both
sides run the committed ``examples/iris/model.onnx`` over the same records in the same
process, each with its own session made with the same options (one intra-op thread, so
that the comparison is not a race for the cores): the baseline picks the features out of
each dict into a float32 array, calls ``session.run`` and zips the outputs into dicts
(the ZipMap's class numbers made text, as records' keys are), which is what one would
write by hand. Prints the median time per call of each, their difference and their
ratio.

Targets (issue 10): one event within 5 us of the hand-written call; a batch of 1,000
records within 1.15x.

**xgboost**, **lightgbm** (issue 27). A binary classifier of 100 trees (depth 6 for
XGBoost, 63 leaves for LightGBM) on 8 features, trained here on seeded synthetic data,
single-threaded on both sides. The pipeline (``method="predict"``) is timed against the
raw ``Booster.inplace_predict`` / ``Booster.predict`` on the float64 array built from the
same records beforehand, so the pipeline pays for everything around that call (records
to array, labels to records). Also printed: a hand-written loop that builds the array
from the records, calls the booster and makes the records, as one would write it.
Targets: per-record cost at 10,000 records within 1.2x of the raw call; one event within
10 us of it.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from packflow.prebuilt import onnx_model

MODEL = Path(__file__).resolve().parent.parent / "examples" / "iris" / "model.onnx"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
REPEAT = 15


def make_records(count: int) -> list[dict[str, float]]:
    rows = np.random.default_rng(0).uniform(0.1, 8.0, size=(count, len(FEATURES)))
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]


def handwritten() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [output.name for output in session.get_outputs()]

    def run(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        features = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float32)
        labels, probabilities = session.run(names, {input_name: features})
        # Records have string keys (what validate() asks for); ZipMap's are class numbers.
        keys = [str(key) for key in probabilities[0]]
        return [
            {names[0]: label, names[1]: dict(zip(keys, probability.values(), strict=True))}
            for label, probability in zip(labels.tolist(), probabilities, strict=True)
        ]

    return run


def timings_us(
    ours: Callable[[], Any], theirs: Callable[[], Any], number: int
) -> tuple[list[float], list[float]]:
    """Times per call of each (us), taken in alternation so that both see the same load."""
    timers = timeit.Timer(ours), timeit.Timer(theirs)
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEAT):
        for timer, times in zip(timers, runs, strict=True):
            times.append(timer.timeit(number) / number * 1e6)
    return runs


def medians_us(
    ours: Callable[[], Any], theirs: Callable[[], Any], number: int
) -> tuple[float, float]:
    """Median time per call of each, timed in alternation so that both see the same load."""
    runs = timings_us(ours, theirs, number)
    return statistics.median(runs[0]), statistics.median(runs[1])


def bench_onnx() -> bool:
    pipeline = onnx_model(MODEL, feature_names=FEATURES, intra_op_threads=1).build()
    baseline = handwritten()
    event = make_records(1)[0]
    batch = make_records(1000)
    assert pipeline([event]) == baseline([event])
    assert pipeline(batch) == baseline(batch)

    print(
        f"python {sys.version.split()[0]}, onnxruntime {ort.__version__}, "
        f"{MODEL.name} (iris), median of {REPEAT} repeats"
    )
    failed = False

    ours, base = medians_us(lambda: pipeline(event), lambda: baseline([event])[0], 5_000)
    ok = ours - base <= 5.0
    failed |= not ok
    print(
        f"one event     pipeline {ours:8.2f} us  baseline {base:8.2f} us  "
        f"difference {ours - base:6.2f} us (target <= 5 us, {'met' if ok else 'MISSED'})  "
        f"ratio {ours / base:5.3f}x"
    )

    ours, base = medians_us(lambda: pipeline(batch), lambda: baseline(batch), 100)
    ok = ours / base <= 1.15
    failed |= not ok
    print(
        f"1,000 records pipeline {ours:8.1f} us  baseline {base:8.1f} us  "
        f"difference {ours - base:6.1f} us  ratio {ours / base:5.3f}x "
        f"(target <= 1.15x, {'met' if ok else 'MISSED'})"
    )
    return failed


TREE_FEATURES = [f"x{i}" for i in range(8)]


def tree_data(count: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(count, len(TREE_FEATURES)))
    labels = (features[:, 0] + features[:, 1] * features[:, 2] - features[:, 3] > 0).astype(int)
    return features, labels


def bench_tree(library: str, directory: Path) -> bool:
    from packflow.prebuilt import lightgbm_model, xgboost_model

    features, labels = tree_data(5_000)
    if library == "xgboost":
        import xgboost as xgb

        params = {"objective": "binary:logistic", "max_depth": 6, "nthread": 1, "seed": 0}
        booster = xgb.train(params, xgb.DMatrix(features, label=labels), 100)
        path = directory / "model.json"
        booster.save_model(path)
        pipeline = xgboost_model(path, feature_names=TREE_FEATURES, threads=1).build()
        raw_booster = xgb.Booster()
        raw_booster.load_model(path)
        raw_booster.set_param({"nthread": 1})

        def raw(array: Any) -> Any:
            return raw_booster.inplace_predict(array)

        version = f"xgboost {xgb.__version__}"
    else:
        import lightgbm as lgb

        params = {"objective": "binary", "num_leaves": 63, "num_threads": 1, "verbose": -1}
        lgb.train(params, lgb.Dataset(features, label=labels), 100).save_model(
            directory / "model.txt"
        )
        path = directory / "model.txt"
        pipeline = lightgbm_model(path, feature_names=TREE_FEATURES, threads=1).build()
        raw_booster = lgb.Booster(model_file=str(path))

        def raw(array: Any) -> Any:
            return raw_booster.predict(array, num_threads=1)

        version = f"lightgbm {lgb.__version__}"

    def handwritten(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        array = np.array([[r[f] for f in TREE_FEATURES] for r in records], dtype=np.float64)
        return [{"prediction": int(p)} for p in (raw(array) > 0.5).tolist()]

    rows, _ = tree_data(10_000)
    batch = [dict(zip(TREE_FEATURES, map(float, row), strict=True)) for row in rows]
    array = np.array([[r[f] for f in TREE_FEATURES] for r in batch], dtype=np.float64)
    event = batch[0]
    one = array[:1]
    assert pipeline(batch) == handwritten(batch)
    assert [o["prediction"] for o in pipeline(batch)] == (raw(array) > 0.5).astype(int).tolist()
    print(f"{version}: 100 trees, 8 features, one thread, median of {REPEAT} repeats")
    failed = False

    # Median and best of the repeats: on a shared machine the best is the one least
    # disturbed by other processes, the median what a caller sees.
    runs = timings_us(lambda: pipeline(event), lambda: raw(one), 2_000)
    for label, pick in (("median", statistics.median), ("best", min)):
        ours, base = pick(runs[0]), pick(runs[1])
        ok = ours - base <= 10.0
        failed |= not ok and label == "median"
        print(
            f"  one event ({label:6})   pipeline {ours:9.2f} us  raw call {base:9.2f} us  "
            f"difference {ours - base:6.2f} us (target <= 10 us, {'met' if ok else 'MISSED'})"
        )
    runs = timings_us(lambda: pipeline(batch), lambda: raw(array), 10)
    for label, pick in (("median", statistics.median), ("best", min)):
        ours, base = pick(runs[0]), pick(runs[1])
        ok = ours / base <= 1.2
        failed |= not ok and label == "median"
        print(
            f"  10,000 records ({label:6}) pipeline {ours / 1e4 * 1e3:9.1f} ns/record  raw "
            f"call {base / 1e4 * 1e3:9.1f} ns/record  ratio {ours / base:5.3f}x "
            f"(target <= 1.2x, {'met' if ok else 'MISSED'})"
        )
    # What the pipeline adds, without the booster's own time and its noise: the same
    # pipeline with the booster's predict replaced by a function returning its answers.
    from packflow.prebuilt import TreeModel

    real = pipeline.resources["booster"]
    answers = {1: raw(one), len(batch): raw(array)}
    fake = TreeModel(
        real.booster,
        library=real.library,
        path=real.path,
        method=real.method,
        facts=real.facts,
        predict=lambda features: answers[features.shape[0]],
    )
    stubbed = (xgboost_model if library == "xgboost" else lightgbm_model)(
        path, feature_names=TREE_FEATURES, threads=1
    ).build(resources={"booster": fake})
    event_us = min(timeit.repeat(lambda: stubbed(event), number=5_000, repeat=REPEAT)) / 5_000
    batch_us = min(timeit.repeat(lambda: stubbed(batch), number=10, repeat=REPEAT)) / 10
    print(
        f"  around the booster call (booster stubbed, best of {REPEAT}): one event "
        f"{event_us * 1e6:6.2f} us, 10,000 records {batch_us / 1e4 * 1e9:6.1f} ns/record"
    )
    runs = timings_us(lambda: pipeline(batch), lambda: handwritten(batch), 10)
    for label, pick in (("median", statistics.median), ("best", min)):
        ours, hand = pick(runs[0]), pick(runs[1])
        print(
            f"  10,000 records ({label:6}) pipeline {ours / 1e4 * 1e3:9.1f} ns/record  "
            f"hand-written (records -> array -> booster -> records) "
            f"{hand / 1e4 * 1e3:9.1f} ns/record  ratio {ours / hand:5.3f}x"
        )
    return failed


def main(argv: list[str]) -> int:
    import tempfile

    chosen = argv or ["onnx", "xgboost", "lightgbm"]
    failed = False
    for name in chosen:
        if name == "onnx":
            failed |= bench_onnx()
        else:
            with tempfile.TemporaryDirectory() as directory:
                failed |= bench_tree(name, Path(directory))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
