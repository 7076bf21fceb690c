"""Pipelines that the stream tests run, in process and as ``packflow run`` subprocesses."""

from __future__ import annotations

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
