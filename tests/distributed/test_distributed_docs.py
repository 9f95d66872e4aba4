"""docs/distributed.md's job example runs as written on a real cluster.

The page uses the default ports (JobManager 19001, Ray client 10001); the session's cluster
runs on others so that a developer's own cluster is left alone, so those two numbers are
the only thing changed before the block runs.
"""

from __future__ import annotations

import attrs
import pytest

from tests.docs_blocks import run_blocks, runnable

pytestmark = pytest.mark.integration


def test_the_job_example_runs_on_the_cluster(cluster, tmp_path, monkeypatch):
    (block,) = runnable("distributed.md")
    code = (block.code.replace("port=19001", f"port={cluster.jobmanager_port}")
            .replace("ray://localhost:10001", f"ray://localhost:{cluster.client_port}"))
    assert code != block.code
    monkeypatch.chdir(tmp_path)
    _, out = run_blocks([attrs.evolve(block, code=code)])
    assert out.strip().splitlines()[-1] == "2"
