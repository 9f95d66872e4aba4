"""Where SAGE keeps per-user files: ``~/.sage``, or ``$SAGE_HOME`` when set.

The job folders and (``cluster_state``) what a started cluster leaves there, the token
included: the layer the cluster tools, the JobManager and its clients all stand on.
"""

from __future__ import annotations

import os
from pathlib import Path


def sage_home() -> Path:
    return Path(os.environ.get("SAGE_HOME") or Path.home() / ".sage").expanduser()


def jobs_dir() -> Path:
    return sage_home() / "jobs"
