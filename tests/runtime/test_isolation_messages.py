"""Error rows count records the caller's way, wherever the failing record fell in the
batch that was attempted (issue 24, item 8)."""

from __future__ import annotations

import json

import pytest

from packflow import Pipeline, Records
from packflow.prebuilt import threshold
from packflow.runtime.isolation import ERROR_KEY, ErrorRow
from packflow.runtime.jsonl import run_lines

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("bad", [0, 3, 7])
def test_a_prebuilt_stages_message_names_the_record_the_row_names(bad: int) -> None:
    built = threshold("score", at=0.5, label_field="label").build()
    records = [{"score": i / 10} for i in range(8)]
    records[bad] = {"scor": 0.9}

    outputs = built(records, on_error="row")

    row = ErrorRow.recognize(outputs[bad])
    assert row is not None
    assert row.index == bad
    assert row.message.startswith(f"record {bad} has no field 'score'")
    assert all(ErrorRow.recognize(o) is None for i, o in enumerate(outputs) if i != bad)


def test_a_failing_line_names_its_record_as_its_error_row_does() -> None:
    built = threshold("score", at=0.5, label_field="label").build()
    lines = [json.dumps({"score": 0.1})] * 3 + [json.dumps({"scor": 1})]
    out: list[str] = []

    run_lines(built, lines, out.append, max_batch_size=4)

    error = json.loads(out[3])[ERROR_KEY]
    assert (error["index"], error["line"]) == (3, 4)
    assert error["message"].startswith("record 3 has no field 'score'")


def test_a_users_exception_with_an_index_attribute_is_left_as_it_is() -> None:
    class Odd(Exception):
        index = 0  # means something else to the user

    pipe = Pipeline("odd")

    @pipe.execute
    def fail(records: Records) -> Records:
        if any(r.get("bad") for r in records):
            raise Odd("record 0 of the lookup table is stale")
        return records

    outputs = pipe.build()([{}, {}, {"bad": True}], on_error="row")

    row = ErrorRow.recognize(outputs[2])
    assert row is not None and row.index == 2
    assert row.message == "record 0 of the lookup table is stale"
