"""``PackflowProject``: the original Packflow's object over a project folder.

Code written for the original (``PackflowProject.create(name)``, ``load_config()``,
``validate_required_files()``, ``export(output_directory=...)``) runs unchanged; each
method is a thin call into :mod:`packflow.projects`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from packflow.projects.manifest import PROJECT_FILE, ProjectConfig, ProjectError
from packflow.projects.manifest import read_project_config as _read_project_config

__all__ = ["PackflowProject"]


class PackflowProject:
    """A project folder: ``PackflowProject("path/to/project")``.

    ``base_dir`` is the folder, made absolute. Nothing is read until a method asks.

    Examples
    --------
    >>> project = PackflowProject.create("scorer")  # doctest: +SKIP
    >>> project.load_config().name  # doctest: +SKIP
    'scorer'
    >>> project.export(output_directory="dist")  # doctest: +SKIP
    PosixPath('.../dist/scorer-0.1.0.zip')
    """

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir).resolve()
        #: The warnings of the last :meth:`export` (the original's attribute).
        self.export_warnings: list[str] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__} @ {self.base_dir}"

    @property
    def has_packflow_config(self) -> bool:
        """Whether the folder holds a ``packflow.yaml``."""
        return (self.base_dir / PROJECT_FILE).is_file()

    @classmethod
    def create(
        cls,
        project_name: str,
        force: bool = False,
        template: str = "minimal",
        config_data: dict[str, Any] | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> PackflowProject:
        """Scaffold ``project_name`` in the working directory (or ``directory``).

        ``config_data`` may set ``description``, ``version`` and ``maintainers``.
        ``template`` is ``"minimal"`` (the original's name for ``"blank"``), ``"blank"``,
        ``"onnx"`` or ``"sklearn"``.

        Raises
        ------
        ProjectExistsError
            (a ``FileExistsError`` and a ``ProjectError``) when the folder exists and
            ``force`` is not given.
        ProjectError
            When the name, the template or ``config_data`` is invalid, or the files
            cannot be written.
        """
        from packflow.projects.scaffold import create_project

        # "minimal", the original's only template, is packflow's "blank".
        template = "blank" if template == "minimal" else template
        data = dict(config_data or {})
        data.pop("name", None)
        known = {"description", "version", "maintainers"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProjectError(
                f"config_data has unknown keys {unknown}; it may set {', '.join(sorted(known))}"
            )
        target = create_project(
            project_name,
            directory,
            description=str(data.get("description", "")),
            version=str(data.get("version", "0.1.0")),
            maintainers=list(data.get("maintainers", ())),
            force=force,
            template=template,
        )
        return cls(target)

    def load_config(self) -> ProjectConfig:
        """The project's ``packflow.yaml``, read and checked.

        Raises
        ------
        ConfigError
            When the file is missing or broken (the message names the file and key).
        """
        return _read_project_config(self.base_dir)

    def validate_required_files(
        self, verbose: bool = False, config: ProjectConfig | None = None
    ) -> tuple[list[str], list[str]]:
        """``(errors, warnings)`` about the project's files and ``packflow.yaml``.

        The project's code is not run (``validate_project(load_backend=True)`` and
        ``packflow validate`` also load the backend and run its samples). With
        ``verbose``, each finding is printed too. ``config`` is accepted for the
        original's signature; the file is read afresh.
        """
        from packflow.projects.validate import validate_project

        del config
        report = validate_project(self.base_dir, load_backend=False)
        errors = [f"{finding.subject}: {finding.message}" for finding in report.errors]
        warnings = [f"{finding.subject}: {finding.message}" for finding in report.warnings]
        if verbose:
            for finding in report.findings:
                sys.stdout.write(f"  {finding}\n")
        return errors, warnings

    def export(
        self, output_directory: str | os.PathLike[str] = ".", verbose: bool = False
    ) -> Path:
        """Zip the project into ``output_directory``; return the archive's path.

        As in the original, the files are checked first (:meth:`validate_required_files`)
        and the project's code is not run; its warnings are kept in ``export_warnings``.

        Raises
        ------
        ProjectError
            When the check finds errors (``problems`` lists them) or the archive cannot
            be written.
        ConfigError
            When ``packflow.yaml`` is missing or broken.
        """
        from packflow.projects.export import export_project

        errors, warnings = self.validate_required_files(verbose=verbose)
        if errors:
            lines = "\n".join(f"  {error}" for error in errors)
            raise ProjectError(f"not exporting {self.base_dir}:\n{lines}", errors)
        self.export_warnings = warnings
        result = export_project(self.base_dir, output_directory, validate=False)
        return result.archive.resolve()
