"""Where SAGE keeps per-user files: ``~/.sage``, or ``$SAGE_HOME`` when set."""

from __future__ import annotations

import os
from pathlib import Path


def sage_home() -> Path:
    return Path(os.environ.get("SAGE_HOME") or Path.home() / ".sage").expanduser()


def jobs_dir() -> Path:
    return sage_home() / "jobs"
