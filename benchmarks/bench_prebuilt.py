"""A prebuilt ``onnx_model`` pipeline against a hand-written onnxruntime loop.

Run: ``python benchmarks/bench_prebuilt.py`` (needs ``pip install '.[onnx]'``). Both
sides run the committed ``examples/iris/model.onnx`` over the same records in the same
process, each with its own session made with the same options (one intra-op thread, so
that the comparison is not a race for the cores): the baseline picks the features out of
each dict into a float32 array, calls ``session.run`` and zips the outputs into dicts
(the ZipMap's class numbers made text, as records' keys are), which is what one would
write by hand. Prints the median time per call of each, their difference and their
ratio.

Targets (issue 10): one event within 5 us of the hand-written call; a batch of 1,000
records within 1.15x.
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


def medians_us(
    ours: Callable[[], Any], theirs: Callable[[], Any], number: int
) -> tuple[float, float]:
    """Median time per call of each, timed in alternation so that both see the same load."""
    timers = timeit.Timer(ours), timeit.Timer(theirs)
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEAT):
        for timer, times in zip(timers, runs, strict=True):
            times.append(timer.timeit(number) / number * 1e6)
    return statistics.median(runs[0]), statistics.median(runs[1])


def main() -> int:
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
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
