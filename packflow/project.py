"""The import path ``packflow.project`` of earlier releases and of scaffolded projects.

Everything now lives in :mod:`packflow.projects` (one module per job: manifest,
scaffold, validate, export); this module re-exports its public names so that
``from packflow.project import create_project`` keeps working.
"""

from __future__ import annotations

from packflow.projects import *  # noqa: F403 (the same public names, one list of them)
from packflow.projects import __all__ as __all__
