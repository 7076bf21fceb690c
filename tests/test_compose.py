"""Composition (``a >> b``), test doubles (``build(resources=...)``) and ``replace``.

Pipelines that must be found by reference (pickling, the CLI, packflow.yaml) are written
to a module in the test's own folder and imported from there, as a user's would be.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from packflow.project import create_project
from packflow.render import graph_edges, render_mermaid, render_text

pytestmark = pytest.mark.usefixtures("isolated_cwd")


def write_module(folder: Path, name: str, source: str) -> Any:
    """Write ``name.py`` into ``folder`` and import it (``isolated_cwd`` forgets it)."""
    (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return importlib.import_module(name)


def packflow_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


PARTS = """
    from typing import TypedDict

    from packflow import InferenceBackend, Pipeline, Records


    class Scaled(TypedDict):
        y: int


    scale = Pipeline("scale")


    @scale.initialize
    def factor(config) -> int:
        return 2


    @scale.execute
    def times(records: Records, factor: int) -> list[Scaled]:
        return [{"y": record["x"] * factor} for record in records]


    shift = Pipeline("shift")


    @shift.execute
    def plus_one(records: list[Scaled]) -> Records:
        return [{"z": record["y"] + 1} for record in records]


    class Labeller(InferenceBackend):
        def execute(self, records: Records) -> Records:
            return [{"label": "big" if r["z"] > 5 else "small"} for r in records]


    pipe = scale >> shift
    three = scale >> shift >> Labeller
"""


def pipeline_project(folder: Path, source: str, spec: str = "inference:pipe") -> Path:
    project = create_project("demo", folder, description="d", maintainers=["a@b.c"])
    (project / "inference.py").write_text(textwrap.dedent(source), encoding="utf-8")
    text = (project / "packflow.yaml").read_text()
    (project / "packflow.yaml").write_text(text.replace("inference:pipe", spec))
    return project


# -- the CLI on compositions -----------------------------------------------------------


def test_packflow_check_shows_the_parts_and_the_seam_of_a_composition(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "composition 'scale >> shift': 2 parts (scale, shift)" in out
    assert out.index("part 'scale'") < out.index("[execute `times`]") < out.index("part 'shift'")
    assert "list[Scaled]   (seam scale >> shift)" in out
    assert "resources of part 'scale'" in out
    assert "type-checks (2 parts, 2 stages, 1 initializer)" in out


def test_packflow_check_of_three_parts_with_a_class_backend(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS, spec="inference:three")

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "part 'Labeller'" in done.stdout
    assert "(seam shift >> Labeller)" in done.stdout
    assert "type-checks (3 parts, 3 stages, 1 initializer)" in done.stdout


def test_packflow_graph_draws_each_part_as_a_mermaid_subgraph(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("graph", str(project), "--format", "mermaid", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert '    subgraph p0 ["part scale"]' in lines
    assert '    subgraph p1 ["part shift"]' in lines
    assert '    p0_execute ==>|"list[Scaled] (seam)"| p1_preprocess' in lines
    assert "    p0_res_factor -.-> p0_execute" in lines
    assert '    p1_execute -->|"list[dict[str, Any]]"| outputs' in lines


def test_packflow_graph_text_of_a_composition(tmp_path: Path) -> None:
    project = pipeline_project(tmp_path, PARTS)

    done = packflow_cmd("graph", str(project), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "[execute `plus_one`]" in done.stdout


def test_packflow_check_of_a_broken_seam_names_both_functions(tmp_path: Path) -> None:
    broken = PARTS.replace("plus_one(records: list[Scaled])", "plus_one(records: list[int])")
    project = pipeline_project(tmp_path, broken)

    done = packflow_cmd("check", str(project), cwd=tmp_path)

    assert done.returncode == 1
    assert "stage `shift.execute` function `plus_one`" in done.stderr
    assert "from: stage `scale.execute` function `times`" in done.stderr
    assert "inference.py:" in done.stderr


def test_render_of_a_single_pipeline_has_no_part_headings(tmp_path: Path) -> None:
    module = write_module(tmp_path, "parts_single", PARTS)

    text = render_text(module.scale.check())

    assert text.startswith("pipeline 'scale'")
    assert "part '" not in text
    assert "subgraph" not in render_mermaid(module.scale.check())


def test_graph_edges_of_a_composition_join_the_parts_by_one_seam(tmp_path: Path) -> None:
    module = write_module(tmp_path, "parts_edges", PARTS)

    edges = graph_edges(module.three.check())

    seams = [(e.source, e.target, e.seam) for e in edges if e.seam]
    assert seams == [
        ("scale.execute", "shift.preprocess", "scale >> shift"),
        ("shift.execute", "Labeller.preprocess", "shift >> Labeller"),
    ]
    assert [e.source for e in edges].count("inputs") == 1
    assert [e.target for e in edges].count("outputs") == 1
