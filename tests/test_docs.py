"""Every ```python block in README.md and docs/*.md runs, so the docs cannot rot.

The blocks of one page run in order in one namespace (a fresh module), with a temporary
directory as the working directory.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_every_docs_page_has_runnable_examples() -> None:
    missing = [p.name for p in PAGES if p.parent.name == "docs" and not python_blocks(p)]
    assert not missing, f"docs pages without a python example: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKEND_CONFIG_FILE_PATH", raising=False)
    name = "docs_" + re.sub(r"\W", "_", page.stem)
    module = types.ModuleType(name)
    module.__file__ = str(page)
    monkeypatch.setitem(sys.modules, name, module)
    # A page may load a project (its `inference` module) or add to sys.path: none of it
    # may leak into the tests that run after it.
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    try:
        for line, code in python_blocks(page):
            # Pad so that tracebacks and file:line in errors point at the page's own lines.
            compiled = compile("\n" * (line - 1) + code, str(page), "exec")
            exec(compiled, module.__dict__)
    finally:
        for leaked in set(sys.modules) - before:
            module_file = getattr(sys.modules[leaked], "__file__", None) or ""
            if module_file.startswith(str(tmp_path)):
                del sys.modules[leaked]
