"""Framework overhead per call: a single dict through identity stages.

Run: ``python benchmarks/bench_overhead.py``. Prints, for each case, the median time
per call of the pipeline and of a hand-written baseline doing the same work in the same
process, their difference (the framework's overhead) and their ratio.

Targets (issue 2): at most 1.0 us of overhead for execute-only, 1.5 us with three stages.
Targets (issue 19): the built pipeline at most 5x the hand-written baseline, and a call
through ``Pipeline.__call__`` (its default instance) or a class backend
(``InferenceBackend``) within 0.2 us of a call of the built pipeline.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

from packflow import InferenceBackend, Pipeline

RECORD = {"a": 1, "b": 2.0, "c": "x"}
NUMBER = 200_000
REPEAT = 9


def identity(data: Any) -> Any:
    return data


def execute_only() -> Callable[[Any], Any]:
    pipe = Pipeline("bench-execute")
    pipe.add_execute(identity)
    return pipe.build()


def three_stages() -> Callable[[Any], Any]:
    pipe = Pipeline("bench-three")

    def t_in(data: Any) -> Any:
        return data

    def t_out(data: Any) -> Any:
        return data

    pipe.add_transform_inputs(t_in)
    pipe.add_execute(identity)
    pipe.add_transform_outputs(t_out)
    return pipe.build()


def execute_only_pipeline() -> Callable[[Any], Any]:
    pipe = Pipeline("bench-default")
    pipe.add_execute(identity)
    pipe(RECORD)  # the default instance is built by the first call
    return pipe


class Identity(InferenceBackend):
    def execute(self, inputs: Any) -> Any:
        return inputs


def baseline_one(record: dict[str, Any]) -> dict[str, Any]:
    """What a hand-written service does: wrap, call, unwrap."""
    return identity([record])[0]


def baseline_three(record: dict[str, Any]) -> dict[str, Any]:
    return identity(identity(identity([record])))[0]


def median_us(fn: Callable[[Any], Any]) -> float:
    timer = timeit.Timer(lambda: fn(RECORD))
    runs = timer.repeat(repeat=REPEAT, number=NUMBER)
    return statistics.median(runs) / NUMBER * 1e6


def main() -> int:
    cases = [
        ("execute only", execute_only(), baseline_one, 1.0),
        ("three stages", three_stages(), baseline_three, 1.5),
    ]
    print(f"python {sys.version.split()[0]}, {NUMBER} calls x {REPEAT} repeats, median")
    failed = False
    built_us = 0.0
    for label, pipeline, baseline, target in cases:
        base = median_us(baseline)
        ours = median_us(pipeline)
        overhead = ours - base
        ok = overhead <= target and ours / base <= 5.0
        failed |= not ok
        built_us = built_us or ours
        print(
            f"{label:14s} pipeline {ours:6.3f} us  baseline {base:6.3f} us  "
            f"overhead {overhead:6.3f} us (target <= {target} us)  ratio {ours / base:5.1f}x "
            f"(target <= 5x) {'met' if ok else 'MISSED'}"
        )
    # The front ends against the built pipeline they delegate to, measured again in turn.
    fronts = [("Pipeline.__call__", execute_only_pipeline()), ("InferenceBackend", Identity())]
    built = execute_only()
    for label, front in fronts:
        direct = median_us(built)
        through = median_us(front)
        ok = through - direct <= 0.2
        failed |= not ok
        print(
            f"{label:17s} {through:6.3f} us  built {direct:6.3f} us  "
            f"difference {through - direct:+6.3f} us (target <= 0.2 us, "
            f"{'met' if ok else 'MISSED'})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
