"""Offline bundles: the wheels a project needs, this library's own included.

``packflow export --with-deps`` puts a ``wheels/`` folder into the archive: this
library's wheel, built from the installed copy (it is not on a public index: the
``packflow`` there is another project), and wheels for every other requirement, made by
pip for the running Python and platform or the ones named. The archive then installs with
``pip install --no-index --find-links wheels -r requirements.txt`` on a machine that
has no package index at all.

The same module decides what a project's requirement on this library must look like
(:func:`packflow_requirement_problems`): only an exact pin (``packflow==0.1.0``) or a
direct reference (``packflow @ file:...``) can never be met by the other project.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import attrs

from packflow.exceptions import ProjectError

__all__ = [
    "OTHER_PACKFLOW_RELEASES",
    "BundleTarget",
    "build_own_wheel",
    "collect_wheels",
    "packflow_requirement_problems",
    "pinned_requirement",
]

#: The releases of the unrelated project that holds the name ``packflow`` on PyPI. A
#: requirement this library writes must match none of them, nor any later one.
OTHER_PACKFLOW_RELEASES: tuple[str, ...] = ("0.3.0", "0.4.0", "0.4.1")

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)\Z")
_CLAUSE = re.compile(r"\s*(===|==|~=|!=|<=|>=|<|>)\s*([^\s,;]+)\s*\Z")
# Fixed timestamps: the same installed copy always gives the same wheel, byte for byte.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _own_version() -> str:
    from packflow._version import package_version

    return package_version()


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirement(extras: Sequence[str] = ()) -> str:
    """This library's requirement line: ``packflow[extras]==<installed version>``.

    An exact pin, because the ``packflow`` on PyPI is another project (releases
    :data:`OTHER_PACKFLOW_RELEASES`) and a lower bound would install it.
    """
    chosen = f"[{','.join(extras)}]" if extras else ""
    return f"packflow{chosen}=={_own_version()}"


def _version_key(version: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def packflow_requirement_problems(path: str | os.PathLike[str]) -> list[str]:
    """Every line of a requirements file that could install another ``packflow``.

    A requirement on ``packflow`` passes when it is a direct reference (``packflow @
    file:...``) or an exact pin (``==`` without ``*``, or ``===``) to a version that the
    other project never released. Anything else (no version, ``>=``, ``~=``, a pin to
    one of :data:`OTHER_PACKFLOW_RELEASES`) is reported as ``"requirements.txt:N: ..."``
    with the line to write instead. A file that cannot be read gives no problems here
    (validation reports it).
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    problems: list[str] = []
    others = {_version_key(v) for v in OTHER_PACKFLOW_RELEASES}
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _NAME.match(line)
        if match is None or _normalized(match.group(1)) != "packflow":
            continue
        extras = [e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip()]
        rest = match.group(3).split(";", 1)[0].strip()
        if rest.startswith("@"):
            continue
        clauses = [c for c in rest.split(",") if c.strip()] if rest else []
        parsed = [_CLAUSE.match(c) for c in clauses]
        exact = (
            len(parsed) == 1
            and parsed[0] is not None
            and parsed[0].group(1) in ("==", "===")
            and "*" not in parsed[0].group(2)
        )
        if exact and parsed[0] is not None:
            key = _version_key(parsed[0].group(2))
            if key is None or key not in others:
                continue
        where = f"{file.name}:{number}"
        problems.append(
            f"{where}: {line!r} can install the unrelated project named packflow on PyPI "
            f"(releases {', '.join(OTHER_PACKFLOW_RELEASES)}); pin this library exactly: "
            f"{pinned_requirement(extras)}"
        )
    return problems


def pinned_versions(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """The ``(line number, version)`` of each exact ``packflow==`` pin in a file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    found: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        match = _NAME.match(line) if line and not line.startswith(("#", "-")) else None
        if match is None or _normalized(match.group(1)) != "packflow":
            continue
        clause = _CLAUSE.match(match.group(3).split(";", 1)[0])
        if clause is not None and clause.group(1) in ("==", "==="):
            found.append((number, clause.group(2)))
    return found


# --------------------------------------------------------------------------- own wheel


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def build_own_wheel(destination: str | os.PathLike[str]) -> Path:
    """Write this library's wheel, made from the installed copy, into ``destination``.

    The wheel holds the ``packflow`` package folder that is running (its templates and
    data included, caches left out) and the installed distribution's metadata (its
    dependencies, extras and the ``packflow`` command). Its bytes depend only on those
    files, so the same copy always gives the same wheel.

    Raises
    ------
    ProjectError
        When the running copy has no installed metadata (it was never ``pip
        install``-ed), or the wheel cannot be written.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("packflow")
    except PackageNotFoundError as exc:
        raise ProjectError(
            "cannot bundle this packflow: it has no installed metadata; install it first "
            "(pip install . from its source folder)"
        ) from exc
    metadata = dist.read_text("METADATA")
    if not metadata:
        raise ProjectError("cannot bundle this packflow: its installed METADATA is missing")
    version = dist.version
    package = Path(__file__).resolve().parent.parent
    info = f"packflow-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = Path(folder, name)
            relative = full.relative_to(package.parent).as_posix()
            entries.append((relative, full.read_bytes()))
    entries.append((f"{info}/METADATA", metadata.encode("utf-8")))
    entries.append(
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: packflow export\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
    )
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode("utf-8")))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode("utf-8")))
    target = Path(destination) / f"packflow-{version}-py3-none-any.whl"
    try:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
            for name, data in entries:
                item = zipfile.ZipInfo(name, date_time=_EPOCH)
                item.external_attr = 0o644 << 16
                item.compress_type = zipfile.ZIP_DEFLATED
                wheel.writestr(item, data)
    except OSError as exc:
        raise ProjectError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


# --------------------------------------------------------------------------- wheels


@attrs.frozen
class BundleTarget:
    """The Python and platform a bundle's wheels are for.

    Empty ``platforms`` and ``None`` ``python_version`` mean the running interpreter's;
    naming either asks pip for binary wheels of that target (``pip download
    --only-binary=:all: --platform ... --python-version ...``), since a wheel for
    another machine cannot be built here.
    """

    platforms: tuple[str, ...] = ()
    python_version: str | None = None

    @property
    def here(self) -> bool:
        return not self.platforms and self.python_version is None

    def describe(self) -> str:
        if self.here:
            import sysconfig

            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            return f"Python {python} on {sysconfig.get_platform()} (the exporting machine)"
        python = self.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        platforms = ", ".join(self.platforms) or "this platform"
        return f"Python {python} on {platforms}"


_PIP_FAILURES = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(
        r"Failed to build (?:installable wheels for some pyproject\.toml based "
        r"projects\s*\(?)?([^\s)]+)"
    ),
    re.compile(r"Failed building wheel for (\S+)"),
    re.compile(r"Invalid requirement: '?([^'\n]+)'?"),
    re.compile(r"Could not open requirements file: (.+)"),
)


def _pip_failure(output: str) -> str | None:
    for pattern in _PIP_FAILURES:
        found = pattern.search(output)
        if found is not None:
            return found.group(1).strip()
    return None


def collect_wheels(
    root: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    target: BundleTarget = BundleTarget(),
) -> list[Path]:
    """Put wheels for everything ``root/requirements.txt`` needs into ``destination``.

    This library's wheel comes from :func:`build_own_wheel`, offered to pip with
    ``--find-links`` so that the project's exact ``packflow==`` pin resolves to it (and
    to nothing on an index); the other requirements come from pip's usual sources (its
    cache, the configured indexes). For the running interpreter pip builds a wheel from
    any source distribution (``pip wheel``); for another target only binary wheels can
    be used (``pip download --only-binary=:all:``).

    Returns
    -------
    list[Path]
        The wheels, sorted by name.

    Raises
    ------
    ProjectError
        When the requirement on packflow could install another project or pins another
        version than this one, when pip cannot turn a requirement into a wheel (naming
        it), or when the bundle would hold another packflow than this one.
    """
    project = Path(root)
    requirements = project / "requirements.txt"
    problems = packflow_requirement_problems(requirements)
    if problems:
        raise ProjectError(f"not bundling {project}: {problems[0]}", problems)
    version = _own_version()
    for number, pinned in pinned_versions(requirements):
        if _version_key(pinned) != _version_key(version):
            raise ProjectError(
                f"not bundling {project}: requirements.txt:{number} pins packflow=={pinned}, "
                f"but the bundle carries this packflow, {version}; pin packflow=={version}"
            )
    out = Path(destination)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="packflow-own-") as own_dir:
        own = build_own_wheel(own_dir)
        command = [sys.executable, "-m", "pip"]
        if target.here:
            command += ["wheel", "--wheel-dir", str(out)]
        else:
            command += ["download", "--only-binary=:all:", "--dest", str(out)]
            for platform in target.platforms:
                command += ["--platform", platform]
            if target.python_version is not None:
                command += ["--python-version", target.python_version]
        command += [
            "--find-links",
            own_dir,
            "--requirement",
            str(requirements.resolve()),
            "--disable-pip-version-check",
            "--no-input",
        ]
        try:
            done = subprocess.run(
                command, cwd=project, capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise ProjectError(f"cannot run pip to bundle {project}: {exc}") from exc
        if done.returncode != 0:
            output = done.stderr + done.stdout
            culprit = _pip_failure(output)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            last = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
            if culprit is None:
                raise ProjectError(f"cannot bundle the requirements of {project}: pip: {last}")
            raise ProjectError(
                f"cannot bundle the requirements of {project}: {culprit} cannot be turned "
                f"into a wheel for {target.describe()} (pip: {last})",
                [culprit],
            )
        wheels = sorted(out.glob("*.whl"))
        others = sorted(p.name for p in out.iterdir() if p.suffix != ".whl")
        if others:
            raise ProjectError(
                f"cannot bundle the requirements of {project}: pip left files that are not "
                f"wheels: {', '.join(others)}"
            )
        ours = [w for w in wheels if _normalized(w.name.split("-", 1)[0]) == "packflow"]
        if not ours:
            raise ProjectError(
                f"not bundling {project}: requirements.txt does not require packflow, so the "
                f"bundle could not run; add {pinned_requirement()}"
            )
        if len(ours) != 1 or ours[0].read_bytes() != own.read_bytes():
            raise ProjectError(
                f"not bundling {project}: the packflow requirement resolved to "
                f"{', '.join(w.name for w in ours)}, not to this library's own wheel "
                f"{own.name}; pin {pinned_requirement()}"
            )
    return wheels
