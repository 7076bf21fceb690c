"""Scaffolding: ``create_project`` writes a new project folder from the templates."""

from __future__ import annotations

import datetime
import importlib.resources
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs

from packflow.projects.manifest import (
    DEFAULT_SAMPLE_FILE,
    PROJECT_FILE,
    VERSION_CHARS,
    ProjectConfig,
    ProjectError,
    ProjectExistsError,
    RuntimeSettings,
    check_project_name,
    dump_project_config,
)

__all__ = ["TEMPLATES", "create_project"]

_TEMPLATES = "templates"
#: The shared files (README, validate.py, ...) of every template.
_BASE = "project"
# Template file -> file written into the new project.
_SCAFFOLD: tuple[tuple[str, str], ...] = (
    ("inference.py.tmpl", "inference.py"),
    ("validate.py.tmpl", "validate.py"),
    ("test_inference.py.tmpl", "test_inference.py"),
    ("README.md.tmpl", "README.md"),
    ("MODEL_CARD.md.tmpl", "MODEL_CARD.md"),
    ("requirements.txt.tmpl", "requirements.txt"),
    ("sample.jsonl.tmpl", DEFAULT_SAMPLE_FILE),
    ("gitignore.tmpl", ".gitignore"),
    ("train.py.tmpl", "train.py"),
)


@attrs.frozen
class _Template:
    """A project template: its folder of files that replace or add to the shared ones,
    the modules it needs installed, and the model file ``train.py`` writes, if any."""

    folder: str
    needs: tuple[tuple[str, str], ...] = ()
    #: Binary files copied as they are (a small model).
    copied: tuple[str, ...] = ()
    #: Written by running the project's ``train.py`` once it is created.
    trained: str | None = None


TEMPLATES: dict[str, _Template] = {
    "blank": _Template(_BASE),
    "onnx": _Template("onnx", needs=(("onnxruntime", "packflow[onnx]"),), copied=("model.onnx",)),
    "sklearn": _Template(
        "sklearn",
        needs=(("sklearn", "packflow[sklearn]"), ("joblib", "packflow[sklearn]")),
        trained="model.joblib",
    ),
    "xgboost": _Template(
        "xgboost", needs=(("xgboost", "packflow[xgboost]"),), trained="model.json"
    ),
    "lightgbm": _Template(
        "lightgbm", needs=(("lightgbm", "packflow[lightgbm]"),), trained="model.txt"
    ),
}


def _template_file(folder: str, name: str) -> Any:
    for where in (folder, _BASE):
        found = importlib.resources.files("packflow") / _TEMPLATES / where / name
        if found.is_file():
            return found
    return None


def _packflow_version() -> str:
    from packflow._version import package_version

    return package_version()


def create_project(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    description: str = "",
    version: str = "0.1.0",
    maintainers: Sequence[str] = (),
    force: bool = False,
    template: str = "blank",
) -> Path:
    """Scaffold a new project folder ``directory/name`` and return its path.

    The project holds ``packflow.yaml``, ``requirements.txt``, an ``inference.py`` with a
    working pipeline, ``README.md``, ``MODEL_CARD.md``, an empty ``LICENSE.txt``,
    ``validate.py``, ``test_inference.py``, ``sample.jsonl`` and a ``.gitignore``.

    Parameters
    ----------
    name
        The project name: a letter, then letters, digits, ``-`` and ``_``.
    directory
        Where to create the folder; the working directory by default.
    template
        ``"blank"`` (a small pipeline to edit), ``"onnx"`` (a prebuilt ONNX classifier
        with a small model, needs ``packflow[onnx]``), ``"sklearn"`` (a scikit-learn
        estimator trained on the spot, needs ``packflow[sklearn]``), ``"xgboost"`` or
        ``"lightgbm"`` (a booster trained on the spot, saved in the library's own format;
        needs ``packflow[xgboost]`` or ``packflow[lightgbm]``). ``requirements.txt`` pins
        this library exactly (``packflow==<version>``): the ``packflow`` on PyPI is
        another project, which a looser requirement would install.
    force
        Write into a folder that already exists (even an empty one is refused without
        it); files that already exist there are kept as they are, only the missing ones
        are written.

    Raises
    ------
    ProjectError
        When the name is invalid or the files cannot be written;
        :class:`ProjectExistsError` (also a ``FileExistsError``) when the folder exists
        and ``force`` is not given.
    """
    check_project_name(name)
    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise ProjectError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    missing = sorted({extra for module, extra in chosen.needs if not find_spec(module)})
    if missing:
        raise ProjectError(
            f"the {template} template needs {', '.join(missing)}: "
            f"pip install {' '.join(repr(m) for m in missing)}"
        )
    if not VERSION_CHARS.match(version):
        raise ProjectError(f"invalid version {version!r}: use letters, digits and . + ! - _")
    target = Path(directory if directory is not None else Path.cwd()) / name
    if target.exists() and not target.is_dir():
        raise ProjectError(f"cannot create project {name!r}: {target} is a file")
    if target.is_dir() and not force:
        # Even an empty folder: it may be one the user made for something else.
        contents = "is empty" if not any(target.iterdir()) else "is not empty"
        raise ProjectExistsError(
            f"cannot create project {name!r}: {target} already exists and {contents} "
            "(pass --force to write into it; files already there are kept)"
        )
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    config = ProjectConfig(
        name=name,
        version=version,
        description=description,
        maintainers=list(maintainers),
        runtime=RuntimeSettings(python_version=python_version),
        sample_inputs=DEFAULT_SAMPLE_FILE,
    )
    values = {
        "name": name,
        "title": name.replace("-", " ").replace("_", " ").strip().title(),
        "description": description or f"Inference code for {name}.",
        "version": version,
        "packflow_version": _packflow_version(),
        "python_version": python_version,
        "year": str(datetime.date.today().year),
    }
    # LICENSE.txt is empty on purpose: the license is the author's choice; validation
    # reminds them.
    files = {PROJECT_FILE: dump_project_config(config), "LICENSE.txt": ""}
    for source, filename in _SCAFFOLD:
        found = _template_file(chosen.folder, source)
        if found is None:
            continue
        text = found.read_text("utf-8")
        for key, value in values.items():
            text = text.replace("{{ " + key + " }}", value)
        files[filename] = text
    try:
        target.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            # With force, what the folder already holds is the user's work: keep it.
            if not (target / filename).exists():
                (target / filename).write_text(text, encoding="utf-8")
        for filename in chosen.copied:
            if not (target / filename).exists():
                data = _template_file(chosen.folder, filename)
                assert data is not None, filename
                (target / filename).write_bytes(data.read_bytes())
    except OSError as exc:
        raise ProjectError(
            f"cannot create project {name!r} in {target.parent}: {exc.strerror or exc}"
        ) from exc
    if chosen.trained is not None and not (target / chosen.trained).exists():
        _train(target, chosen.trained)
    return target


def _train(target: Path, model_file: str) -> None:
    # The project's own train.py, in a fresh interpreter: the model the user gets is the
    # one their script writes, with the libraries installed here.
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=target, capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not (target / model_file).is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ProjectError(
            f"created {target}, but `python train.py` failed to write {model_file}: "
            f"{lines[-1] if lines else f'exit code {done.returncode}'}"
        )
