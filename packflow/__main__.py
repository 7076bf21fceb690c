"""``python -m packflow``: the same command line as the ``packflow`` script."""

from __future__ import annotations

from packflow.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
