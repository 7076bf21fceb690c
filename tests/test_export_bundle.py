"""Offline bundles: ``packflow export --with-deps`` and a machine with no package index.

One bundle is made per module (pip may use its cache and the configured indexes for
that, as a user's export would); everything after it runs with no index at all: a fresh
virtual environment (no system site-packages) installs from the archive alone with
``pip install --no-index``, and the other exports here take their wheels from the
bundle's own ``wheels/`` folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from packflow._version import package_version
from packflow.cli import main
from packflow.project import ProjectError, create_project, export_project
from packflow.projects.bundle import BundleTarget, build_own_wheel

VERSION = package_version()


def offline_env(wheelhouse: Path | None = None) -> dict[str, str]:
    """The environment of a machine with no index: no pip config, no find-links but
    ``wheelhouse``, and none of this checkout on the path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PIP_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"})
    if wheelhouse is not None:
        env["PIP_FIND_LINKS"] = str(wheelhouse)
    return env


@pytest.fixture(autouse=True)
def _forget_project_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Unload the projects' modules (validation imports them) so other tests start clean."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    base = str(tmp_path_factory.getbasetemp())
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(base):
            del sys.modules[name]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A blank project exported with its wheels, unpacked into a folder."""
    work = tmp_path_factory.mktemp("bundle")
    folder = create_project("scorer", work / "src", description="d", maintainers=["a@b.c"])
    (folder / "LICENSE.txt").write_text("MIT")
    result = export_project(folder, work / "dist", with_deps=True)
    assert f"wheels/packflow-{VERSION}-py3-none-any.whl" in result.wheels
    unpacked = work / "unpacked"
    with zipfile.ZipFile(result.archive) as archive:
        archive.extractall(unpacked)
    return unpacked


@pytest.fixture
def offline(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """pip in this process's children sees only the bundle's wheels, no index."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in offline_env(bundle / "wheels").items():
        if key.startswith("PIP_"):
            monkeypatch.setenv(key, value)
    yield bundle / "wheels"


def project(tmp_path: Path, requirements: str | None = None) -> Path:
    folder = create_project("demo", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "LICENSE.txt").write_text("MIT")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def test_a_bundle_installs_and_runs_in_a_fresh_environment_without_an_index(
    bundle: Path, tmp_path: Path
) -> None:
    env = offline_env()
    fresh = tmp_path / "fresh"
    # No pip inside (ensurepip would only slow the test down): the running pip installs
    # into it, with no index and no config, from the archive's wheels alone.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, env=env
    )
    assert "include-system-site-packages = false" in (fresh / "pyvenv.cfg").read_text()
    python = fresh / "bin" / "python"
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index"),
            *("--find-links", "wheels", "-r", "requirements.txt"),
        ],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    where = subprocess.run(
        [str(python), "-c", "import packflow; print(packflow.__file__)"],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(fresh))
    ran = subprocess.run(
        [str(fresh / "bin" / "packflow"), "run", ".", "--input", "sample.jsonl"],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    here = subprocess.run(
        [sys.executable, "-m", "packflow", "run", ".", "--input", "sample.jsonl"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert here.returncode == 0, here.stderr
    outputs = [json.loads(line) for line in ran.stdout.splitlines()]
    assert outputs == [json.loads(line) for line in here.stdout.splitlines()]
    assert outputs == [
        {"value": 0.2, "positive": False},
        {"value": 0.9, "positive": True},
        {"value": 0.5, "positive": False},
    ]


def test_a_bundle_says_how_to_install_it_without_an_index(bundle: Path) -> None:
    text = (bundle / "INSTALL-OFFLINE.md").read_text()
    assert "pip install --no-index --find-links wheels -r requirements.txt" in text
    assert f"packflow-{VERSION}-py3-none-any.whl" in text
    assert (bundle / "requirements.txt").read_text().splitlines()[-1] == f"packflow=={VERSION}"


def test_this_librarys_wheel_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = build_own_wheel(tmp_path / "a"), build_own_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as wheel:
        names = set(wheel.namelist())
        info = f"packflow-{VERSION}.dist-info"
        assert "packflow/templates/onnx/model.onnx" in names
        assert not any("__pycache__" in name for name in names)
        assert "packflow = packflow.cli:main" in wheel.read(f"{info}/entry_points.txt").decode()
        record = wheel.read(f"{info}/RECORD").decode()
    assert all(name in record for name in names)


def test_a_requirement_that_cannot_become_a_wheel_is_named(offline: Path, tmp_path: Path) -> None:
    folder = project(tmp_path, f"packflow=={VERSION}\nno-such-dist-for-packflow-tests==1.0\n")
    with pytest.raises(ProjectError) as info:
        export_project(folder, tmp_path / "dist", with_deps=True)
    message = str(info.value)
    assert "no-such-dist-for-packflow-tests==1.0 cannot be turned into a wheel" in message
    assert not (tmp_path / "dist" / "demo-0.1.0.zip").exists()


def test_a_bundle_for_a_named_platform_and_python_takes_binary_wheels(
    offline: Path, tmp_path: Path
) -> None:
    numpy_wheel = next(offline.glob("numpy-*.whl")).name
    platform = numpy_wheel.removesuffix(".whl").split("-")[-1].split(".")[-1]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    folder = project(tmp_path)
    result = export_project(
        folder,
        tmp_path / "dist",
        with_deps=True,
        target=BundleTarget((platform,), python),
    )
    assert f"wheels/{numpy_wheel}" in result.wheels
    with zipfile.ZipFile(result.archive) as archive:
        assert f"Python {python} on {platform}" in archive.read("INSTALL-OFFLINE.md").decode()


def test_a_platform_the_wheels_do_not_exist_for_is_named_with_the_requirement(
    offline: Path, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    with pytest.raises(ProjectError) as info:
        export_project(
            folder,
            tmp_path / "dist",
            with_deps=True,
            target=BundleTarget(("macosx_11_0_arm64",), "3.12"),
        )
    message = str(info.value)
    assert "cannot be turned into a wheel for Python 3.12 on macosx_11_0_arm64" in message


def test_a_pin_to_another_version_of_packflow_is_refused_before_pip_runs(
    offline: Path, tmp_path: Path
) -> None:
    folder = project(tmp_path, "packflow==9.9.9\n")
    with pytest.raises(ProjectError, match=r"pins packflow==9\.9\.9, but the bundle carries"):
        export_project(folder, tmp_path / "dist", with_deps=True)


def test_a_bundle_without_a_requirement_on_packflow_is_refused(
    offline: Path, tmp_path: Path
) -> None:
    folder = project(tmp_path, "numpy\n")
    with pytest.raises(ProjectError, match="does not require packflow"):
        export_project(folder, tmp_path / "dist", with_deps=True, validate=False)


def test_a_project_holding_its_own_wheels_folder_is_not_bundled_over_it(
    offline: Path, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    (folder / "wheels").mkdir()
    (folder / "wheels" / "mine.whl").write_bytes(b"x")
    with pytest.raises(ProjectError, match=r"holds wheels/mine\.whl"):
        export_project(folder, tmp_path / "dist", with_deps=True)


def test_export_with_deps_on_the_command_line_counts_the_wheels(
    offline: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "demo", "--with-deps"]) == 0
    out = capsys.readouterr().out
    wheels = len(list(offline.glob("*.whl")))
    assert f"wrote demo-0.1.0.zip (10 files, {wheels} wheels)" in out
    assert "pip install --no-index --find-links wheels" in out
