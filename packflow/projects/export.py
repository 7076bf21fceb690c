"""Export: the project's files (``.gitignore`` honoured, secrets and caches left out) in
one ``{name}-{version}.zip``."""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from packflow.projects.manifest import REQUIRED_FILES, ProjectError, read_project_config
from packflow.projects.validate import ProjectReport, validate_project

__all__ = ["ExportResult", "export_project", "list_project_files"]


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
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        ".coverage",
    }
)
_SKIP_SUFFIXES = (".pyc", ".pyo", ".pem", ".key", ".p12", ".pfx")
# `.env.example` and friends are templates meant to be shared, unlike `.env.local`.
_SHAREABLE_ENV = (".example", ".sample", ".template", ".dist")


def _always_skipped(name: str, is_dir: bool, path: Path) -> bool:
    if is_dir:
        return name in _SKIP_DIRS or name.endswith(".egg-info") or (path / "pyvenv.cfg").is_file()
    if name in _SKIP_FILES or name.endswith(_SKIP_SUFFIXES):
        return True
    return name == ".env" or (name.startswith(".env.") and not name.endswith(_SHAREABLE_ENV))


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


def _walk(root: Path, extra_skip: Callable[[str], bool]) -> Iterator[str]:
    rules: list[_IgnoreRule] = []

    def ignored(relpath: str, is_dir: bool) -> bool:
        verdict = False
        for rule in rules:
            if rule.matches(relpath, is_dir):
                verdict = not rule.negate
        return verdict

    def visit(folder: Path, rel: str) -> Iterator[str]:
        gitignore = folder / ".gitignore"
        if gitignore.is_file():
            rules.extend(_parse_gitignore(gitignore.read_text("utf-8", "replace"), rel))
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        for entry in entries:
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                # A link may point anywhere (a home folder, a key); only keep links that
                # stay inside the project.
                target = path.resolve()
                if root.resolve() not in target.parents or not target.is_file():
                    continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if _always_skipped(entry.name, is_dir, path) or ignored(relpath, is_dir):
                continue
            if is_dir:
                yield from visit(path, relpath)
            elif not extra_skip(relpath):
                yield relpath

    yield from visit(root, "")


def list_project_files(
    path: str | os.PathLike[str], *, exclude: Callable[[str], bool] | None = None
) -> list[str]:
    """The files :func:`export_project` puts in the archive, as sorted POSIX paths.

    Skips what ``.gitignore`` files ignore, version-control folders, caches,
    virtualenvs, compiled Python files and secrets (``.env``, private keys, ``.netrc``).
    ``exclude`` can skip more (it receives each relative path).
    """
    root = Path(path)
    return sorted(_walk(root, exclude or (lambda _relpath: False)))


@attrs.frozen
class ExportResult:
    """The archive :func:`export_project` wrote and the files it holds."""

    archive: Path
    files: tuple[str, ...]
    report: ProjectReport | None


def export_project(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    validate: bool = True,
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

    Raises
    ------
    ConfigError
        When ``packflow.yaml`` is missing or broken.
    ProjectError
        When validation finds errors (``problems`` lists them) or the archive cannot be
        written.
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
    destination = Path(output_dir) if output_dir is not None else Path.cwd()
    archive = destination / config.archive_name
    old_archives = re.compile(re.escape(config.name.replace("-", "_")) + r"-[^/]*\.zip\Z")
    files = list_project_files(root, exclude=lambda relpath: bool(old_archives.match(relpath)))
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
    try:
        destination.mkdir(parents=True, exist_ok=True)
        # Written next to the target and renamed, so a failed export leaves no broken zip.
        handle, temp_name = tempfile.mkstemp(suffix=".zip.part", dir=destination)
        os.close(handle)
        try:
            with zipfile.ZipFile(temp_name, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
                for relpath in files:
                    zipped.write(root / relpath, relpath)
            os.replace(temp_name, archive)
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
    except OSError as exc:
        raise ProjectError(f"cannot write {archive}: {exc}") from exc
    return ExportResult(archive, tuple(files), report)
