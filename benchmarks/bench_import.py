"""How long ``import packflow`` takes against ``import numpy``, in fresh interpreters.

Each run starts a new interpreter with ``python -X importtime -c "import ..."`` and reads
the cumulative times of the top-level modules from its report (interpreter start-up is
left out). The three kinds of run alternate, so that a busy machine slows all alike;
each figure is a median. Issue 13's goal: ``import packflow`` at most 1.3x
``import numpy``.

packflow imports numpy when a numpy pipeline or value first needs it, so two ratios
are printed: ``import packflow`` alone, and ``import numpy, packflow`` (what a program
that uses numpy anyway pays) against ``import numpy``.

    python benchmarks/bench_import.py [--runs 15]
    python benchmarks/bench_import.py --top 15     # the slowest modules of one import
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys


def import_report(module: str) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) for every module one fresh import loads."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.rstrip()))
    return rows


def import_time_us(statement_modules: str) -> int:
    """The summed cumulative import time of the top-level modules of
    ``import statement_modules`` in a fresh interpreter, in microseconds."""
    wanted = [name.strip() for name in statement_modules.split(",")]
    times = {
        name.strip(): cumulative for _own, cumulative, name in import_report(statement_modules)
    }
    missing = [name for name in wanted if name not in times]
    if missing:
        raise RuntimeError(f"{missing} do not appear in the import report")
    return sum(times[name] for name in wanted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=0, help="list the slowest modules")
    args = parser.parse_args()
    if args.top:
        rows = sorted(import_report("packflow"), key=lambda row: row[0], reverse=True)
        for own, cumulative, name in rows[: args.top]:
            print(f"{own / 1000:8.1f} ms self {cumulative / 1000:8.1f} ms total  {name.strip()}")
        return
    runs: dict[str, list[int]] = {"numpy": [], "packflow": [], "numpy, packflow": []}
    import_time_us("numpy, packflow")  # warm the file system cache and the .pyc files
    for _ in range(args.runs):
        for statement, times in runs.items():
            times.append(import_time_us(statement))
    ms = {statement: statistics.median(times) / 1000 for statement, times in runs.items()}
    print(f"median of {args.runs} fresh interpreters each")
    for statement, value in ms.items():
        print(f"  import {statement + ':':17} {value:7.1f} ms")
    print(f"ratio import packflow / import numpy:        {ms['packflow'] / ms['numpy']:.2f}")
    both = ms["numpy, packflow"] / ms["numpy"]
    print(f"ratio import numpy, packflow / import numpy: {both:.2f} (goal: at most 1.30)")
    imported = {name.strip() for _own, _cumulative, name in import_report("packflow")}
    lazy = ("yaml", "argparse", "asyncio", "numpy", "cattrs", "importlib.metadata")
    lazy += ("packflow.cli", "packflow.projects", "packflow.loaders", "packflow.checker")
    leaked = sorted(name for name in lazy if name in imported)
    print(f"lazy modules imported anyway: {', '.join(leaked) or 'none'}")


if __name__ == "__main__":
    main()
