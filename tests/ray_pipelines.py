"""Pipelines for tests/test_ray.py, in a module that Ray workers can import.

Ray workers import what the driver pickled by reference; they cannot see modules that
pytest put on ``sys.path``, so the test session adds this folder to the workers'
``PYTHONPATH`` (``runtime_env``), as an installed package would be.
"""

from __future__ import annotations

import os
import time
from typing import Any, TypedDict

import attrs

from packflow import BackendConfig, InferenceBackend, Pipeline, Records


@attrs.frozen(kw_only=True)
class CountingConfig(BackendConfig):
    #: Each build appends its process id here.
    count_file: str = ""
    factor: int = 2
    #: Seconds the batches that start at an even multiple of ``slow_every`` sleep.
    slow_every: int = 0
    slow_seconds: float = 0.0
    #: Anything: for a value that cannot be pickled.
    extra: Any = None


counting = Pipeline("counting", config_model=CountingConfig)


@counting.initialize
def process(config: CountingConfig) -> int:
    if config.count_file:
        with open(config.count_file, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    return os.getpid()


@counting.execute
def scale(records: Records, config: CountingConfig, process: int) -> Records:
    first = records[0]["x"] if records else 0
    if config.slow_every and (first // config.slow_every) % 2 == 0:
        time.sleep(config.slow_seconds)
    out = []
    for record in records:
        if record.get("bad"):
            raise ValueError(f"bad record x={record['x']}")
        out.append(
            {
                "x": record["x"],
                "y": config.factor * record["x"],
                "nested": {"list": [record["x"], {"deep": (1, 2)}], "none": None},
                "pid": process,
            }
        )
    return out


class Offset(InferenceBackend):
    """A class backend: adds ``offset`` (set by ``initialize``) to ``y``."""

    def initialize(self) -> None:
        self.offset = 1000

    def execute(self, inputs: Records) -> Records:
        return [{**record, "y": record["y"] + self.offset} for record in inputs]


scaled_then_offset = counting >> Offset


def without_pid(rows: list[Any]) -> list[Any]:
    """``rows`` without the process id, which differs between workers and the driver."""
    return [{k: v for k, v in row.items() if k != "pid"} for row in rows]


#: Doubles ``x``; a record with ``bad`` fails, ``x == 7`` gives an output that is not JSON.
liner = Pipeline("liner")


@liner.execute
def double(records: Records) -> Records:
    for record in records:
        if record.get("bad"):
            raise ValueError(f"bad record x={record['x']}")
    return [{"y": float("nan") if r["x"] == 7 else 2 * r["x"]} for r in records]


class Detail(TypedDict):
    rank: int
    tag: str | None


class Scored(TypedDict):
    x: int
    label: str
    scores: list[float]
    detail: Detail


def scored(records: Records) -> Records:
    """JSON-like outputs with a struct and a list; ``bad`` fails, ``extra`` adds a key,
    ``wrong`` puts a list where a string belongs."""
    out = []
    for record in records:
        if record.get("bad"):
            raise ValueError(f"bad record x={record['x']}")
        row: dict[str, Any] = {
            "x": record["x"],
            "label": "high" if record["x"] > 10 else "low",
            "scores": [record["x"] / 2, 1.0],
            "detail": {"rank": record["x"] % 3, "tag": "odd" if record["x"] % 2 else "even"},
        }
        if record.get("extra"):
            row["surprise"] = 1
        if record.get("wrong"):
            row["label"] = [1, 2]
        out.append(row)
    return out


#: Outputs as plain records: the columns are taken from the first batch.
scorer = Pipeline("scorer")
scorer.add_execute(scored)

#: The same outputs, declared: the columns come from ``Scored``.
declared = Pipeline("declared")


@declared.execute
def typed(records: Records) -> list[Scored]:
    return scored(records)  # type: ignore[return-value]
