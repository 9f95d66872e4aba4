"""The JobManager refuses requests without the cluster token and clients of another version."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import PROTOCOL_VERSION

pytestmark = pytest.mark.integration


def post_garbage(port: int, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", data=b"\x80not a pickle",
                                     method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]


def test_a_wrong_token_is_refused_before_the_body_is_read(cluster):
    status, error = post_garbage(cluster.jobmanager_port, {"X-Sage-Protocol": str(PROTOCOL_VERSION),
                                                          "Authorization": "Bearer wrong"})
    assert status == 401
    assert "wrong cluster token" in error


def test_a_missing_token_is_refused(cluster):
    status, _ = post_garbage(cluster.jobmanager_port, {"X-Sage-Protocol": str(PROTOCOL_VERSION)})
    assert status == 401


def test_the_right_token_reaches_the_deserialiser(cluster):
    status, error = post_garbage(cluster.jobmanager_port, {"X-Sage-Protocol": str(PROTOCOL_VERSION),
                                                          "Authorization": f"Bearer {cluster.token}"})
    assert status == 400
    assert "could not be read" in error


def test_the_client_reports_a_wrong_token(cluster):
    client = JobManagerClient(port=cluster.jobmanager_port, token="not-the-token")
    with pytest.raises(JobManagerError, match="wrong cluster token") as caught:
        client.jobs()
    assert caught.value.status == 401


def test_a_client_of_another_protocol_version_gets_a_clear_error(cluster):
    status, error = post_garbage(cluster.jobmanager_port, {"X-Sage-Protocol": "0",
                                                          "Authorization": f"Bearer {cluster.token}"})
    assert status == 426
    assert "client speaks SAGE JobManager protocol 0, this JobManager speaks 1" in error
