"""packflow.ray on a real local Ray: 2 CPUs, a small object store, no dashboard.

One Ray instance serves the whole module (starting one takes seconds); every test that
runs a job has a timeout, since some Ray settings retry forever. The pipelines live in
``ray_pipelines``, which the workers import as they would an installed package.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import ray_pipelines
from ray_pipelines import counting, declared, liner, scaled_then_offset, scorer, without_pid

import packflow.ray as pray
from packflow import Pipeline, Records
from packflow.exceptions import MissingExtraError
from packflow.loaders import LocalLoader

RAY_TIMEOUT = pytest.mark.timeout(120)  # generous: a shared CI machine starts Ray slowly


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        # The workers (and packflow's check of what they can import) see this folder as
        # they would see an installed package, so ray_pipelines travels by reference.
        here = str(Path(ray_pipelines.__file__).parent)
        paths = [here, *filter(None, [os.environ.get("PYTHONPATH")])]
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        import ray

        if ray.is_initialized():  # left running by a failed docs example: start afresh
            ray.shutdown()
        ray.init(
            num_cpus=2,
            object_store_memory=100 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
        )
        yield ray
        ray.shutdown()


def records(n: int, *, bad: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"x": i, **({"bad": True} if i in bad else {})} for i in range(n)]


@RAY_TIMEOUT
def test_each_actor_builds_the_pipeline_once_with_the_config_overrides(
    ray_session: Any, tmp_path: Path
) -> None:
    count_file = tmp_path / "builds.txt"
    ds = pray.from_records(records(2000), block_size=100)
    config = {"count_file": str(count_file), "factor": 3}

    out = list(
        pray.iter_records(
            pray.map_batches(ds, counting, config=config, batch_size=100, output="pickled")
        )
    )

    builds = count_file.read_text().split()
    assert len(builds) == 2  # 20 batches, 2 actors: one build each
    assert str(os.getpid()) not in builds
    assert {row["pid"] for row in out} == {int(pid) for pid in builds}
    assert [row["y"] for row in out] == [3 * i for i in range(2000)]


@RAY_TIMEOUT
def test_output_keeps_the_input_order_when_batches_take_uneven_time(ray_session: Any) -> None:
    # Every other batch sleeps, so the batches after it finish first.
    config = {"slow_every": 40, "slow_seconds": 0.25}
    ds = pray.from_records(records(400), block_size=40)

    out = pray.iter_records(
        pray.map_batches(ds, counting, config=config, batch_size=40, output="pickled")
    )

    assert [row["x"] for row in out] == list(range(400))


@RAY_TIMEOUT
def test_failing_records_become_error_rows_in_place_and_nothing_else_is_lost(
    ray_session: Any,
) -> None:
    data = records(600, bad=(7, 450))
    ds = pray.from_records(data, block_size=100)

    out = pray.map_batches(ds, counting, on_error="row", batch_size=100, output="pickled")
    out = out.materialize()
    batches = list(out.iter_batches(batch_size=None, batch_format="pyarrow"))
    got = list(pray.iter_records(out))

    # The error column is in every batch, also in those without a failure.
    assert all(pray.ERROR_COLUMN in batch.column_names for batch in batches)
    assert got[7] == {
        "error": {
            "type": "ValueError",
            "message": "bad record x=7",
            "stage": "execute",
            "index": 7,
        }
    }
    assert got[450]["error"]["index"] == 450
    assert without_pid(got) == without_pid(counting.build()(data, on_error="row"))


@RAY_TIMEOUT
def test_a_failing_record_fails_the_job_with_on_error_raise(ray_session: Any) -> None:
    ds = pray.from_records(records(50, bad=(3,)))

    with pytest.raises(Exception, match="bad record x=3"):
        list(pray.iter_records(pray.map_batches(ds, counting, concurrency=1, output="pickled")))


@RAY_TIMEOUT
def test_a_composition_with_a_class_backend_runs_with_per_part_config(ray_session: Any) -> None:
    ds = pray.from_records(records(300), block_size=100)

    config = {"counting": {"factor": 5}}
    out = pray.map_batches(ds, scaled_then_offset, config=config, output="pickled")

    assert [row["y"] for row in pray.iter_records(out)] == [5 * i + 1000 for i in range(300)]


def plain_rows(n: int) -> list[dict[str, Any]]:
    return [{"x": i} for i in range(n)]


@RAY_TIMEOUT
def test_outputs_are_columns_and_take_all_equals_the_in_process_call(ray_session: Any) -> None:
    rows = plain_rows(200)
    ds = ray_session.data.from_items(rows, override_num_blocks=4)

    out = pray.map_batches(ds, scorer, batch_size=50)

    assert out.take_all() == scorer.build()(rows)
    types = dict(zip(out.schema().names, out.schema().types, strict=True))
    assert str(types["detail"]) == "struct<rank: int64, tag: string>"
    assert str(types["scores"]) == "list<item: double>"


@RAY_TIMEOUT
def test_filter_and_write_parquet_work_on_the_output(ray_session: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = plain_rows(100)
    out = pray.map_batches(ray_session.data.from_items(rows), declared, batch_size=25)

    high = out.filter(lambda row: row["label"] == "high")
    out.write_parquet(str(tmp_path / "scored"))

    assert high.count() == 89
    written = pq.read_table(tmp_path / "scored").to_pylist()
    assert sorted(written, key=lambda row: row["x"]) == declared.build()(rows)


@RAY_TIMEOUT
def test_with_on_error_row_every_block_has_the_error_column_null_on_good_rows(
    ray_session: Any,
) -> None:
    data = records(200, bad=(7,))
    ds = pray.from_records(data, block_size=50)

    out = pray.map_batches(ds, scorer, on_error="row", batch_size=50).materialize()

    blocks = list(out.iter_batches(batch_size=None, batch_format="pyarrow"))
    assert all(block.column_names[-1] == pray.ERROR_COLUMN for block in blocks)
    rows = out.take_all()
    assert rows[0]["error"] is None
    assert rows[7]["x"] is None
    assert rows[7]["error"]["index"] == 7
    assert rows[7]["error"]["message"] == "bad record x=7"
    assert list(pray.iter_records(out)) == scorer.build()(data, on_error="row")


MIXED_LINES = [
    *(json.dumps({"x": i}) for i in range(5)),
    "",  # a blank line stays a blank line
    '{"x": ',  # not JSON
    json.dumps({"x": 5, "bad": True}),  # fails in the pipeline
    "[1, 2]",  # not an object
    json.dumps({"x": 7}),  # an output that is not JSON (NaN)
    *(json.dumps({"x": i}) for i in range(8, 300)),
    "",
]


def mixed_input(folder: Path) -> Path:
    source = folder / "in.jsonl"
    source.write_text("\n".join(MIXED_LINES) + "\n", encoding="utf-8")
    return source


@RAY_TIMEOUT
def test_run_jsonl_writes_what_packflow_run_writes_in_process(
    ray_session: Any, tmp_path: Path
) -> None:
    from packflow.runtime.jsonl import run_lines

    source = mixed_input(tmp_path)
    local: list[str] = []
    with open(source, "rb") as lines:
        expected = run_lines(ray_pipelines.liner.build(), lines, local.append)
    sink = tmp_path / "out.jsonl"

    with open(sink, "w", encoding="utf-8") as handle:
        summary = pray.run_jsonl(ray_pipelines.liner, source, handle, batch_size=64)

    assert sink.read_text(encoding="utf-8").splitlines() == local
    assert (summary.read, summary.written, summary.failed) == (
        expected.read,
        expected.written,
        expected.failed,
    )
    assert summary.failed == 4
    assert [f.number for f in summary.first_failures] == [7, 8, 9, 10]


@RAY_TIMEOUT
def test_packflow_run_on_ray_writes_what_it_writes_in_process(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from packflow.cli import main

    source = mixed_input(tmp_path)
    spec = "ray_pipelines:liner"
    assert main(["run", spec, "--input", str(source), "-o", str(tmp_path / "a.jsonl")]) == 1
    local_err = capsys.readouterr().err
    ray_args = ["--engine", "ray", "--concurrency", "2", "-o", str(tmp_path / "b.jsonl")]
    assert main(["run", spec, "--input", str(source), *ray_args]) == 1
    ray_err = capsys.readouterr().err
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert [line for line in local_err.splitlines() if line.startswith("line ")] == [
        line for line in ray_err.splitlines() if line.startswith("line ")
    ]
    assert "4 of 303 lines failed (lines 7, 8, 9, 10)" in ray_err


@RAY_TIMEOUT
def test_a_pipeline_made_in_a_function_travels_by_value_with_its_annotations(
    ray_session: Any,
) -> None:
    # Bound in no module, so the workers get its definition; the annotations are strings
    # (from __future__ import annotations) naming globals the stage's code never uses.
    local = Pipeline("local")

    @local.execute
    def tag(records: Records) -> Records:
        return [{**r, "tag": "seen"} for r in records]

    out = pray.iter_records(pray.map_batches(pray.from_records(records(10)), local))

    assert [row["tag"] for row in out] == ["seen"] * 10


@RAY_TIMEOUT
def test_a_project_file_loaded_from_its_folder_travels_by_value(
    ray_session: Any, isolated_cwd: Path
) -> None:
    # As `packflow run --engine ray` on a project: LocalLoader put the folder on the
    # driver's sys.path only, so the workers could not import `inference` or `helpers`.
    (isolated_cwd / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (isolated_cwd / "inference.py").write_text(
        "from __future__ import annotations\n"
        "import helpers\n"
        "from packflow import Pipeline, Records\n"
        "pipe = Pipeline('project')\n"
        "@pipe.execute\n"
        "def run(records: Records) -> Records:\n"
        "    return [{'y': helpers.double(r['x'])} for r in records]\n"
    )
    pipe = LocalLoader("inference:pipe", base_dir=isolated_cwd).resolve()

    out = pray.iter_records(pray.map_batches(pray.from_records(records(20)), pipe))

    assert [row["y"] for row in out] == [2 * i for i in range(20)]


def test_a_pipeline_in_an_importable_module_travels_by_reference(ray_session: Any) -> None:
    payload = pray._payload(counting, {})

    # A module and a name, then the resolved config; not the definition.
    assert b"import_definition" in payload and b"ray_pipelines" in payload
    assert b"scale" not in payload and b"process" not in payload


def test_an_unpicklable_pipeline_is_refused_before_the_job_naming_what(ray_session: Any) -> None:
    lock = threading.Lock()
    local = Pipeline("locked")  # bound in no module: pickled by value

    @local.execute
    def guarded(records: Records) -> Records:
        with lock:
            return records

    ds = pray.from_records(records(3))
    with pytest.raises(pray.UnpicklablePipelineError, match="closure variable `lock`") as caught:
        pray.map_batches(ds, local)

    assert "stage execute" in caught.value.problems[0]
    assert "guarded" in caught.value.problems[0]


def test_an_unpicklable_config_override_is_refused_naming_the_key(ray_session: Any) -> None:
    ds = pray.from_records(records(3))

    with pytest.raises(pray.UnpicklablePipelineError, match="config override 'extra'"):
        pray.map_batches(ds, counting, config={"extra": threading.Lock()})


@RAY_TIMEOUT
def test_the_override_file_is_read_by_the_driver_not_by_the_actors(
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set after the cluster started, so the actors' environment lacks it, as on a
    # cluster reached through RAY_ADDRESS.
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"configs": {"factor": 7}}), encoding="utf-8")
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(override))
    ds = pray.from_records(records(20))

    out = pray.iter_records(pray.map_batches(ds, counting, concurrency=1, output="pickled"))

    assert [row["y"] for row in out] == [7 * i for i in range(20)]


def test_a_missing_override_file_is_reported_before_the_job(
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packflow.exceptions import ConfigError

    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(tmp_path / "missing.json"))

    with pytest.raises(ConfigError, match=r"missing\.json"):
        pray.map_batches(pray.from_records(records(3)), counting)


def test_a_config_error_under_packflow_run_on_ray_is_one_line(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from packflow.cli import main

    source = mixed_input(tmp_path)
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"configs": {"factr": 3}}), encoding="utf-8")
    args = ["run", "ray_pipelines:counting", "--input", str(source)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BACKEND_CONFIG_FILE_PATH", str(override))
        local_code = main([*args, "-o", str(tmp_path / "local.jsonl")])
        local_err = capsys.readouterr().err
        code = main([*args, "--engine", "ray", "-o", str(tmp_path / "out.jsonl")])

    # What the in-process run reports, and nothing more: no actor died, no traceback.
    err = capsys.readouterr().err
    assert (code, err) == (local_code, local_err)
    assert code == 1
    assert err.startswith("packflow run: error: invalid config for CountingConfig")
    assert "factr" in err and "did you mean" in err


def test_a_built_instance_is_refused(ray_session: Any) -> None:
    ds = pray.from_records(records(3))

    with pytest.raises(TypeError, match="needs the unbuilt pipeline"):
        pray.map_batches(ds, counting.build())


def test_a_context_that_drops_blocks_is_refused(ray_session: Any) -> None:
    ds = pray.from_records(records(3))
    ds.context.max_errored_blocks = 1
    try:
        with pytest.raises(ValueError, match="max_errored_blocks=1 would let Ray drop"):
            pray.map_batches(ds, counting)
    finally:
        ds.context.max_errored_blocks = 0


def test_a_list_is_refused_pointing_at_from_records(ray_session: Any) -> None:
    with pytest.raises(TypeError, match=r"packflow.ray.from_records\(records\)"):
        pray.map_batches(records(3), counting)  # type: ignore[arg-type]


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "ray", None)

    with pytest.raises(MissingExtraError, match=r"pip install 'packflow\[ray\]'"):
        pray.map_batches(None, counting)  # type: ignore[arg-type]


# The actor's batch conversions, run in this process: no Ray job needed.


def actor(pipeline: Any, on_error: str = "row", output: str = "pickled") -> pray.PipelineActor:
    return pray.PipelineActor(pray._payload(pipeline, {}), on_error, output)


def batch(data: list[Any], positions: list[int]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            pray.INDEX_COLUMN: pa.array(positions, pa.int64()),
            pray.RECORD_COLUMN: pa.array([pray._dumps_record(r) for r in data], pa.binary()),
        }
    )


def test_error_rows_report_positions_in_the_input_when_a_batch_is_not_a_range() -> None:
    # As after ds.filter(...): the batch holds records 3, 9 and 12 of the input.
    table = batch([{"x": 3}, {"x": 9, "bad": True}, "not a dict"], [3, 9, 12])

    out = actor(counting)(table)

    errors = out.column(pray.ERROR_COLUMN).to_pylist()
    assert out.column(pray.INDEX_COLUMN).to_pylist() == [3, 9, 12]
    assert errors[0] is None
    assert errors[1]["index"] == 9
    assert errors[1]["message"] == "bad record x=9"
    assert errors[2]["index"] == 12
    assert errors[2]["stage"] == "input"
    assert "record 12" in errors[2]["message"]


def test_the_engine_actor_hands_bad_lines_back_in_place_and_isolates_failures() -> None:
    from packflow.runtime.jsonl import BadLine

    bad_line = BadLine(3, "not valid JSON: Expecting value (column 1)", 1)
    table = batch([{"x": 0}, bad_line, {"x": 2, "bad": True}, {"x": 3}], [10, 11, 12, 13])

    out = actor(liner, output="events")(table)

    got = [pray.pickle.loads(p) for p in out.column(pray.RECORD_COLUMN).to_pylist()]
    assert out.column_names == [pray.INDEX_COLUMN, pray.RECORD_COLUMN]
    assert got[0] == {"y": 0}
    assert got[1] == bad_line
    assert got[2]["error"]["index"] == 12
    assert got[2]["error"]["message"] == "bad record x=2"
    assert got[3] == {"y": 6}


def columns_actor(pipeline: Any, on_error: str = "row", declared: bool = False) -> Any:
    payload = pray._payload(pipeline, {})
    columns = pray._declared_schema(pipeline, {}) if declared else None
    return pray.PipelineActor(payload, on_error, "columns", columns=columns)


def test_a_key_outside_the_first_batchs_columns_is_an_error_row_naming_record_and_key() -> None:
    worker = columns_actor(scorer)
    worker(batch([{"x": 1}, {"x": 2}], [1, 2]))

    out = worker(batch([{"x": 3}, {"x": 4, "extra": True}], [3, 4]))

    errors = out.column(pray.ERROR_COLUMN).to_pylist()
    assert out.column_names == ["x", "label", "scores", "detail", pray.ERROR_COLUMN]
    assert errors[0] is None
    assert errors[1]["stage"] == "output" and errors[1]["index"] == 4
    assert "record 4, key 'surprise', is not one of the output columns" in errors[1]["message"]
    assert out.column("x").to_pylist() == [3, None]


def test_the_declared_output_type_fixes_the_columns_from_the_first_batch() -> None:
    worker = columns_actor(declared, declared=True)

    out = worker(batch([{"x": 1, "extra": True}, {"x": 2}], [0, 1]))

    assert out.column_names == ["x", "label", "scores", "detail", pray.ERROR_COLUMN]
    message = out.column(pray.ERROR_COLUMN).to_pylist()[0]["message"]
    assert "key 'surprise'" in message and "declared by the last stage's return type" in message


def test_a_value_arrow_cannot_put_in_its_column_is_an_error_row_naming_the_key() -> None:
    worker = columns_actor(declared, declared=True)

    out = worker(batch([{"x": 1}, {"x": 2, "wrong": True}, {"x": 3}], [0, 1, 2]))

    errors = out.column(pray.ERROR_COLUMN).to_pylist()
    assert [e is None for e in errors] == [True, False, True]
    assert "record 1, key 'label', [1, 2] does not fit" in errors[1]["message"]
    assert out.column("label").to_pylist() == ["low", None, "low"]


def test_with_on_error_raise_a_key_outside_the_columns_fails_naming_record_and_key() -> None:
    worker = columns_actor(scorer, on_error="raise")
    worker(batch([{"x": 1}], [0]))

    with pytest.raises(ValueError, match="record 9, key 'surprise'"):
        worker(batch([{"x": 9, "extra": True}], [9]))


@attrs.frozen
class Out:
    name: str
    score: float | None
    tags: list[str]


def test_an_attrs_return_type_declares_the_columns_and_an_undeclarable_one_does_not() -> None:
    attrs_typed = Pipeline("attrs_typed")

    @attrs_typed.execute
    def make(records: Records) -> list[Out]:
        return [Out("a", None, []) for _ in records]

    loose = Pipeline("loose")

    @loose.execute
    def anything(records: Records) -> list[dict[str, Any]]:
        return records

    schema = pray._declared_schema(attrs_typed, {})

    assert [(f.name, str(f.type)) for f in schema] == [
        ("name", "string"),
        ("score", "double"),
        ("tags", "list<item: string>"),
    ]
    assert pray._declared_schema(loose, {}) is None


def test_a_column_null_in_the_first_batch_says_to_declare_the_output_type() -> None:
    maybe = Pipeline("maybe")

    @maybe.execute
    def note(records: Records) -> Records:
        return [{"x": r["x"], "note": r.get("note")} for r in records]

    worker = columns_actor(maybe)
    worker(batch([{"x": 0}], [0]))

    out = worker(batch([{"x": 1, "note": "hello"}], [1]))

    message = out.column(pray.ERROR_COLUMN).to_pylist()[0]["message"]
    assert "record 1, key 'note'" in message
    assert "held only nulls in the first batch" in message
