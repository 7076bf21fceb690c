"""The import path ``packflow.project`` of earlier releases and of scaffolded projects.

Everything now lives in :mod:`packflow.projects` (one module per job: manifest,
scaffold, validate, export); this module re-exports its public names so that
``from packflow.project import create_project`` keeps working.
"""

from __future__ import annotations

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
from packflow.projects.validate import Finding, ProjectReport, read_jsonl_samples, validate_project

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
