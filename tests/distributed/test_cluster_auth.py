"""The cluster's Ray refuses a client without the cluster token: ``sage cluster start``
checks this after the head starts (``cluster/ray_auth.py``), and refuses a head that does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
from sage.kernel.cluster.errors import ClusterError
from sage.kernel.cluster.process_groups import stop_group
from sage.kernel.cluster.ray_auth import check_head_refuses_strangers

from tests.services import free_port

pytestmark = pytest.mark.integration

OPEN_GCS_PORT = 6395


def cluster_id(address: str, metadata: tuple = ()) -> bytes:
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        return stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=10, metadata=metadata).cluster_id


def test_the_clusters_ray_refuses_a_client_without_the_token(cluster):
    for metadata in ((), (("authorization", "Bearer not-the-token"),)):
        with pytest.raises(grpc.RpcError) as refused:
            cluster_id(cluster.gcs_address, metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    assert cluster_id(cluster.gcs_address, (("authorization", f"Bearer {cluster.token}"),))
    check_head_refuses_strangers(cluster.gcs_address, cluster.token)


def test_a_head_running_without_authentication_is_refused():
    """A Ray head started by hand with authentication off, which ``sage cluster start`` would
    stop and report."""
    temp = Path(tempfile.mkdtemp(prefix="sga", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with (temp / "ray-start.log").open("w") as out:
        ray_start = subprocess.Popen(  # a new session: the head's processes share its group
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
             f"--port={OPEN_GCS_PORT}", "--ray-client-server-port=10195", "--min-worker-port=20002",
             "--max-worker-port=29999", f"--dashboard-agent-listen-port={free_port()}", "--include-dashboard=false", "--num-cpus=0", "--disable-usage-stats",
             f"--temp-dir={temp}/ray"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert ray_start.wait(timeout=180) == 0, (temp / "ray-start.log").read_text()
        with pytest.raises(ClusterError) as refused:
            check_head_refuses_strangers(f"127.0.0.1:{OPEN_GCS_PORT}", "any-token")
        assert "answered a client that sent no token" in str(refused.value)
        assert "RAY_AUTH_MODE=disabled" in str(refused.value)
    finally:
        stop_group(ray_start.pid)
        shutil.rmtree(temp, ignore_errors=True)
