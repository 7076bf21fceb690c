"""Packflow projects: a folder with ``packflow.yaml``, its code and its documentation.

One module per job, in layers (each imports only those above it in this list):

- :mod:`~packflow.projects.manifest`: ``packflow.yaml`` as :class:`ProjectConfig`
  (read, checked, written) and the project's file names; no user code, no loaders;
- :mod:`~packflow.projects.scaffold`: :func:`create_project` and the templates;
- :mod:`~packflow.projects.validate`: :func:`validate_project` (loads the backend
  through :mod:`packflow.loaders`, the only part that runs the project's code);
- :mod:`~packflow.projects.bundle`: offline bundles (this library's wheel, the wheels
  of a project's requirements) and what a requirement on packflow must look like;
- :mod:`~packflow.projects.export`: :func:`export_project`, the ``.zip`` archive;
- :mod:`~packflow.projects.packflow_project`: :class:`PackflowProject`, the original
  Packflow's object over all four.

The names below are imported from their module when first used, so that reading a
manifest (as the loaders do) does not import validation and the loaders with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packflow.projects.export import ExportResult, export_project, list_project_files
    from packflow.projects.manifest import (
        DEFAULT_SAMPLE_FILE,
        PROJECT_FILE,
        RECOMMENDED_FILES,
        REQUIRED_FILES,
        ProjectConfig,
        ProjectError,
        ProjectExistsError,
        RuntimeSettings,
        archive_name,
        check_project_name,
        dump_project_config,
        find_project_file,
        read_project_config,
    )
    from packflow.projects.packflow_project import PackflowProject
    from packflow.projects.scaffold import create_project
    from packflow.projects.validate import (
        Finding,
        ProjectReport,
        read_jsonl_samples,
        validate_project,
    )

#: Public name -> the module of this package that defines it.
_HOMES = {
    "DEFAULT_SAMPLE_FILE": "manifest",
    "PROJECT_FILE": "manifest",
    "RECOMMENDED_FILES": "manifest",
    "REQUIRED_FILES": "manifest",
    "ProjectConfig": "manifest",
    "ProjectError": "manifest",
    "ProjectExistsError": "manifest",
    "RuntimeSettings": "manifest",
    "archive_name": "manifest",
    "check_project_name": "manifest",
    "dump_project_config": "manifest",
    "find_project_file": "manifest",
    "read_project_config": "manifest",
    "create_project": "scaffold",
    "PackflowProject": "packflow_project",
    "Finding": "validate",
    "ProjectReport": "validate",
    "read_jsonl_samples": "validate",
    "validate_project": "validate",
    "ExportResult": "export",
    "export_project": "export",
    "list_project_files": "export",
}

__all__ = [
    "DEFAULT_SAMPLE_FILE",
    "PROJECT_FILE",
    "RECOMMENDED_FILES",
    "REQUIRED_FILES",
    "ExportResult",
    "Finding",
    "PackflowProject",
    "ProjectConfig",
    "ProjectError",
    "ProjectExistsError",
    "ProjectReport",
    "RuntimeSettings",
    "archive_name",
    "check_project_name",
    "create_project",
    "dump_project_config",
    "export_project",
    "find_project_file",
    "list_project_files",
    "read_jsonl_samples",
    "read_project_config",
    "validate_project",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
