"""Helpers of the stream tests (not in conftest.py: the test modules import them, and
``conftest`` is a name every test folder uses)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: The mock cluster's group joins are slow with Kafka's default timeouts; a consumer that
#: was killed is noticed after the session timeout.
KAFKA_FAST = "session.timeout.ms=4000&heartbeat.interval.ms=200&max.poll.interval.ms=5000"


def packflow_run(args: Sequence[str], **popen: object) -> subprocess.Popen[str]:
    """``packflow run ARGS`` as a subprocess that can load ``stream_pipelines``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "packflow", "run", *args],
        env=env,
        cwd=str(HERE),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
