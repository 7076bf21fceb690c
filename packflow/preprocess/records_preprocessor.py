"""The ``records`` format: rename, flatten and select, giving new dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packflow.config import InputFormat
from packflow.exceptions import PreprocessorRuntimeError
from packflow.preprocess.compiled import (
    compile_loop,
    compiled_or_none,
    fast_body,
    fast_namespace,
    first_sources,
    indent,
    nested_literal,
    unknown_keys,
)
from packflow.preprocess.plan import Format, Plan, describe_plan, only_numpy_takes_a_dtype
from packflow.preprocess.reference import CleanKeys, reference_record
from packflow.records import Records

__all__ = ["RECORDS", "RecordsPreprocessor"]


class RecordsPreprocessor:
    """The ``records`` preprocessor for one plan."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._clean = CleanKeys(plan)
        self._fast = compiled_or_none(self._compile_fast)

    def __reduce__(self) -> tuple[Any, ...]:
        # The compiled loop cannot be pickled; the plan can, and rebuilds it.
        return (type(self), (self.plan,))

    def __repr__(self) -> str:
        return f"<records preprocessor {describe_plan(self.plan)}>"

    def __call__(self, records: Records) -> Records:
        plan = self.plan
        if self._fast is not None:
            try:
                result, seen = self._fast(records)
            except PreprocessorRuntimeError:
                # A row the reference path refused; an earlier row may hold a key with
                # the delimiter (gathered, not yet checked): the reference names the first.
                seen = None
            if seen is not None and not unknown_keys(self._clean, seen):
                return result  # type: ignore[no-any-return]
        return [reference_record(plan, index, record) for index, record in enumerate(records)]

    def _slow(self, index: int, record: Any) -> dict[str, Any]:
        out = reference_record(self.plan, index, record)
        self._clean.learn(record)
        return out

    def _compile_fast(self) -> Callable[[Records], tuple[Records, set[Any]]] | None:
        plan = self.plan
        # Only selection is compiled: without feature_names every key of every record is
        # visited anyway, and a renamed-away or overlapping feature needs the full rename.
        if not plan.features or plan.overlapping or not all(plan.candidates):
            return None
        lines, expressions = fast_body(plan, first_sources(plan), gather_keys=True)
        if plan.flatten:
            items = ", ".join(
                f"{f!r}: {e}" for f, e in zip(plan.features, expressions, strict=True)
            )
            output = "{" + items + "}"
        else:
            output = nested_literal(plan, expressions)
        source = (
            "def _select(records):\n"
            "    out = []\n"
            "    append = out.append\n"
            "    seen = set()\n"
            "    _see = seen.update\n"
            "    for r in records:\n"
            "        try:\n"
            f"{indent(lines, 3)}"
            f"            append({output})\n"
            # Whatever the fast path trips on, the reference path redoes the row exactly.
            "        except Exception:\n"
            "            append(_slow(len(out), r))\n"
            "    return out, seen\n"
        )
        return compile_loop(source, "_select", fast_namespace(plan, self._clean, self._slow))


RECORDS = Format(
    input_format=InputFormat.RECORDS,
    build=lambda plan, config: RecordsPreprocessor(plan),
    output_type=lambda config: Records,
    rules=(only_numpy_takes_a_dtype,),
    keeps_renamed=True,
)
