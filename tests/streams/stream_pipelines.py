"""Pipelines that the stream tests run, in process and as ``packflow run`` subprocesses."""

from __future__ import annotations

import time
from typing import Any

from packflow import Pipeline, Records

#: Doubles ``x``; a record without ``x`` fails (KeyError), one with ``"boom"`` set too.
doubler = Pipeline("doubler")


@doubler.execute
def double(records: Records) -> list[dict[str, Any]]:
    outputs = []
    for record in records:
        if record.get("boom"):
            raise RuntimeError("boom")
        outputs.append({"y": record["x"] * 2})
    return outputs


#: Returns a value JSON cannot hold for ``x == -1``.
unwritable = Pipeline("unwritable")


@unwritable.execute
def nan_for_minus_one(records: Records) -> list[dict[str, Any]]:
    return [{"y": float("nan") if r["x"] == -1 else r["x"]} for r in records]


#: The doubler, taking a few milliseconds a batch (so that two consumers overlap).
slow_doubler = Pipeline("slow_doubler")


@slow_doubler.execute
def double_slowly(records: Records) -> list[dict[str, Any]]:
    time.sleep(0.003)
    return [{"y": record["x"] * 2} for record in records]
