"""``packflow export``: what the archive must never hold, and what its requirement on
packflow may say.

Offline bundles (``--with-deps``) are in tests/test_export_bundle.py.
"""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from packflow._version import package_version
from packflow.cli import main
from packflow.project import ProjectError, create_project, export_project, list_project_files
from packflow.projects.bundle import OTHER_PACKFLOW_RELEASES, packflow_requirement_problems

VERSION = package_version()


@pytest.fixture(autouse=True)
def _forget_project_modules(tmp_path: Path) -> Iterator[None]:
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def project(tmp_path: Path) -> Path:
    folder = create_project("demo", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "LICENSE.txt").write_text("MIT")
    return folder


def archived(folder: Path, tmp_path: Path) -> dict[str, bytes]:
    result = export_project(folder, tmp_path / "dist")
    with zipfile.ZipFile(result.archive) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def left_out(folder: Path, tmp_path: Path) -> dict[str, str]:
    result = export_project(folder, tmp_path / "dist")
    return {item.path: item.reason for item in result.left_out}


# --------------------------------------------------------------------------- symlinks


def test_a_link_to_env_is_left_out_and_reported_not_exported_under_its_name(
    tmp_path: Path,
) -> None:
    folder = project(tmp_path)
    (folder / ".env").write_text("API_KEY=hunter2\n")
    (folder / "notes.txt").symlink_to(".env")
    contents = archived(folder, tmp_path)
    assert "notes.txt" not in contents
    assert not any(b"hunter2" in data for data in contents.values())
    assert "which is not exported" in left_out(folder, tmp_path)["notes.txt"]


def test_a_link_to_a_key_outside_the_project_is_left_out_and_reported(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (folder / "deploy_key").symlink_to(ssh / "id_ed25519")
    assert "deploy_key" not in archived(folder, tmp_path)
    assert "outside the project" in left_out(folder, tmp_path)["deploy_key"]


def test_a_link_to_a_gitignored_file_is_left_out(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / ".gitignore").write_text("private.csv\n")
    (folder / "private.csv").write_text("card,4111\n")
    (folder / "data.csv").symlink_to("private.csv")
    assert "data.csv" not in archived(folder, tmp_path)
    assert "private.csv" in left_out(folder, tmp_path)["data.csv"]


def test_a_link_to_an_exported_file_is_exported_with_its_contents(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "models").mkdir()
    (folder / "models" / "v2.bin").write_bytes(b"weights")
    (folder / "model.bin").symlink_to("models/v2.bin")
    contents = archived(folder, tmp_path)
    assert contents["model.bin"] == b"weights" == contents["models/v2.bin"]
    assert left_out(folder, tmp_path) == {}


def test_a_link_loop_is_named_and_the_rest_exported(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    contents = archived(folder, tmp_path)
    assert "inference.py" in contents and "a" not in contents
    assert left_out(folder, tmp_path) == {"a": "a link loop", "b": "a link loop"}


def test_a_file_name_that_is_not_utf8_is_named_and_the_rest_exported(tmp_path: Path) -> None:
    folder = project(tmp_path)
    os.close(os.open(os.fsencode(folder) + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    contents = archived(folder, tmp_path)
    assert "inference.py" in contents
    assert "not valid UTF-8" in left_out(folder, tmp_path)["caf\\xe9.txt"]


def test_a_file_name_with_a_backslash_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "..\\evil.py").write_text("x")
    assert "..\\evil.py" not in archived(folder, tmp_path)
    assert "backslash" in left_out(folder, tmp_path)["..\\evil.py"]


def test_export_prints_what_it_left_out_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path)
    (folder / ".env").write_text("API_KEY=x\n")
    (folder / "notes.txt").symlink_to(".env")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "demo"]) == 0
    assert "left out notes.txt: a link to .env, which is not exported" in capsys.readouterr().err


# --------------------------------------------------------------------------- secrets


def test_cloud_credentials_and_service_account_keys_are_never_exported(tmp_path: Path) -> None:
    folder = project(tmp_path)
    secrets = {
        ".aws/credentials": "[default]\naws_secret_access_key=x\n",
        ".aws/config": "[default]\n",
        ".git-credentials": "https://u:token@example.com\n",
        "keys/my-project-service-account.json": "{}",
        "client_secret_123.apps.json": "{}",
        ".config/gcloud/application_default_credentials.json": "{}",
    }
    for relpath, text in secrets.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_text(text)
    files = set(list_project_files(folder))
    assert files.isdisjoint(secrets)


def test_a_service_account_key_is_found_by_its_contents_and_reported(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "gcp.json").write_text(
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----",'
        ' "client_email": "x@y.iam.gserviceaccount.com"}'
    )
    (folder / "config.json").write_text('{"threshold": 0.5}')
    contents = archived(folder, tmp_path)
    assert "gcp.json" not in contents and "config.json" in contents
    assert "service-account key" in left_out(folder, tmp_path)["gcp.json"]


# --------------------------------------------------------------------------- the archive


def test_the_archive_gets_ordinary_permissions_under_the_umask(tmp_path: Path) -> None:
    folder = project(tmp_path)
    previous = os.umask(0o022)
    try:
        result = export_project(folder, tmp_path / "dist")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(result.archive.stat().st_mode) == 0o644


def test_every_entry_name_is_a_plain_relative_path(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "sub" / "deeper" / "x.txt").write_text("x")
    for name in archived(folder, tmp_path):
        parts = name.split("/")
        assert not name.startswith("/") and "\\" not in name
        assert all(part not in ("", ".", "..") for part in parts)


# --------------------------------------------------------------------------- the pin


@pytest.mark.parametrize(
    "line",
    [
        "packflow",
        "packflow>=0.1.0",
        "packflow[onnx]>=0.1.0",
        "packflow~=0.1",
        "packflow==0.*",
        "packflow>=0.1,<1",
        *(f"packflow=={v}" for v in OTHER_PACKFLOW_RELEASES),
        "Packflow == 0.4.1 ; python_version >= '3.8'",
    ],
)
def test_a_requirement_the_other_packflow_can_meet_is_refused_by_export(
    line: str, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    (folder / "requirements.txt").write_text(f"numpy\n{line}\n")
    with pytest.raises(ProjectError) as info:
        export_project(folder, tmp_path / "dist")
    message = str(info.value)
    assert "requirements.txt:2:" in message and "unrelated project named packflow" in message
    assert f"=={VERSION}" in message


@pytest.mark.parametrize(
    "line",
    [
        f"packflow=={VERSION}",
        f"packflow[onnx,sklearn]=={VERSION}",
        f"packflow==={VERSION}",
        "packflow @ file:///opt/wheels/packflow-0.1.0-py3-none-any.whl",
        f"packflow=={VERSION}  # this library, pinned",
    ],
)
def test_an_exact_pin_or_a_direct_reference_is_accepted(line: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{line}\nscikit-learn>=1.3\n")
    assert packflow_requirement_problems(requirements) == []


def test_the_refusal_suggests_the_pin_with_the_same_extras(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("packflow[onnx]>=0.1.0\n")
    (problem,) = packflow_requirement_problems(requirements)
    assert problem.endswith(f"pin this library exactly: packflow[onnx]=={VERSION}")


def test_export_on_the_command_line_refuses_a_loose_pin_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path)
    (folder / "requirements.txt").write_text("packflow>=0.1.0\n")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "packflow export: error: not exporting demo" in err


def test_platform_options_without_with_deps_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "demo", "--python-version", "3.12"]) == 2
    assert "--python-version names the target of the wheels" in capsys.readouterr().err
