"""How long ``import packflow`` takes against ``import numpy``, in fresh interpreters.

Each run starts a new interpreter with ``python -X importtime -c "import X"`` and reads
the cumulative time of the top-level module from its report (interpreter start-up is
left out). numpy and packflow runs alternate, so that a busy machine slows both alike;
the figure is the median of each, and their ratio (issue 13's goal: at most 1.3).

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


def import_time_us(module: str) -> int:
    """The cumulative import time of ``module`` in a fresh interpreter, in microseconds."""
    for _own, cumulative, name in import_report(module):
        if name.strip() == module:
            return cumulative
    raise RuntimeError(f"{module} does not appear in its own import report")


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
    numpy_times: list[int] = []
    packflow_times: list[int] = []
    import_time_us("packflow")  # warm the file system cache and the .pyc files
    for _ in range(args.runs):
        numpy_times.append(import_time_us("numpy"))
        packflow_times.append(import_time_us("packflow"))
    numpy_ms = statistics.median(numpy_times) / 1000
    packflow_ms = statistics.median(packflow_times) / 1000
    print(f"import numpy:    {numpy_ms:7.1f} ms (median of {args.runs} fresh interpreters)")
    print(f"import packflow: {packflow_ms:7.1f} ms (numpy included)")
    print(f"ratio packflow / numpy: {packflow_ms / numpy_ms:.2f} (goal: at most 1.30)")
    leaked = sorted(
        name.strip()
        for _own, _cumulative, name in import_report("packflow")
        if name.strip().split(".")[0] in ("yaml", "argparse", "importlib.metadata", "asyncio")
        or name.strip() in ("importlib.metadata", "packflow.cli", "packflow.projects")
    )
    print(f"lazy modules imported anyway: {', '.join(leaked) or 'none'}")


if __name__ == "__main__":
    main()
