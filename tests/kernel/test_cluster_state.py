"""What ``sage cluster start`` leaves in the SAGE home is read back by later SAGE versions."""

from __future__ import annotations

import json

from sage.kernel.home.cluster_state import cluster_dir, read_head_state


def test_a_head_started_before_the_supervisor_can_still_be_stopped(sage_home):
    """head.json of version 1 named the JobManager's own process group, which is what
    ``sage cluster stop`` now stops as the supervisor's group."""
    cluster_dir().mkdir(parents=True)
    (cluster_dir() / "head.json").write_text(json.dumps({
        "host": "127.0.0.1", "gcs_port": 6379, "client_port": 10001, "jobmanager_port": 19001,
        "temp_dir": "/tmp/x", "ray_pgid": 4100, "jobmanager_pid": 4200, "started_at": 1.0, "version": 1}))
    head = read_head_state()
    assert (head.ray_pgid, head.supervisor_pid, head.keep_jobs) == (4100, 4200, None)
