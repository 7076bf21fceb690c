"""Export: the project's files (``.gitignore`` honoured, secrets and caches left out) in
one ``{name}-{version}.zip``."""

from __future__ import annotations

import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import attrs

from packflow.projects.bundle import BundleTarget, collect_wheels, packflow_requirement_problems
from packflow.projects.manifest import REQUIRED_FILES, ProjectError, read_project_config
from packflow.projects.validate import ProjectReport, validate_project

__all__ = ["ExportResult", "LeftOut", "export_project", "list_project_files"]


# Folders that never belong in an archive: version control, caches, virtualenvs.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".ipynb_checkpoints",
        ".tox",
        ".nox",
        ".eggs",
        ".venv",
        "venv",
        "env",
        ".idea",
        ".vscode",
    }
)
_SKIP_FILES = frozenset(
    {
        ".DS_Store",
        "Thumbs.db",
        ".netrc",
        ".pypirc",
        ".npmrc",
        ".git-credentials",
        ".pgpass",
        ".boto",
        ".s3cfg",
        ".dockercfg",
        ".htpasswd",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        ".coverage",
    }
)
_SKIP_SUFFIXES = (".pyc", ".pyo", ".pem", ".key", ".p12", ".pfx", ".ppk", ".jks", ".keystore")
# Folders that hold credentials: cloud CLIs, SSH, GnuPG, container registries.
_SECRET_DIRS = frozenset({".ssh", ".aws", ".azure", ".gnupg", ".kube", ".docker"})
# Named like a cloud key file: `my-project-service-account.json`, `client_secret_1.json`.
_SECRET_NAME = re.compile(
    r"(?:.*service[-_]?account.*|client_secrets?(?:[-_.].*)?|credentials)\.json\Z", re.I
)
# `.env.example` and friends are templates meant to be shared, unlike `.env.local`.
_SHAREABLE_ENV = (".example", ".sample", ".template", ".dist")
#: How much of a ``.json`` file is read to recognise a service-account key.
_SNIFF_BYTES = 65536


def _always_skipped(name: str, is_dir: bool, path: Path, relpath: str = "") -> bool:
    if is_dir:
        return (
            name in _SKIP_DIRS
            or name in _SECRET_DIRS
            or relpath.endswith(".config/gcloud")
            or name.endswith(".egg-info")
            or (path / "pyvenv.cfg").is_file()
        )
    if name in _SKIP_FILES or name.endswith(_SKIP_SUFFIXES) or _SECRET_NAME.match(name):
        return True
    return name == ".env" or (name.startswith(".env.") and not name.endswith(_SHAREABLE_ENV))


def _secret_content(path: Path) -> str | None:
    """Why a file that is not named like a secret still is one, from its content."""
    if not path.name.lower().endswith(".json"):
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return None
    if b'"private_key"' in head and (b'"service_account"' in head or b'"client_email"' in head):
        return "a service-account key (it holds a private_key), a secret"
    return None


@attrs.frozen
class _IgnoreRule:
    base: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    def matches(self, relpath: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not relpath.startswith(self.base + "/"):
                return False
            relpath = relpath[len(self.base) + 1 :]
        return self.regex.fullmatch(relpath) is not None


def _glob_to_regex(pattern: str) -> str:
    if pattern == "**":
        # "/**" (anchored, everything below the .gitignore's folder) once "/" is gone.
        return ".*"
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif char == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif char == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _parse_gitignore(text: str, base: str) -> list[_IgnoreRule]:
    rules: list[_IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        # Trailing spaces are ignored unless escaped with a backslash.
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith(("\\!", "\\#")):
            # "\!" and "\#" escape a leading "!" or "#" that is part of the name.
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        if not anchored:
            line = "**/" + line
        rules.append(_IgnoreRule(base, re.compile(_glob_to_regex(line)), negate, dir_only))
    return rules


@attrs.frozen
class LeftOut:
    """A file :func:`export_project` left out for a reason the user should see.

    ``path`` is the file's path in the project (non-UTF-8 bytes shown as ``\\xNN``
    escapes) and ``reason`` says why: a link whose target is not exported, a link loop,
    a name an archive cannot hold.
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"left out {self.path}: {self.reason}"


def _shown(relpath: str) -> str:
    """A path for a message: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    return relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _name_problem(relpath: str) -> str | None:
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8, which an archive entry cannot hold portably"
    if "\\" in relpath:
        return "its name holds a backslash, which unzip on Windows reads as a folder separator"
    if any(part in ("", ".", "..") for part in relpath.split("/")):
        return "its name holds '.' or '..' as a path part"
    return None


@attrs.frozen
class _Scan:
    files: list[str]
    left_out: list[LeftOut]


def _walk(root: Path, extra_skip: Callable[[str], bool]) -> _Scan:
    rules: list[_IgnoreRule] = []
    real_root = root.resolve()
    files: list[str] = []
    links: list[tuple[str, Path]] = []
    left_out: list[LeftOut] = []

    def ignored(relpath: str, is_dir: bool) -> bool:
        verdict = False
        for rule in rules:
            if rule.matches(relpath, is_dir):
                verdict = not rule.negate
        return verdict

    def visit(folder: Path, rel: str) -> None:
        gitignore = folder / ".gitignore"
        if gitignore.is_file():
            rules.extend(_parse_gitignore(gitignore.read_text("utf-8", "replace"), rel))
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        for entry in entries:
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=False)
            if _always_skipped(entry.name, is_dir, path, relpath) or ignored(relpath, is_dir):
                continue
            if is_dir:
                visit(path, relpath)
                continue
            if extra_skip(relpath):
                continue
            problem = _name_problem(relpath)
            if problem is not None:
                left_out.append(LeftOut(_shown(relpath), problem))
            elif link:
                # A link may point anywhere (a home folder, a key, an ignored file): it is
                # kept only when its target is itself a file this export keeps.
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    what = "a link loop" if path.is_symlink() and _loops(path) else "a broken link"
                    left_out.append(LeftOut(_shown(relpath), what))
                    continue
                links.append((relpath, target))
            elif entry.is_file(follow_symlinks=False):
                secret = _secret_content(path)
                if secret is not None:
                    left_out.append(LeftOut(_shown(relpath), secret))
                    continue
                files.append(relpath)

    visit(root, "")
    kept = set(files)
    for relpath, target in links:
        try:
            inside = target.relative_to(real_root).as_posix()
        except ValueError:
            left_out.append(LeftOut(_shown(relpath), f"a link to {target}, outside the project"))
            continue
        if target.is_dir():
            left_out.append(
                LeftOut(
                    _shown(relpath),
                    f"a link to the folder {inside}; its files are exported under their own paths",
                )
            )
        elif inside in kept:
            files.append(relpath)
        else:
            left_out.append(
                LeftOut(
                    _shown(relpath),
                    f"a link to {inside}, which is not exported (ignored, or a secret)",
                )
            )
    return _Scan(sorted(files), left_out)


def _loops(path: Path) -> bool:
    seen: set[str] = set()
    current = path
    while current.is_symlink():
        key = str(current.absolute())
        if key in seen:
            return True
        seen.add(key)
        try:
            current = current.parent / os.readlink(current)
        except OSError:
            return False
        if len(seen) > 64:
            return True
    return False


def list_project_files(
    path: str | os.PathLike[str], *, exclude: Callable[[str], bool] | None = None
) -> list[str]:
    """The files :func:`export_project` puts in the archive, as sorted POSIX paths.

    Skips what ``.gitignore`` files ignore, version-control folders, caches,
    virtualenvs, compiled Python files and secrets (``.env``, private keys, ``.netrc``,
    cloud credentials, service-account keys). A symlink is kept only when its target is a
    file that is kept itself; links that are not, link loops and names an archive cannot
    hold are left out (:func:`export_project` reports them). ``exclude`` can skip more
    (it receives each relative path).
    """
    return _walk(Path(path), exclude or (lambda _relpath: False)).files


@attrs.frozen
class ExportResult:
    """The archive :func:`export_project` wrote, the files it holds and what it left out.

    ``files`` are the project's files; ``wheels`` the bundled wheels (under ``wheels/``
    in the archive, empty without ``with_deps``); ``left_out`` the files left out for a
    reason worth showing (links whose target is not exported, link loops, names an
    archive cannot hold).
    """

    archive: Path
    files: tuple[str, ...]
    report: ProjectReport | None
    wheels: tuple[str, ...] = ()
    left_out: tuple[LeftOut, ...] = ()


#: Where an offline bundle keeps its wheels and its install instructions.
WHEELS_DIR = "wheels"
INSTALL_FILE = "INSTALL-OFFLINE.md"


def _install_text(name: str, target_text: str, wheels: list[str]) -> str:
    listed = "\n".join(f"- `{wheel}`" for wheel in wheels)
    return f"""# Installing {name} on a machine without a package index

This archive carries every wheel the project needs in `{WHEELS_DIR}/`, packflow's own
included, built for {target_text}. From the folder this archive was unpacked into:

```console
$ python3 -m venv .venv
$ . .venv/bin/activate            # Windows: .venv\\Scripts\\activate
$ pip install --no-index --find-links {WHEELS_DIR} -r requirements.txt
$ packflow check .
$ packflow run . --input sample.jsonl
```

`--no-index` keeps pip off every package index: a requirement the archive does not
carry is an error, never a download. requirements.txt pins packflow exactly (the
`packflow` on PyPI is another project), and the only wheel that meets the pin is the
one in `{WHEELS_DIR}/`.

Wheels:

{listed}
"""


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def export_project(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    validate: bool = True,
    with_deps: bool = False,
    target: BundleTarget | None = None,
) -> ExportResult:
    """Zip a project into ``{name}-{version}.zip`` (hyphens in the name become ``_``).

    Parameters
    ----------
    path
        The project folder.
    output_dir
        Where to write the archive; the working directory by default.
    validate
        Run :func:`validate_project` first and refuse to export when it finds errors.
    with_deps
        Make an offline bundle: wheels for every requirement, this library's own
        included, under ``wheels/`` in the archive, and ``INSTALL-OFFLINE.md`` saying
        how to install them with ``pip install --no-index``.
    target
        The Python version and platforms of the bundle's wheels; the running
        interpreter's by default.

    Raises
    ------
    ConfigError
        When ``packflow.yaml`` is missing or broken.
    ProjectError
        When validation finds errors (``problems`` lists them); when
        ``requirements.txt`` requires packflow in a way that could install the unrelated
        ``packflow`` on PyPI (anything but an exact pin or a direct reference); with
        ``with_deps``, when a requirement cannot be turned into a wheel (naming it); or
        when the archive cannot be written.
    """
    root = Path(path)
    report: ProjectReport | None = None
    if validate:
        report = validate_project(root)
        if len(report.errors) == 1:
            only = report.errors[0]
            raise ProjectError(
                f"not exporting {root}: validation found an error: {only.subject}: {only.message}",
                report.errors,
            )
        if report.errors:
            lines = "\n".join(f"  {finding}" for finding in report.errors)
            raise ProjectError(
                f"not exporting {root}: validation found {len(report.errors)} errors:\n{lines}",
                report.errors,
            )
    config = read_project_config(root)
    problems = packflow_requirement_problems(root / "requirements.txt")
    if problems:
        raise ProjectError(f"not exporting {root}: {problems[0]}", problems)
    destination = Path(output_dir) if output_dir is not None else Path.cwd()
    archive = destination / config.archive_name
    old_archives = re.compile(re.escape(config.name.replace("-", "_")) + r"-[^/]*\.zip\Z")
    scan = _walk(root, lambda relpath: bool(old_archives.match(relpath)))
    files = scan.files
    needed = [*REQUIRED_FILES]
    if config.runtime.loader == "local":
        from packflow.loaders import LocalLoader

        module_file = LocalLoader(config.runtime.inference_backend, base_dir=root).path
        needed.append(module_file.relative_to(root).as_posix())
    left_out = [name for name in needed if name not in files and (root / name).is_file()]
    if left_out:
        raise ProjectError(
            f"not exporting {root}: the archive would leave out {', '.join(left_out)}, "
            "which the project needs to load; .gitignore (or a secret or cache rule) "
            "excludes it"
        )
    if with_deps:
        taken = [f for f in files if f == INSTALL_FILE or f.startswith(WHEELS_DIR + "/")]
        if taken:
            raise ProjectError(
                f"not bundling {root}: the project holds {taken[0]}, where the bundle puts "
                f"its wheels and {INSTALL_FILE}; rename or .gitignore it"
            )
    try:
        destination.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="packflow-export-") as work:
            wheels: list[Path] = []
            if with_deps:
                wheels = collect_wheels(
                    root, Path(work, WHEELS_DIR), target=target or BundleTarget()
                )
            _write_archive(archive, root, files, config.name, wheels, target or BundleTarget())
    except OSError as exc:
        raise ProjectError(f"cannot write {archive}: {exc.strerror or exc}") from exc
    return ExportResult(
        archive,
        tuple(files),
        report,
        wheels=tuple(f"{WHEELS_DIR}/{wheel.name}" for wheel in wheels),
        left_out=tuple(scan.left_out),
    )


def _write_archive(
    archive: Path,
    root: Path,
    files: list[str],
    name: str,
    wheels: list[Path],
    target: BundleTarget,
) -> None:
    # Written next to the target and renamed, so a failed export leaves no broken zip.
    # Opened with mode 0o666 (less the umask), as any file the user writes: mkstemp's
    # 0600 would make the archive unreadable to the group that is meant to receive it.
    temp_name = archive.with_name(f".{archive.name}.{os.getpid()}.part")
    handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zipped,
        ):
            for relpath in files:
                zipped.write(root / relpath, relpath)
            if wheels:
                names = [wheel.name for wheel in wheels]
                install = _install_text(name, target.describe(), names)
                item = zipfile.ZipInfo(INSTALL_FILE, date_time=time.localtime()[:6])
                item.external_attr = (0o666 & ~_umask()) << 16
                item.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(item, install)
                for wheel in wheels:
                    # Wheels are zips already: stored, not deflated again.
                    zipped.write(wheel, f"{WHEELS_DIR}/{wheel.name}", zipfile.ZIP_STORED)
        os.replace(temp_name, archive)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
