"""Checkpoints and restarts on a real Ray cluster: a job whose operator raises, or whose
actor process is SIGKILLed, mid-stream restarts from its last checkpoint and ends with exactly
the results of an undisturbed run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from tests.checkpoint_cases import (
    assert_restarted_once_from_a_checkpoint,
    build,
    build_shared_collection,
    build_shared_documents,
    expected,
    outcome,
    where_failed,
    written,
)
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration


def config(tmp_path, interval_s: float = 0.2, attempts: int = 2, delay_s: float = 0.2):
    return {"checkpoint": {"interval_s": interval_s, "dir": str(tmp_path / "checkpoints")},
            "restart": {"attempts": attempts, "delay_s": delay_s}, "progress": False}


def test_an_operator_that_raises_mid_stream_restarts_from_the_checkpoint(ray_env, tmp_path):
    env = build(ray_env("ray restarts", **config(tmp_path)), tmp_path / "failed", tmp_path / "checkpoints")
    result = env.execute()
    assert (tmp_path / "failed").exists() and result.restarts == 1
    assert any("from checkpoint" in note for note in result.notes), result.notes
    assert outcome(result) == expected()


def test_a_shared_collection_restarts_on_ray_from_the_checkpoint(ray_env, tmp_path):
    """Instance 0's actor hands out the collection's ranges; the restarted attempt's new actors
    claim exactly the ranges neither instance had read at the checkpoint."""
    env = build_shared_collection(ray_env("ray shared", **config(tmp_path)), tmp_path / "failed", n=20000, at=16000)
    assert_restarted_once_from_a_checkpoint(env.execute(), tmp_path / "failed", 20000)


def test_shared_documents_restart_on_ray_from_the_checkpoint(ray_env, tmp_path):
    """Instance 0's actor hands out ranges of the documents; the restarted attempt's new actors
    claim exactly the documents neither instance had emitted at the checkpoint. Small batches:
    a barrier follows the chunks a file source's reader has buffered (a few batches), so that
    checkpoints complete well before the failure."""
    env = build_shared_documents(ray_env("ray documents", batch_size=64, **config(tmp_path, interval_s=0.05)),
                                 tmp_path / "documents", tmp_path / "failed", n=12000, at=9600)
    assert_restarted_once_from_a_checkpoint(env.execute(), tmp_path / "failed", 12000)


def test_a_sigkilled_actor_process_restarts_from_the_checkpoint(ray_env, tmp_path):
    env = build(ray_env("ray kill", **config(tmp_path)), tmp_path / "failed", tmp_path / "checkpoints", kill=True,
                jsonl=tmp_path / "out")
    result = env.execute()
    assert (tmp_path / "failed").exists() and result.restarts == 1
    # The cause is the lost actor, as the driver saw it or as a task sending to it did first,
    # named with its node (the id prefix `sage cluster status` shows, and the IP) and its pid.
    killed = "|".join(re.escape(f"on node {w['node_id'][:12]} at {w['ip']}, pid {w['pid']}")
                      for w in where_failed(tmp_path / "failed"))
    assert any(re.search(rf"^restart 1 of 2 from checkpoint \d+ after: operator chain '[^']*fail once[^']*' "
                         rf"\(instance [01] of 2, ({killed})\) was lost[ :(]", note)
               for note in result.notes), result.notes
    assert outcome(result) == expected()
    lines = written(tmp_path / "out")  # the exactly-once file: every running total once, no duplicate
    assert len(lines) == len(set(lines)) and Counter(lines) == expected()[0]


def raylet_of(node_id: str) -> int:
    """The process id of the raylet of Ray node ``node_id`` (every node of this test runs here)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(b"raylet") and f"--node_id={node_id}".encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no raylet process of node {node_id}")


def test_a_worker_node_whose_raylet_is_killed_takes_its_instances_down_and_the_job_restarts_without_it(
        cluster, ray_env, tmp_path):
    import ray
    from sage.kernel.runtime.ray.idle_workers import IDLE_WORKERS

    worker_home = Path(tempfile.mkdtemp(prefix="sgk", dir="/tmp"))
    joined = sage("cluster", "start", "--worker", f"--head-address=127.0.0.1:{cluster.client_port}",
                  "--jobmanager-port", str(cluster.jobmanager_port), "--num-cpus", "1",
                  home=worker_home, env={"SAGE_TOKEN": cluster.token})
    assert joined.returncode == 0, joined.stderr
    IDLE_WORKERS.clear()  # new workers, spread over both nodes (kept ones all live on the head)
    try:
        # Until Ray has declared the node dead (seconds), a restart may place an instance on it and
        # fail again at once: three attempts, 1 s apart and doubling, as the docs advise.
        settings = config(tmp_path, attempts=3, delay_s=1.0)
        env = build(ray_env("ray node lost", **settings), tmp_path / "held", tmp_path / "checkpoints",
                    pause=tmp_path / "go", jsonl=tmp_path / "out")
        handle = env.submit()
        wait_for(lambda: (tmp_path / "held").exists() or handle.status() != "running", timeout_s=120)
        assert handle.status() == "running", handle.wait().error  # held, a checkpoint being complete
        (worker,) = [node for node in ray.nodes()
                     if node["Alive"] and "node:__internal_head__" not in node["Resources"]]
        os.kill(raylet_of(worker["NodeID"]), signal.SIGKILL)  # the node's workers go down with it
        (tmp_path / "go").touch()
        result = handle.wait(timeout=300)
        assert result.status == "finished", result.error
        assert result.restarts >= 1 and any("from checkpoint" in note for note in result.notes), result.notes
        assert outcome(result) == expected()
        lines = written(tmp_path / "out")
        assert len(lines) == len(set(lines)) and Counter(lines) == expected()[0]
    finally:
        IDLE_WORKERS.clear()  # idle workers of this process may have lived on the dead node
        sage("cluster", "stop", home=worker_home)
        shutil.rmtree(worker_home, ignore_errors=True)
