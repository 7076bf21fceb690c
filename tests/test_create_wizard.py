"""``packflow create`` asks for the project's details in a terminal, as packflow 0.4.1 did,
and never asks with ``--no-input`` or when stdin is not a terminal."""

from __future__ import annotations

import contextlib
import io
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packflow.cli import main
from packflow.project import read_project_config

pytestmark = pytest.mark.usefixtures("isolated_cwd")


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def git_email(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A git configuration of its own whose user.email is the wizard's default."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\temail = ada@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return "ada@example.org"


def answer(monkeypatch: pytest.MonkeyPatch, *lines: str) -> FakeTerminal:
    stdin = FakeTerminal("".join(line + "\n" for line in lines))
    stdout = FakeTerminal()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    return stdout


def test_create_without_a_name_in_a_terminal_asks_for_the_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_email: str
) -> None:
    stdout = answer(monkeypatch, "scorer", "Scores things.", "1.2.0", "")
    assert main(["create"]) == 0
    config = read_project_config(tmp_path / "scorer")
    assert config.description == "Scores things."
    assert config.version == "1.2.0"
    assert config.maintainers == [git_email]
    shown = stdout.getvalue()
    assert f"maintainer e-mail [{git_email}]: " in shown
    assert "version [0.1.0]: " in shown


def test_the_wizard_s_defaults_are_taken_on_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_email: str
) -> None:
    answer(monkeypatch, "scorer", "", "", "")
    assert main(["create"]) == 0
    config = read_project_config(tmp_path / "scorer")
    assert config.description == "Inference code for scorer."
    assert config.version == "0.1.0"
    assert config.maintainers == [git_email]


def test_the_wizard_asks_again_after_an_invalid_name_or_version(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    git_email: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer(monkeypatch, "", "9lives", "scorer", "d", "1 0", "2.0", "bo@example.org")
    assert main(["create"]) == 0
    config = read_project_config(tmp_path / "scorer")
    assert (config.version, config.maintainers) == ("2.0", ["bo@example.org"])
    errors = capsys.readouterr().err
    assert "project name is required" in errors
    assert "invalid project name '9lives'" in errors
    assert "invalid version '1 0'" in errors


def test_the_wizard_does_not_ask_for_what_the_command_line_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_email: str
) -> None:
    stdout = answer(monkeypatch, "scorer")
    assert (
        main(
            [
                "create",
                "--description",
                "given",
                "--project-version",
                "3.0",
                "--maintainer",
                "c@d.e",
            ]
        )
        == 0
    )
    config = read_project_config(tmp_path / "scorer")
    assert (config.description, config.version, config.maintainers) == ("given", "3.0", ["c@d.e"])
    assert "description" not in stdout.getvalue()


def test_the_wizard_stops_cleanly_when_input_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer(monkeypatch, "scorer")
    assert main(["create"]) == 1
    assert "nothing was created" in capsys.readouterr().err
    assert not (tmp_path / "scorer").exists()


def test_a_name_on_the_command_line_never_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = answer(monkeypatch)  # nothing to read: asking would fail
    assert main(["create", "scorer"]) == 0
    assert read_project_config(tmp_path / "scorer").version == "0.1.0"
    assert "project name" not in stdout.getvalue()


def test_no_input_never_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer(monkeypatch, "scorer", "", "", "")
    assert main(["create", "--no-input"]) == 2
    assert "give the project NAME" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["create", "scorer", "--no-input"]) == 0


def test_a_stdin_that_is_not_a_terminal_never_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("scorer\n\n\n\n"))
    assert main(["create"]) == 2
    assert "give the project NAME" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- through a real pseudo-terminal ------------------------------------------------------------


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    pty = pytest.importorskip("pty")
    parent, child = pty.openpty()
    yield parent, child
    for fd in (parent, child):
        with contextlib.suppress(OSError):
            os.close(fd)


def read_until(fd: int, text: str, deadline: float) -> str:
    seen = ""
    while text not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"waited for {text!r}; the terminal showed {seen!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            seen += chunk.decode(errors="replace")
    return seen


def test_the_wizard_runs_in_a_pseudo_terminal(
    tmp_path: Path, git_email: str, pty_pair: tuple[int, int]
) -> None:
    parent, child = pty_pair
    process = subprocess.Popen(
        [sys.executable, "-m", "packflow", "create"],
        # input() writes its prompt to stderr when it talks to a terminal.
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 60
        for prompt, reply in [
            ("project name: ", "tty-made"),
            ("description [Inference code for tty-made.]: ", "From a terminal."),
            ("version [0.1.0]: ", ""),
            (f"maintainer e-mail [{git_email}]: ", ""),
        ]:
            read_until(parent, prompt, deadline)
            os.write(parent, reply.encode() + b"\n")
        read_until(parent, "created project 'tty-made'", deadline)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    config = read_project_config(tmp_path / "tty-made")
    assert (config.description, config.maintainers) == ("From a terminal.", [git_email])
