"""packflow serve, in process: every endpoint and status code through the test client."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, Pipeline, Records
from packflow.exceptions import InferenceBackendLoadError
from packflow.runtime.jsonl import run_lines
from packflow.serve import ServeOptions, create_app
from packflow.testing import serve_client

NDJSON = {"content-type": "application/x-ndjson"}


def doubler(name: str = "doubler", calls: list[int] | None = None) -> Pipeline:
    """y = 2x; a record with x == "bad" fails in execute."""
    pipe = Pipeline(name)

    @pipe.execute
    def double(records: Records) -> Records:
        if calls is not None:
            calls.append(len(records))
        out = []
        for record in records:
            if record.get("x") == "bad":
                raise ValueError("x is bad")
            out.append({"y": record["x"] * 2})
        return out

    return pipe


def gated(gate: threading.Event, calls: list[list[Any]]) -> Pipeline:
    """Echoes its records; every call waits for ``gate`` first."""
    pipe = Pipeline("gated")

    @pipe.execute
    def echo(records: Records) -> Records:
        gate.wait(30)
        calls.append([r["x"] for r in records])
        return [{"y": r["x"]} for r in records]

    return pipe


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within 30 s"
        time.sleep(0.005)


@pytest.fixture
def client() -> Iterator[Any]:
    with serve_client(doubler()) as started:
        yield started


# --------------------------------------------------------------------------- shapes


def test_an_object_gets_one_output_object(client: Any) -> None:
    response = client.post("/predict", json={"x": 2})
    assert response.status_code == 200
    assert response.json() == {"y": 4}
    assert response.headers["content-type"] == "application/json"


def test_an_array_gets_its_outputs_in_order_with_error_rows_in_place(client: Any) -> None:
    response = client.post("/predict", json=[{"x": 1}, {"x": "bad"}, {"x": 3}])
    assert response.status_code == 200
    first, failed, last = response.json()
    assert (first, last) == ({"y": 2}, {"y": 6})
    assert failed == {
        "error": {"type": "ValueError", "message": "x is bad", "stage": "execute", "index": 1}
    }


def test_instances_get_predictions(client: Any) -> None:
    response = client.post("/predict", json={"instances": [{"x": 1}, {"x": 5}]})
    assert response.status_code == 200
    assert response.json() == {"predictions": [{"y": 2}, {"y": 10}]}


def test_an_empty_array_gets_an_empty_array(client: Any) -> None:
    response = client.post("/predict", json=[])
    assert (response.status_code, response.json()) == (200, [])


def test_a_failing_single_object_answers_422_with_its_error_row(client: Any) -> None:
    response = client.post("/predict", json={"x": "bad"})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "x is bad"
    assert response.json()["error"]["index"] == 0


def test_the_v1_alias_serves_the_same_and_names_an_unknown_model(client: Any) -> None:
    assert client.post("/v1/models/doubler:predict", json={"x": 1}).json() == {"y": 2}
    response = client.post("/v1/models/dubler:predict", json={"x": 1})
    assert response.status_code == 404
    assert "did you mean 'doubler'" in response.json()["error"]["message"]


def test_on_error_raise_answers_422_for_a_request_with_a_failing_record() -> None:
    with serve_client(doubler(), on_error="raise") as client:
        response = client.post("/predict", json=[{"x": 1}, {"x": "bad"}])
    assert response.status_code == 422
    assert response.json()["error"]["index"] == 1


def test_an_output_that_is_not_json_gets_an_error_row_at_stage_output() -> None:
    pipe = Pipeline("nan")

    @pipe.execute
    def nan(records: Records) -> Records:
        return [{"y": float("nan") if r["x"] else 1.0} for r in records]

    with serve_client(pipe) as client:
        rows = client.post("/predict", json=[{"x": 0}, {"x": 1}]).json()
    assert rows[0] == {"y": 1.0}
    assert rows[1]["error"]["stage"] == "output" and rows[1]["error"]["index"] == 1


# --------------------------------------------------------------------------- bad requests


def test_malformed_json_answers_400_naming_the_position(client: Any) -> None:
    response = client.post("/predict", content=b'{"x": 1,\n "y": }')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "InvalidJSON"
    assert (error["line"], error["column"]) == (2, 7)
    assert "line 2, column 7" in error["message"]


def test_a_body_that_is_not_utf8_answers_400(client: Any) -> None:
    response = client.post("/predict", content=b'{"x": "\xff"}')
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (3, "the body is a number"),
        ('"text"', "the body is a string"),
        ([{"x": 1}, 2], "element 1 of the array is a number"),
        ({"instances": {"x": 1}}, '"instances" is an object'),
        ({"instances": [None]}, "element 0 of instances is null"),
    ],
)
def test_a_body_of_the_wrong_shape_answers_400(client: Any, body: Any, found: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "InvalidShape"
    assert response.json()["error"]["message"].startswith(found)


def test_a_body_over_max_body_bytes_answers_413() -> None:
    with serve_client(doubler(), max_body_bytes=100) as client:
        response = client.post("/predict", json=[{"x": 1}] * 50)
        assert response.status_code == 413
        assert "max_body_bytes=100" in response.json()["error"]["message"]
        # Without a Content-Length (chunked), the body is refused once it is too large.
        chunked = client.post("/predict", content=iter([b"[", b'{"x": 1},' * 30, b"{}]"]))
        assert chunked.status_code == 413
        assert client.post("/predict", json={"x": 1}).status_code == 200


def test_unknown_paths_and_methods_answer_json_404_and_405(client: Any) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and "POST /predict" in missing.json()["error"]["message"]
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "MethodNotAllowed"


def test_metrics_answer_the_prometheus_exposition(client: Any) -> None:
    # What the metrics say is tested in tests/observe/test_metrics_export_serve.py.
    client.post("/predict", json={"x": 1})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'packflow_records_total{outcome="ok",pipeline="doubler"}' in response.text


# --------------------------------------------------------------------------- NDJSON


LINES = [
    b'{"x": 1}',
    b"",
    b'{"x": "bad"}',
    b"not json",
    b"[1, 2]",
    b'{"x": 4}',
    b"   ",
    b'{"x": 5}',
]


def test_ndjson_gets_exactly_the_lines_packflow_run_writes(client: Any) -> None:
    body = b"\n".join(LINES) + b"\n"
    response = client.post("/predict", content=body, headers=NDJSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    expected: list[str] = []
    run_lines(doubler().build(), io.BytesIO(body), expected.append, on_error="row")
    assert response.text == "\n".join(expected) + "\n"
    assert len(response.text.splitlines()) == len(LINES)


def test_ndjson_is_read_across_chunks_that_split_lines(client: Any) -> None:
    body = b'{"x": 1}\n{"x": 2}\n{"x"' + b": 3}"  # the last line has no line end
    chunks = [body[i : i + 5] for i in range(0, len(body), 5)]
    response = client.post("/predict", content=iter(chunks), headers=NDJSON)
    assert [json.loads(line) for line in response.text.splitlines()] == [
        {"y": 2},
        {"y": 4},
        {"y": 6},
    ]


def test_an_ndjson_line_over_the_limit_gets_an_error_row_and_the_rest_run() -> None:
    body = b'{"x": 1}\n{"x": ' + b" " * 200 + b"2}\n" + b'{"x": 3}\n'
    with serve_client(doubler(), max_body_bytes=64) as client:
        response = client.post("/predict", content=iter([body[:30], body[30:]]), headers=NDJSON)
    first, long, last = (json.loads(line) for line in response.text.splitlines())
    assert (first, last) == ({"y": 2}, {"y": 6})
    assert long["error"]["line"] == 2 and "max_body_bytes=64" in long["error"]["message"]


def test_ndjson_with_on_error_raise_ends_after_the_first_failed_line() -> None:
    body = b'{"x": 1}\n{"x": "bad"}\n{"x": 3}\n'
    with serve_client(doubler(), on_error="raise") as client:
        response = client.post("/predict", content=body, headers=NDJSON)
    lines = response.text.splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["error"]["line"] == 2


def test_many_ndjson_lines_keep_their_order() -> None:
    body = "".join(json.dumps({"x": i}) + "\n" for i in range(2000)).encode()
    with serve_client(doubler(), max_batch_size=16) as client:
        response = client.post("/predict", content=body, headers=NDJSON)
    assert [json.loads(line)["y"] for line in response.text.splitlines()] == [
        2 * i for i in range(2000)
    ]


# --------------------------------------------------------------------------- batching


def test_a_large_request_is_split_into_batches_of_at_most_max_batch_size() -> None:
    calls: list[int] = []
    with serve_client(doubler(calls=calls), max_batch_size=4) as client:
        response = client.post("/predict", json=[{"x": i} for i in range(10)])
    assert [row["y"] for row in response.json()] == [2 * i for i in range(10)]
    assert sum(calls) == 10 and max(calls) <= 4


def test_records_of_concurrent_requests_share_batches_and_each_gets_its_own() -> None:
    gate, calls = threading.Event(), []
    answers: dict[int, Any] = {}
    with serve_client(gated(gate, calls), max_batch_size=8, max_latency_ms=0) as client:
        service = client.app.state.packflow

        def ask(i: int) -> None:
            answers[i] = client.post("/predict", json=[{"x": i}, {"x": i + 100}]).json()

        first = threading.Thread(target=ask, args=(0,))
        first.start()
        wait_for(lambda: service.queued == 2)
        others = [threading.Thread(target=ask, args=(i,)) for i in range(1, 5)]
        for thread in others:
            thread.start()
        wait_for(lambda: service.queued == 10)
        gate.set()
        for thread in [first, *others]:
            thread.join(30)
    assert answers == {i: [{"y": i}, {"y": i + 100}] for i in range(5)}
    # Records of several requests went through one call (no call mixed up their rows).
    assert sum(len(c) for c in calls) == 10 and max(len(c) for c in calls) <= 8
    assert any(len({x % 100 for x in call}) > 1 for call in calls)


def test_a_full_queue_answers_503_with_retry_after() -> None:
    gate, calls = threading.Event(), []
    with serve_client(gated(gate, calls), max_queue=2, retry_after=3) as client:
        service = client.app.state.packflow
        two = {"json": [{"x": 1}, {"x": 2}]}
        waiting = threading.Thread(target=client.post, args=("/predict",), kwargs=two)
        waiting.start()
        wait_for(lambda: service.queued == 2)
        response = client.post("/predict", json={"x": 3})
        gate.set()
        waiting.join(30)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        assert response.json()["error"]["type"] == "QueueFull"
        assert client.post("/predict", json={"x": 3}).json() == {"y": 3}


def test_a_request_larger_than_the_queue_runs_when_the_queue_is_empty() -> None:
    with serve_client(doubler(), max_queue=2) as client:
        response = client.post("/predict", json=[{"x": i} for i in range(5)])
    assert response.status_code == 200 and len(response.json()) == 5


# --------------------------------------------------------------------------- health


def test_health_and_model_metadata(client: Any) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/doubler/ready").status_code == 200
    assert client.get("/v2/models/dubler/ready").status_code == 404
    metadata = client.get("/v2/models/doubler").json()
    assert metadata["name"] == "doubler" and metadata["platform"] == "packflow"
    assert client.get("/v2/models/other").status_code == 404


class Sleepy(InferenceBackend):
    """A backend that is never ready."""

    def execute(self, inputs: Any) -> Any:
        return inputs

    def ready(self) -> bool:
        return False


def test_a_backend_that_is_not_ready_answers_503() -> None:
    with serve_client(Sleepy) as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and "ready() returned False" in ready.text
        assert client.get("/v2/models/Sleepy/ready").status_code == 503
        predict = client.post("/predict", json={"x": 1})
        assert predict.status_code == 503 and predict.headers["retry-after"] == "1"
        assert predict.json()["error"]["type"] == "NotReady"


def client_of(app: Any) -> Any:
    """Starlette's test client for ``app`` (what ``serve_client`` wraps)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    return TestClient(app)


def mounted(pipe: Any) -> Any:
    """A client of ``pipe``'s app mounted in another app (which runs no sub-app lifespan)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(pipe)
    return client_of(Starlette(routes=[Mount("/model", inner)])), inner.state.packflow


def test_a_mounted_app_builds_on_first_use_and_is_not_ready_meanwhile() -> None:
    gate = threading.Event()
    pipe = doubler()

    @pipe.initialize
    def slow(config: Any) -> int:
        gate.wait(30)
        return 1

    client, service = mounted(pipe)
    with client:
        first = client.post("/model/predict", json={"x": 1})
        assert first.status_code == 503 and "being built" in first.json()["error"]["message"]
        assert client.get("/model/openapi.json").status_code == 503
        gate.set()
        wait_for(lambda: service.built is not None)
        assert client.get("/model/v2/health/ready").status_code == 200
        assert client.post("/model/predict", json={"x": 1}).json() == {"y": 2}


def test_a_build_that_fails_is_reported_by_readiness() -> None:
    pipe = doubler()

    @pipe.initialize
    def broken(config: Any) -> int:
        raise OSError("model file missing")

    client, service = mounted(pipe)
    with client:
        client.get("/model/v2/health/ready")  # starts the build
        wait_for(lambda: service.build_error is not None)
        response = client.post("/model/predict", json={"x": 1})
    assert response.status_code == 503 and "model file missing" in response.text


def test_a_build_that_fails_in_the_lifespan_stops_the_startup() -> None:
    pipe = doubler()

    @pipe.initialize
    def broken(config: Any) -> int:
        raise OSError("model file missing")

    with pytest.raises(Exception, match="model file missing"), serve_client(pipe):
        pass


# --------------------------------------------------------------------------- 500


def test_a_bug_in_the_server_answers_500_logs_it_and_serving_goes_on(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import packflow.serve.app as served

    def broken(*args: Any) -> Any:
        raise RuntimeError("oops")

    monkeypatch.setattr(served, "_respond", broken)
    with caplog.at_level(logging.ERROR, logger="packflow"):
        response = client.post("/predict", json={"x": 1})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "type": "InternalServerError",
        "message": "the server failed: RuntimeError: oops (see the server log)",
    }
    assert any("internal error answering POST /predict" in r.message for r in caplog.records)
    monkeypatch.undo()
    assert client.post("/predict", json={"x": 1}).status_code == 200


def test_a_pipeline_that_breaks_the_batch_contract_answers_500() -> None:
    pipe = Pipeline("short")

    @pipe.execute
    def short(records: Records) -> Records:
        return records[:-1]

    with serve_client(pipe) as client:
        response = client.post("/predict", json=[{"x": 1}, {"x": 2}])
    assert response.status_code == 500
    assert "line up one to one" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- logging


def test_each_request_logs_one_access_line_at_info(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="packflow"):
        client.post("/predict", json=[{"x": 1}, {"x": 2}])
        client.get("/v2/health/live")
    lines = [r.getMessage() for r in caplog.records if r.name == "packflow.serve"]
    assert len(lines) == 2
    assert '"POST /predict HTTP/1.1" 200 2 records' in lines[0]
    assert '"GET /v2/health/live HTTP/1.1" 200' in lines[1]


# --------------------------------------------------------------------------- OpenAPI


class Flower(TypedDict):
    sepal: float
    name: str


class Scored(TypedDict):
    score: float
    label: int | None


def test_openapi_schemas_come_from_the_declared_types() -> None:
    pipe = Pipeline("flowers")

    @pipe.execute
    def score(records: list[Flower]) -> list[Scored]:
        return [{"score": r["sepal"], "label": None} for r in records]

    with serve_client(pipe, version="1.2") as client:
        document = client.get("/openapi.json").json()
        metadata = client.get("/v2/models/flowers").json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == "1.2"
    schemas = document["components"]["schemas"]
    assert schemas["Record"] == {
        "type": "object",
        "properties": {"sepal": {"type": "number"}, "name": {"type": "string"}},
        "required": ["name", "sepal"],
    }
    assert schemas["Output"]["properties"]["label"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]
    }
    assert "/v1/models/{name}:predict" in document["paths"]
    assert [f["name"] for f in metadata["inputs"]] == ["sepal", "name"]
    assert metadata["versions"] == ["1.2"]


def test_openapi_reads_feature_names_through_renames_and_nested_paths() -> None:
    pipe = Pipeline(
        "numbers",
        input_format="numpy",
        feature_names=["a", "b.c"],
        rename_fields={"A": "a"},
    )

    @pipe.execute
    def total(x: Any) -> Records:
        return [{"t": float(row.sum())} for row in x]

    with serve_client(pipe) as client:
        record = client.get("/openapi.json").json()["components"]["schemas"]["Record"]
    assert record["properties"]["A"] == {"type": "number"}
    assert record["properties"]["b"]["properties"]["c"] == {"type": "number"}
    assert record["required"] == ["A", "b"]


# --------------------------------------------------------------------------- targets


def test_a_built_pipeline_and_a_backend_instance_are_served() -> None:
    with serve_client(doubler().build()) as client:
        assert client.post("/predict", json={"x": 1}).json() == {"y": 2}
    with serve_client(Sleepy()) as client:
        assert client.get("/v2/health/ready").status_code == 503


def test_config_overrides_build_the_pipeline() -> None:
    pipe = Pipeline("renamer")

    @pipe.execute
    def keep(records: Records) -> Records:
        return records

    with serve_client(pipe, config={"rename_fields": {"a": "b"}}) as client:
        assert client.post("/predict", json={"a": 1}).json() == {"b": 1}


def test_create_app_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match="got int"):
        create_app(3)
    built = doubler().build()
    with (
        pytest.raises(InferenceBackendLoadError, match="already built"),
        serve_client(built, config={"verbose": True}),
    ):
        pass
    with pytest.raises(ValueError, match="max_batch_size"):
        create_app(doubler(), max_batch_size=0)
    with pytest.raises(ValueError, match="on_error"):
        ServeOptions(on_error="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        ServeOptions(max_queue=0)


def test_the_packflow_client_fixture_serves_a_pipeline(packflow_client: Any) -> None:
    client = packflow_client(doubler(), max_batch_size=2)
    assert client.post("/predict", json=[{"x": 1}] * 3).json() == [{"y": 2}] * 3


def test_import_packflow_and_packflow_testing_load_no_server_library() -> None:
    code = (
        "import sys, packflow, packflow.testing\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'httpx', 'packflow.serve') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- dispatcher


@settings(max_examples=40)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=12),
    batch=st.integers(min_value=1, max_value=8),
)
def test_every_request_gets_exactly_its_own_outputs_in_order(sizes: list[int], batch: int) -> None:
    import asyncio

    from packflow.runtime.contracts import BatchOptions
    from packflow.serve.dispatch import Dispatcher

    calls: list[int] = []
    built = doubler(calls=calls).build()

    async def main() -> list[list[Any]]:
        dispatcher = Dispatcher(built, BatchOptions(max_batch_size=batch))
        requests = [[{"x": 1000 * r + i} for i in range(n)] for r, n in enumerate(sizes)]
        answers = await asyncio.gather(*(dispatcher.submit(records) for records in requests))
        await dispatcher.aclose()
        assert dispatcher.queued == 0
        return list(answers)

    answers = asyncio.run(main())
    assert answers == [[{"y": 2 * (1000 * r + i)} for i in range(n)] for r, n in enumerate(sizes)]
    assert sum(calls) == sum(sizes) and max(calls) <= batch


def test_a_project_folder_is_served_with_its_backend_config_and_version(
    isolated_cwd: Path,
) -> None:
    from packflow.cli import main
    from packflow.serve.server import load_app

    assert main(["create", "x", "--project-version", "2.0.1"]) == 0
    with client_of(load_app("x")) as client:
        assert client.post("/predict", json={"value": 0.9}).json() == {
            "value": 0.9,
            "positive": True,
        }
        assert client.get("/v2/models/x").json()["versions"] == ["2.0.1"]


def test_a_request_whose_caller_went_away_is_not_run_and_leaves_the_queue() -> None:
    import asyncio

    from packflow.runtime.contracts import BatchOptions
    from packflow.serve.dispatch import Dispatcher

    gate, calls = threading.Event(), []
    built = gated(gate, calls).build()

    async def main() -> list[Any]:
        dispatcher = Dispatcher(built, BatchOptions(max_batch_size=2))
        first = dispatcher.submit([{"x": 1}])  # runs at once, held by the gate
        await asyncio.sleep(0)
        gone = dispatcher.submit([{"x": 2}, {"x": 3}, {"x": 4}])
        kept = dispatcher.submit([{"x": 5}])
        gone.cancel()
        gate.set()
        answers = [await first, await kept]
        await dispatcher.aclose()
        assert dispatcher.queued == 0
        return answers

    assert asyncio.run(main()) == [[{"y": 1}], [{"y": 5}]]
    assert [x for call in calls for x in call] == [1, 5]  # 2, 3 and 4 never ran


# --------------------------------------------------------------------------- async stages


def test_an_async_pipeline_is_served_on_the_loop_with_error_rows_in_place() -> None:
    import asyncio

    pipe = Pipeline("async-doubler")
    threads: set[str] = set()

    @pipe.execute
    async def double(records: Records) -> Records:
        await asyncio.sleep(0)
        threads.add(threading.current_thread().name)
        if any(r.get("x") == "bad" for r in records):
            raise ValueError("x is bad")
        return [{"y": r["x"] * 2} for r in records]

    with serve_client(pipe) as client:
        response = client.post("/predict", json=[{"x": 1}, {"x": "bad"}, {"x": 3}])
        assert response.status_code == 200
        body = response.json()
        assert body[0] == {"y": 2} and body[2] == {"y": 6}
        assert body[1]["error"]["message"] == "x is bad"
        assert client.post("/predict", json={"x": 5}).json() == {"y": 10}
    assert not any(name.startswith("packflow-serve") for name in threads)


def test_a_plain_stage_raising_cancelled_error_answers_500_and_serving_goes_on() -> None:
    # A BaseException out of a plain stage is about the whole batch (it is no record's
    # error); it must not end the server's batcher and leave requests unanswered.
    import asyncio

    pipe = Pipeline("cancelling")

    @pipe.execute
    def cancel(records: Records) -> Records:
        if any(r.get("x") == "stop" for r in records):
            raise asyncio.CancelledError("a plain stage raised CancelledError")
        return records

    with serve_client(pipe) as client:
        failed = client.post("/predict", json=[{"x": "stop"}])
        assert failed.status_code == 500
        assert "CancelledError" in json.dumps(failed.json())
        assert client.post("/predict", json={"x": 1}).json() == {"x": 1}
