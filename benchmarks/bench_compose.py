"""What composing costs: ``a >> b`` against ``a`` and ``b`` called one after the other.

Run: ``python benchmarks/bench_compose.py``. Two identity pipelines ``a`` and ``b`` are
built alone and composed; for a single event and for a batch of 1,000 records the script
prints the median time per call of the composition, of ``a`` and ``b`` alone, and the
composition's cost over the sum of the two. It then compares a pipeline built with a
fake resource (``build(resources=...)``) with the same pipeline built normally.

The cases are timed in alternation (one repeat of each in turn), so that a slow spell of
the machine falls on all of them alike; the figures are medians over the repeats.

Targets (issue 9): the composition costs at most the sum of its parts plus 0.3 us per
call, single event and batch; ``build(resources=...)`` adds nothing per call.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

from packflow import Pipeline, Records

REPEAT = 21
SEAM_TARGET_US = 0.3
# "Nothing": within the noise of two measurements of one thing on a busy machine (two
# instances built the same way differ by this much); the call plans are compared too.
FAKE_TARGET_US = 0.1
FAKE_TARGET_SHARE = 0.05


def identity_pipeline(name: str) -> Pipeline:
    pipe = Pipeline(name)

    @pipe.execute
    def identity(records: Records) -> Records:
        return records

    return pipe


class Model:
    def __call__(self, records: Records) -> Records:
        return records


def model_pipeline() -> Pipeline:
    pipe = Pipeline("with-model")

    @pipe.initialize
    def model(config: Any) -> Model:
        return Model()

    @pipe.execute
    def predict(records: Records, model: Model) -> Records:
        return model(records)

    return pipe


def by_hand(records: Records) -> Records:
    """The hand-written equivalent of a >> b: two identity calls."""
    return identity_function(identity_function(records))


def identity_function(records: Records) -> Records:
    return records


def alternate(
    cases: dict[str, Callable[[], Any]], number: int, repeat: int = REPEAT
) -> dict[str, float]:
    """Median microseconds per call of each case, timed in alternation."""
    timers = {label: timeit.Timer(fn) for label, fn in cases.items()}
    runs: dict[str, list[float]] = {label: [] for label in cases}
    for timer in timers.values():
        timer.timeit(number=max(1, number // 10))  # warm up
    for _ in range(repeat):
        for label, timer in timers.items():
            runs[label].append(timer.timeit(number=number) / number * 1e6)
    return {label: statistics.median(values) for label, values in runs.items()}


def seam_cases(data: Any, number: int, label: str) -> tuple[float, bool]:
    a, b = identity_pipeline("a"), identity_pipeline("b")
    built_a, built_b, composed = a.build(), b.build(), (a >> b).build()
    single = isinstance(data, dict)
    medians = alternate(
        {
            "a": lambda: built_a(data),
            "b": lambda: built_b(data),
            "a >> b": lambda: composed(data),
            "by hand": (lambda: by_hand([data])[0]) if single else (lambda: by_hand(data)),
        },
        number,
    )
    parts = medians["a"] + medians["b"]
    extra = medians["a >> b"] - parts
    ok = extra <= SEAM_TARGET_US
    print(
        f"{label:13s} a >> b {medians['a >> b']:8.3f} us   a {medians['a']:8.3f} us   "
        f"b {medians['b']:8.3f} us   a + b {parts:8.3f} us   "
        f"seam {extra:+7.3f} us (target <= +{SEAM_TARGET_US} us) {'ok' if ok else 'OVER'}   "
        f"hand-written a(b(x)) {medians['by hand']:7.3f} us"
    )
    return extra, ok


def fake_case(data: Any, number: int, label: str) -> tuple[float, bool]:
    pipe = model_pipeline()
    real, again = pipe.build(), pipe.build()
    faked = pipe.build(resources={"model": Model()})
    medians = alternate(
        {
            "real": lambda: real(data),
            "fake": lambda: faked(data),
            "again": lambda: again(data),
        },
        number,
    )
    extra = medians["fake"] - medians["real"]
    # Two instances built the same way: how far apart equal work is measured here.
    control = medians["again"] - medians["real"]
    same_plan = _steps(real) == _steps(faked)
    allowed = max(FAKE_TARGET_US, FAKE_TARGET_SHARE * medians["real"], abs(control))
    ok = same_plan and extra <= allowed
    print(
        f"{label:13s} built with a fake {medians['fake']:8.3f} us   built normally "
        f"{medians['real']:8.3f} us   difference {extra:+7.3f} us   (two normal builds "
        f"differ by {control:+7.3f} us)   same call plan: {'yes' if same_plan else 'NO'} "
        f"{'ok' if ok else 'OVER'}"
    )
    return extra, ok


def _steps(built: Any) -> list[tuple[str, Any]]:
    """The steps a call runs (label and function), the resource values left out."""
    plan = getattr(built, "_plan", None)
    if plan is None:  # another run-time layout: compare what the instance says it runs
        return [(label, None) for label in built.step_labels]
    steps = []
    for segment_plan, _segment in plan:
        for label, step, _stage in segment_plan:
            steps.append((label, getattr(step, "func", step)))
    return steps


def main() -> int:
    record = {"a": 1, "b": 2.0, "c": "x"}
    batch = [dict(record, i=i) for i in range(1000)]
    print(f"python {sys.version.split()[0]}, {REPEAT} repeats in alternation, medians")
    results = [
        seam_cases(record, 100_000, "single event"),
        seam_cases(batch, 5_000, "batch of 1000"),
        fake_case(record, 100_000, "single event"),
        fake_case(batch, 5_000, "batch of 1000"),
    ]
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
