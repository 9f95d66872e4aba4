"""The cluster's JobManager refuses requests without a proof of the cluster token, replayed
requests and clients of another version."""

from __future__ import annotations

import pytest
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import PROTOCOL_VERSION

from tests.jobmanager.raw_http import VERSION, error_of, exchange, request_bytes, signed_headers

pytestmark = pytest.mark.integration
GARBAGE = b"\x80not a pickle"


def post_garbage(port: int, headers: dict[str, str]) -> tuple[int, str]:
    status, _, body = exchange(port, request_bytes(
        "POST", "/v1/jobs", {**headers, "Content-Length": str(len(GARBAGE))}, GARBAGE))
    return status, error_of(body)


def test_a_wrong_token_is_refused_before_the_body_is_read(cluster):
    status, error = post_garbage(cluster.jobmanager_port,
                                 signed_headers(cluster.jobmanager_port, "wrong", "POST", "/v1/jobs", GARBAGE))
    assert status == 401
    assert "wrong cluster token" in error


def test_a_missing_proof_is_refused(cluster):
    status, error = post_garbage(cluster.jobmanager_port, {**VERSION, "Authorization": f"Bearer {cluster.token}"})
    assert status == 401
    assert "missing proof of the cluster token" in error


def test_the_right_token_reaches_the_deserialiser(cluster):
    status, error = post_garbage(cluster.jobmanager_port, signed_headers(
        cluster.jobmanager_port, cluster.token, "POST", "/v1/jobs", GARBAGE))
    assert status == 400
    assert "could not be read" in error


def test_a_replayed_request_is_refused(cluster):
    port = cluster.jobmanager_port
    raw = request_bytes("GET", "/v1/jobs", signed_headers(port, cluster.token, "GET", "/v1/jobs"))
    assert exchange(port, raw)[0] == 200
    status, _, body = exchange(port, raw)
    assert status == 401
    assert "is spent or has expired" in error_of(body)


def test_the_client_reports_a_wrong_token(cluster):
    client = JobManagerClient(port=cluster.jobmanager_port, token="not-the-token")
    with pytest.raises(JobManagerError, match="wrong cluster token") as caught:
        client.jobs()
    assert caught.value.status == 401


def test_a_client_of_another_protocol_version_gets_a_clear_error(cluster):
    status, error = post_garbage(cluster.jobmanager_port, {"X-Sage-Protocol": "1"})
    assert status == 426
    assert f"client speaks SAGE JobManager protocol 1, this JobManager speaks {PROTOCOL_VERSION}" in error
