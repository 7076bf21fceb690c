"""Framework overhead per call: a single dict through identity stages.

Run: ``python benchmarks/bench_overhead.py``. Prints, for each case, the median time
per call of the pipeline and of a hand-written baseline doing the same work in the same
process, their difference (the framework's overhead) and their ratio.

Targets (issue 2): at most 1.0 us of overhead for execute-only, 1.5 us with three stages.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

from packflow import Pipeline

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
    for label, pipeline, baseline, target in cases:
        base = median_us(baseline)
        ours = median_us(pipeline)
        overhead = ours - base
        ok = overhead <= target
        failed |= not ok
        print(
            f"{label:14s} pipeline {ours:6.3f} us  baseline {base:6.3f} us  "
            f"overhead {overhead:6.3f} us (target <= {target} us, "
            f"{'met' if ok else 'MISSED'})  ratio {ours / base:5.1f}x"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
