"""Shared test setup."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Timing is measured by benchmarks/, never by tests: a slow example on a loaded 2-core CI
# machine must not fail a property. On CI the examples are derandomized so that a run is
# reproducible; locally every run explores new examples.
settings.register_profile("packflow", deadline=None)
settings.register_profile("packflow-ci", deadline=None, derandomize=True)
settings.load_profile("packflow-ci" if os.environ.get("CI") else "packflow")


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in ``tmp_path``, without an override file, and forget modules imported from it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKEND_CONFIG_FILE_PATH", raising=False)
    saved_path = list(sys.path)
    yield tmp_path
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]
