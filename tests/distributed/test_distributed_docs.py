"""docs/distributed.md's job example runs as written on a real cluster.

The page uses the default ports (JobManager 19001, Ray client 10001); the session's cluster
runs on others so that a developer's own cluster is left alone, so those two numbers are
the only thing changed before the block runs.
"""

from __future__ import annotations

import pytest

from tests.docs_blocks import runnable

pytestmark = pytest.mark.integration


def test_the_job_example_runs_on_the_cluster(cluster, tmp_path, monkeypatch, capsys):
    (block,) = runnable("distributed.md")
    code = (block.code.replace("port=19001", f"port={cluster.jobmanager_port}")
            .replace("ray://localhost:10001", f"ray://localhost:{cluster.client_port}"))
    assert code != block.code
    monkeypatch.chdir(tmp_path)
    exec(compile("\n" * block.line + code, block.page, "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2"
