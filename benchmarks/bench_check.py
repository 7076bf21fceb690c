"""Time ``check_graph`` and ``Pipeline.check()`` on graphs with nested generic annotations.

Run: ``python benchmarks/bench_check.py``. The third graph exercises the rules of issue
14 (a generic protocol with a settable attribute, a TypedDict, an old-style recursive
alias), the fourth those of issue 26 (a ``ParamSpec`` solved and carried on, a type
guard, an unpacked tuple); to compare with another version of packflow, run the same
script with that version first on ``PYTHONPATH``. Prints the median time of one check (the
first, cold run is reported separately: it fills the normalization cache), and, for the
whole ``Pipeline.check()`` (config resolution, preprocessor, graph, types), the ratio to
a hand-written baseline that only reads the same functions' annotations with
``typing.get_type_hints``. Target: well under 1 ms per check.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Protocol, TypeVar, Union, get_type_hints

import attrs
import numpy as np
from numpy.typing import NDArray
from typing_extensions import ParamSpec, TypedDict, TypeIs, Unpack

from packflow import Pipeline
from packflow.checker import check_graph
from packflow.config import BackendConfig
from packflow.graph import Initializer, Stage, StageGraph, StageKind, describe_function
from packflow.records import Records

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Features(TypedDict):
    ids: list[int]
    values: dict[str, list[tuple[int, float]]]


class Model:
    pass


def model(config: BackendConfig, logger: logging.Logger) -> Model:
    return Model()


def extract(records: Records) -> list[Features]:
    return []


def normalize(batch: Sequence[T], config: BackendConfig) -> list[T]:
    return list(batch)


def predict(
    batch: Sequence[Mapping[str, Any]], model: Model, logger: logging.Logger
) -> list[dict[str, Optional[NDArray[np.float64]]]]:  # noqa: UP045
    return []


def describe(scores: list[Mapping[str, Optional[np.ndarray]]]) -> list[dict[str, Any]]:  # noqa: UP045
    return [{"n": len(s)} for s in scores]


def to_records(batch: Sequence[Mapping[str, object]]) -> Records:
    return [dict(row) for row in batch]


class Movie(TypedDict):
    name: str
    year: int


class Scorer(Protocol[T_co]):
    threshold: float

    def score(self, row: Movie) -> T_co: ...


class LinearModel:
    threshold: float = 0.5

    def score(self, row: Movie) -> float:
        return 0.0


Json = Union[dict[str, "Json"], list["Json"], str, int, float, None]  # noqa: UP007


def linear(config: BackendConfig) -> LinearModel:
    return LinearModel()


def parse(records: Records) -> list[Movie]:
    return []


def score(batch: Sequence[Movie], model: Scorer[float]) -> list[dict[str, Json]]:
    return []


def summarize(rows: Sequence[Mapping[str, Json]]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


P = ParamSpec("P")
R = TypeVar("R")


def make_scorer(records: Records) -> Callable[[int, str], TypeIs[int]]:
    return lambda n, s: True


def batched(score: Callable[P, R]) -> Callable[P, tuple[R, Unpack[tuple[R, ...]]]]:
    return lambda *args, **kwargs: (score(*args, **kwargs),)


def use_batched(score: Callable[[int, str], Sequence[bool]]) -> Records:
    return []


def build_graph(name: str, *funcs: Any, initializer: Any = model) -> StageGraph:
    """The graph Pipeline.check() builds: the ``model`` initializer and three stages."""
    kinds = (StageKind.TRANSFORM_INPUTS, StageKind.EXECUTE, StageKind.TRANSFORM_OUTPUTS)
    stages = []
    for kind, func in zip(kinds, funcs, strict=True):
        info = describe_function(func)
        stages.append(Stage(kind, info, info.params[0], info.params[1:]))
    init = attrs.evolve(describe_function(initializer), name="model")
    return StageGraph(name, BackendConfig, (Initializer(init, init.params),), tuple(stages))


def measure(graph: StageGraph, repeats: int = 2000) -> tuple[float, float]:
    start = time.perf_counter()
    check_graph(graph, input_type=Records, strict=True)
    cold = time.perf_counter() - start
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        check_graph(graph, input_type=Records, strict=True)
        samples.append(time.perf_counter() - start)
    return cold, statistics.median(samples)


def median_seconds(fn: Callable[[], Any], repeats: int = 2000) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def pipeline_check() -> None:
    pipe = Pipeline("nested generics", strict=True)
    pipe.add_initializer(model)
    pipe.add_transform_inputs(extract)
    pipe.add_execute(predict)
    pipe.add_transform_outputs(describe)
    funcs = (model, extract, predict, describe)

    def baseline() -> None:
        for func in funcs:
            get_type_hints(func, include_extras=True)

    ours = median_seconds(pipe.check)
    base = median_seconds(baseline)
    print(
        f"Pipeline.check(), same graph: median {ours * 1e6:.0f} µs; baseline "
        f"(get_type_hints of the 4 functions) {base * 1e6:.0f} µs; ratio {ours / base:.1f}x"
    )


def main() -> None:
    graphs = (
        build_graph("nested generics", extract, predict, describe),
        build_graph("TypeVar carried", extract, normalize, to_records),
        build_graph("protocol, TypedDict, alias", parse, score, summarize, initializer=linear),
        build_graph("ParamSpec, TypeIs, Unpack", make_scorer, batched, use_batched),
    )
    for graph in graphs:
        report = check_graph(graph, input_type=Records, strict=True)
        cold, median = measure(graph)
        print(
            f"{graph.name}: {len(graph.initializers)} initializer + {len(graph.stages)} stages, "
            f"{len(report.edges)} edges, {len(report.problems)} problems, "
            f"{len(report.notes)} notes; "
            f"cold {cold * 1e3:.2f} ms, median {median * 1e6:.0f} µs per check"
        )
    pipeline_check()


if __name__ == "__main__":
    main()
