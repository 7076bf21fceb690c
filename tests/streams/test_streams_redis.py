"""``run_stream`` and ``packflow run --source`` on a real ``redis-server``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest
import redis
from stream_helpers import packflow_run
from stream_pipelines import doubler, slow_doubler, unwritable

from packflow import Pipeline, Records
from packflow.cli import main
from packflow.exceptions import MissingExtraError, SinkRefusedError, StreamError
from packflow.streams import RedisSource, StreamSummary, parse_url, run_stream
from packflow.streams.local import LocalRedis

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(redis_server: LocalRedis) -> Any:
    connection = redis.Redis(port=redis_server.port)
    yield connection
    connection.close()


def add(client: Any, stream: str, payloads: list[Any]) -> list[str]:
    """XADD each payload as field ``data`` (a dict is written as its JSON)."""
    ids = []
    for payload in payloads:
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        ids.append(client.xadd(stream, {"data": data}).decode())
    return ids


def entries(client: Any, stream: str) -> list[dict[str, Any]]:
    """The stream's entries as dicts of text fields (``payload`` kept as bytes)."""
    found = []
    for _, fields in client.xrange(stream):
        entry = {k.decode(): (v if k == b"payload" else v.decode()) for k, v in fields.items()}
        entry["data"] = json.loads(entry["data"])
        found.append(entry)
    return found


def pending(client: Any, stream: str, group: str = "packflow") -> int:
    return int(client.xpending(stream, group)["pending"])


def consume(url: str, source: str, sink: str, **options: Any) -> StreamSummary:
    options.setdefault("idle_timeout", 0.5)
    return run_stream(doubler.build(), f"{url}/{source}", f"{url}/{sink}", **options)


def test_outputs_are_written_in_input_order_carrying_the_input_entry_id(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": i} for i in range(100)])
    summary = consume(redis_server.url, fresh, fresh + "-out", max_batch_size=7)
    written = entries(client, fresh + "-out")
    assert [entry["source_id"] for entry in written] == ids
    assert [entry["data"] for entry in written] == [{"y": 2 * i} for i in range(100)]
    assert (summary.read, summary.written, summary.dead_lettered) == (100, 100, 0)
    assert summary.acknowledged == 100 and pending(client, fresh) == 0
    assert summary.stopped == "idle for 0.5s" and not summary.failed


def test_failures_go_to_the_dead_letter_stream_with_their_payload_and_error_row(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    big = json.dumps({"x": 1, "pad": "p" * 200})
    payloads: list[Any] = [{"x": 1}, "not json", "[1, 2]", {"z": 1}, big, {"boom": True}]
    ids = add(client, fresh, payloads)
    no_data = client.xadd(fresh, {"other": "1"}).decode()
    summary = consume(
        redis_server.url,
        fresh,
        fresh + "-out",
        dead_letter=f"{redis_server.url}/{fresh}-dead",
        max_message_bytes=100,
    )
    assert [entry["data"] for entry in entries(client, fresh + "-out")] == [{"y": 2}]
    dead = entries(client, fresh + "-dead")
    assert [entry["source_id"] for entry in dead] == [*ids[1:], no_data]
    assert [entry["payload"] for entry in dead] == [
        b"not json",
        b"[1, 2]",
        b'{"z": 1}',
        big.encode(),
        b'{"boom": true}',
        b"",
    ]
    errors = [entry["data"]["error"] for entry in dead]
    assert [(e["type"], e["stage"], e["index"]) for e in errors] == [
        ("InvalidMessage", "input", 1),
        ("InvalidMessage", "input", 2),
        ("KeyError", "execute", 3),
        ("InvalidMessage", "input", 4),
        ("RuntimeError", "execute", 5),
        ("InvalidMessage", "input", 6),
    ]
    assert errors[0]["message"].startswith("not valid JSON")
    assert errors[1]["message"] == "expected a JSON object, got list"
    assert "over the limit of 100 bytes" in errors[3]["message"]
    assert errors[5]["message"] == "the entry has no field 'data' (its fields: other)"
    assert (summary.written, summary.dead_lettered, summary.acknowledged) == (1, 6, 7)
    assert [failure.message_id for failure in summary.first_failures] == [*ids[1:], no_data]
    assert pending(client, fresh) == 0


def test_dead_letters_go_to_the_sink_in_their_place_by_default(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": 1}, {"z": 2}, {"x": 3}])
    consume(redis_server.url, fresh, fresh + "-out")
    written = entries(client, fresh + "-out")
    assert [entry["source_id"] for entry in written] == ids
    assert written[0]["data"] == {"y": 2} and written[2]["data"] == {"y": 6}
    assert written[1]["data"]["error"]["type"] == "KeyError"
    assert written[1]["payload"] == b'{"z": 2}'
    assert "payload" not in written[0]


def test_an_output_that_is_not_json_is_dead_lettered_naming_the_value(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    add(client, fresh, [{"x": 1}, {"x": -1}])
    url = redis_server.url
    run_stream(unwritable.build(), f"{url}/{fresh}", f"{url}/{fresh}-out", idle_timeout=0.5)
    written = entries(client, fresh + "-out")
    assert written[0]["data"] == {"y": 1}
    error = written[1]["data"]["error"]
    assert (error["type"], error["stage"], error["index"]) == ("ValueError", "output", 1)
    assert "y" in error["message"]


def test_a_sink_that_refuses_writes_stops_the_consumer_without_acknowledging(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    add(client, fresh, [{"x": i} for i in range(10)])
    client.set(fresh + "-out", "a string, not a stream")
    with pytest.raises(SinkRefusedError, match="WRONGTYPE") as caught:
        consume(redis_server.url, fresh, fresh + "-out")
    assert caught.value.url == f"{redis_server.url}/{fresh}-out"
    assert pending(client, fresh) == 10


def test_a_restart_under_the_same_consumer_name_takes_back_its_pending_entries(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": i} for i in range(5)])
    client.xgroup_create(fresh, "packflow", id="0")
    # Delivered to consumer c1, which crashed before acknowledging them.
    client.xreadgroup("packflow", "c1", {fresh: ">"}, count=3)
    assert pending(client, fresh) == 3
    consume(redis_server.url, fresh, fresh + "-out", consumer="c1")
    assert [entry["source_id"] for entry in entries(client, fresh + "-out")] == ids
    assert pending(client, fresh) == 0


def test_entries_left_pending_by_a_dead_consumer_are_claimed_after_claim_idle_ms(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": i} for i in range(5)])
    client.xgroup_create(fresh, "packflow", id="0")
    client.xreadgroup("packflow", "dead", {fresh: ">"}, count=2)
    time.sleep(0.1)
    url = redis_server.url
    run_stream(
        doubler.build(),
        f"{url}/{fresh}?claim_idle_ms=50",
        f"{url}/{fresh}-out",
        consumer="alive",
        idle_timeout=0.5,
    )
    written = [entry["source_id"] for entry in entries(client, fresh + "-out")]
    assert sorted(written) == sorted(ids) and len(written) == 5
    assert pending(client, fresh) == 0


def test_consumers_of_one_group_share_the_work_each_entry_once(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": i} for i in range(2000)])
    summaries: dict[str, StreamSummary] = {}

    def member(name: str) -> None:
        url = redis_server.url
        summaries[name] = run_stream(
            slow_doubler.build(),
            f"{url}/{fresh}",
            f"{url}/{fresh}-out",
            consumer=name,
            max_batch_size=8,
            idle_timeout=0.5,
        )

    threads = [threading.Thread(target=member, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    written = [entry["source_id"] for entry in entries(client, fresh + "-out")]
    assert sorted(written) == sorted(ids) and len(written) == len(ids)
    assert summaries["a"].read > 0 and summaries["b"].read > 0
    assert summaries["a"].read + summaries["b"].read == len(ids)


def test_on_error_raise_stops_at_the_first_failure_leaving_it_unacknowledged(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    ids = add(client, fresh, [{"x": 1}, {"x": 2}, {"z": 3}, {"x": 4}])
    summary = consume(redis_server.url, fresh, fresh + "-out", on_error="raise")
    assert [entry["source_id"] for entry in entries(client, fresh + "-out")] == ids[:2]
    assert summary.failed and summary.stopped is not None
    assert ids[2] in summary.stopped and "not acknowledged" in summary.stopped
    assert summary.acknowledged == 2 and pending(client, fresh) == 2
    assert [failure.message_id for failure in summary.first_failures] == [ids[2]]


def test_max_errors_stops_once_that_many_messages_are_dead_lettered(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    add(client, fresh, [{"z": 0}, {"x": 1}, {"z": 2}, {"x": 3}, {"z": 4}])
    summary = consume(redis_server.url, fresh, fresh + "-out", max_errors=2)
    assert summary.failed and "max_errors=2" in (summary.stopped or "")
    assert (summary.written, summary.dead_lettered, summary.acknowledged) == (1, 2, 3)
    assert pending(client, fresh) == 2


def test_stop_finishes_and_acknowledges_the_batch_in_flight(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    add(client, fresh, [{"x": i} for i in range(50)])
    stop = threading.Event()
    pipe = Pipeline("stopper")

    @pipe.execute
    def ask_to_stop(records: Records) -> Records:
        stop.set()  # as a SIGTERM arriving while this batch runs
        return records

    url = redis_server.url
    summary = run_stream(
        pipe.build(), f"{url}/{fresh}", f"{url}/{fresh}-out", stop=stop, max_batch_size=10
    )
    assert (summary.read, summary.written, summary.acknowledged) == (10, 10, 10)
    assert len(entries(client, fresh + "-out")) == 10
    assert pending(client, fresh) == 0 and not summary.failed


def test_a_broker_outage_is_retried_with_backoff_and_reported(fresh: str) -> None:
    with LocalRedis(durable=True) as server:
        client = redis.Redis(port=server.port)
        add(client, fresh, [{"x": i} for i in range(5)])
        notes: list[str] = []
        stop = threading.Event()
        result: list[StreamSummary] = []

        def consumer() -> None:
            url = f"{server.url}/{fresh}"
            result.append(
                run_stream(doubler.build(), url, url + "-out", stop=stop, notify=notes.append)
            )

        thread = threading.Thread(target=consumer)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while client.xlen(fresh + "-out") < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            server.kill()
            while not any("retrying" in note for note in notes) and time.monotonic() < deadline:
                time.sleep(0.05)
            server.start()
            client = redis.Redis(port=server.port)
            add(client, fresh, [{"x": i} for i in range(5, 10)])
            while client.xlen(fresh + "-out") < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        assert any("retrying" in note and "unreachable" in note for note in notes), notes
        assert any("reachable again" in note for note in notes), notes
        outputs = [entry["data"]["y"] for entry in entries(client, fresh + "-out")]
        assert outputs == [2 * i for i in range(10)]
        assert result[0].acknowledged == 10 and pending(client, fresh) == 0
        client.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:1/s", "unknown scheme 'http'"),
        ("redis://h:1", "no stream name"),
        ("redis://h:99999/s", "port '99999' of h is not 1 to 65535"),
        ("redis://h:1,g:2/s", "a Redis URL names one server"),
        ("redis://h:1/s?claim_idel_ms=5", "did you mean 'claim_idle_ms'"),
        ("redis://h:1/s?db=x", "option db must be a whole number"),
        ("kafka://h:1/bad topic", "is not a Kafka topic name"),
    ],
)
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(StreamError, match=problem):
        parse_url(url)


def test_a_password_in_a_url_is_never_shown() -> None:
    parsed = parse_url("redis://me:s3cret@h:1/s")
    assert parsed.password == "s3cret" and parsed.shown == "redis://me@h:1/s"
    assert "s3cret" not in repr(parsed)
    with pytest.raises(StreamError) as caught:
        parse_url("ftp://me:s3cret@h:1/s")
    assert "s3cret" not in str(caught.value) and "s3cret" not in caught.value.url


def test_importing_packflow_streams_imports_neither_redis_nor_kafka() -> None:
    code = (
        "import sys, packflow, packflow.streams\n"
        "print(sorted(m for m in ('redis', 'confluent_kafka', 'packflow.streams') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['packflow.streams']"
    code = "import sys, packflow\nprint('packflow.streams' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'packflow\[redis\]'"):
        RedisSource("redis://127.0.0.1:1/s", group="g", consumer="c")


# --------------------------------------------------------------------------- the CLI


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_packflow_run_drains_on_a_signal_and_prints_a_summary(
    redis_server: LocalRedis, client: Any, fresh: str, sig: signal.Signals, code: int
) -> None:
    url = redis_server.url
    add(client, fresh, [{"x": 1}, {"z": 2}, {"x": 3}])
    args = [
        "stream_pipelines:doubler",
        "--source",
        f"{url}/{fresh}",
        "--sink",
        f"{url}/{fresh}-out",
    ]
    process = packflow_run([*args, "--consumer", "one"])
    try:
        wait_for(lambda: client.xlen(fresh + "-out") == 3)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert f"consuming {url}/{fresh} as 'one' of group 'packflow'" in err
    assert "execute: KeyError: 'x' (dead-lettered)" in err
    assert f"stopped ({sig.name}); 3 read, 2 written, 1 dead-lettered, 3 acknowledged" in err
    assert pending(client, fresh) == 0


def test_packflow_run_exits_1_when_the_sink_refuses_leaving_the_input_pending(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    url = redis_server.url
    add(client, fresh, [{"x": 1}])
    client.set(fresh + "-out", "x")
    process = packflow_run(
        ["stream_pipelines:doubler", "--source", f"{url}/{fresh}", "--sink", f"{url}/{fresh}-out"]
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "packflow run: error:" in err and "XADD refused: WRONGTYPE" in err
    assert "Traceback" not in err and pending(client, fresh) == 1


def test_packflow_run_with_idle_timeout_exits_0_once_the_stream_is_drained(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    url = redis_server.url
    add(client, fresh, [{"x": i} for i in range(300)])
    process = packflow_run(
        [
            "stream_pipelines:doubler",
            "--source",
            f"{url}/{fresh}",
            "--sink",
            f"{url}/{fresh}-out",
            "--max-batch-size",
            "32",
            "--idle-timeout",
            "0.5",
        ]
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped (idle for 0.5s); 300 read, 300 written" in err
    assert client.xlen(fresh + "-out") == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sink", "redis://h:1/o"], "--source URL is needed too"),
        (["--source", "redis://h:1/i"], "--sink URL is needed too"),
        (["--input", "x.jsonl", "--dead-letter", "redis://h:1/d"], "only with --source"),
        (["--source", "redis://h:1/i", "--sink", "nats://h/o"], "--sink nats://h/o: unknown"),
        (["--source", "redis://h:1/i", "--sink", "redis://h:1/o", "-o", "f"], "--output is for"),
        (["--source", "redis://h:1/i", "--sink", "redis://h:1/o", "-i", "f"], "exclude each"),
        (
            ["--source", "redis://h:1/i", "--sink", "redis://h:1/o", "--idle-timeout", "-1"],
            "--idle-timeout must be a number >= 0",
        ),
        ([], "give --input FILE"),
    ],
)
def test_packflow_run_refuses_a_stream_usage_mistake(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "stream_pipelines:doubler", *args]) == 2
    assert message in capsys.readouterr().err


def test_packflow_run_serves_metrics_on_metrics_port_while_it_consumes(
    redis_server: LocalRedis, client: Any, fresh: str
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    url = redis_server.url
    add(client, fresh, [{"x": 1}, {"x": 2}, {"z": 3}])
    args = [
        "stream_pipelines:doubler",
        "--source",
        f"{url}/{fresh}",
        "--sink",
        f"{url}/{fresh}-out",
    ]
    process = packflow_run([*args, "--metrics-port", "0"])
    try:
        assert process.stderr is not None
        announced = process.stderr.readline()
        assert announced.startswith("packflow: metrics at http://127.0.0.1:"), announced
        wait_for(lambda: client.xlen(fresh + "-out") == 3)
        metrics = announced.split(" at ", 1)[1].strip()
        with urllib.request.urlopen(metrics, timeout=10) as response:
            text = response.read().decode()
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        ok = ("packflow_records_total", (("outcome", "ok"), ("pipeline", "doubler")))
        error = ("packflow_records_total", (("outcome", "error"), ("pipeline", "doubler")))
        assert (found[ok], found[error]) == (2, 1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
