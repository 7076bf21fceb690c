"""Logging: the stdlib logger ``"packflow"``, its level from ``PACKFLOW_LOG_LEVEL``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from packflow import Pipeline, Records
from packflow.log import configure_from_env, get_logger


@pytest.fixture
def packflow_logger() -> Iterator[logging.Logger]:
    """The ``packflow`` logger, with its level restored after the test."""
    logger = logging.getLogger("packflow")
    level = logger.level
    yield logger
    logger.setLevel(level)


def run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PACKFLOW_LOG_LEVEL"}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def echo_pipeline(**config: object) -> Pipeline:
    pipe = Pipeline("logged", **config)

    @pipe.execute
    def predict(records: Records) -> Records:
        return records

    return pipe


def test_the_package_logger_is_named_packflow() -> None:
    assert get_logger().name == "packflow"
    assert get_logger() is logging.getLogger("packflow")


def test_the_logger_injected_into_stages_is_a_child_of_packflow() -> None:
    pipe = Pipeline("scorer")

    @pipe.execute
    def predict(records: Records, logger: logging.Logger) -> Records:
        return [{"logger": logger.name} for _ in records]

    name = pipe({})["logger"]
    assert name.startswith("packflow.")
    assert logging.getLogger(name).parent is logging.getLogger("packflow")


@pytest.mark.parametrize(
    ("value", "level"),
    [("DEBUG", logging.DEBUG), ("warning", logging.WARNING), ("15", 15), (" ERROR ", 40)],
)
def test_packflow_log_level_sets_the_logger_level(
    packflow_logger: logging.Logger, value: str, level: int
) -> None:
    configure_from_env({"PACKFLOW_LOG_LEVEL": value})
    assert packflow_logger.level == level


def test_without_packflow_log_level_the_level_is_left_alone(
    packflow_logger: logging.Logger,
) -> None:
    packflow_logger.setLevel(logging.ERROR)
    configure_from_env({})
    assert packflow_logger.level == logging.ERROR


def test_an_unknown_level_is_reported_and_ignored(packflow_logger: logging.Logger) -> None:
    packflow_logger.setLevel(logging.INFO)
    with pytest.warns(RuntimeWarning, match="PACKFLOW_LOG_LEVEL='LOUD' is not a logging level"):
        configure_from_env({"PACKFLOW_LOG_LEVEL": "LOUD"})
    assert packflow_logger.level == logging.INFO


def test_a_misspelt_level_gets_a_suggestion(packflow_logger: logging.Logger) -> None:
    with pytest.warns(RuntimeWarning, match="did you mean 'DEBUG'"):
        configure_from_env({"PACKFLOW_LOG_LEVEL": "debgu"})


def test_an_unknown_level_is_shown_on_stderr_when_packflow_is_imported() -> None:
    environ = {**os.environ, "PACKFLOW_LOG_LEVEL": "LOUD"}
    result = subprocess.run(
        [sys.executable, "-c", "import packflow"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "PACKFLOW_LOG_LEVEL='LOUD' is not a logging level" in result.stderr


def test_the_cli_warns_about_an_unknown_level() -> None:
    environ = {**os.environ, "PACKFLOW_LOG_LEVEL": "LOUD"}
    result = subprocess.run(
        [sys.executable, "-m", "packflow", "--version"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "PACKFLOW_LOG_LEVEL='LOUD' is not a logging level" in result.stderr


def test_packflow_log_level_is_honoured_at_import() -> None:
    code = "import logging, packflow; print(logging.getLogger('packflow').level)"
    assert run_python(code, PACKFLOW_LOG_LEVEL="DEBUG") == str(logging.DEBUG)


def test_importing_packflow_adds_no_handler_to_the_root_logger() -> None:
    code = (
        "import logging\n"
        "before = list(logging.getLogger().handlers)\n"
        "import packflow\n"
        "packflow.Pipeline('p')\n"
        "print(logging.getLogger().handlers == before, len(before))\n"
    )
    assert run_python(code, PACKFLOW_LOG_LEVEL="DEBUG") == "True 0"


def test_verbose_logs_the_metrics_of_every_call(caplog: pytest.LogCaptureFixture) -> None:
    built = echo_pipeline(verbose=True).build()
    with caplog.at_level(logging.INFO, logger="packflow"):
        built([{}, {}])
        built({})
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("packflow")]
    assert len(messages) == 2
    assert "'batch_size': 2" in messages[0]
    assert "'batch_size': 1" in messages[1]
    assert all("execution_times" in m and "total_execution_time" in m for m in messages)


def test_without_verbose_a_call_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    built = echo_pipeline(verbose=False).build()
    with caplog.at_level(logging.DEBUG, logger="packflow"):
        built([{}, {}])
        built({})
    assert [r for r in caplog.records if r.name.startswith("packflow")] == []
