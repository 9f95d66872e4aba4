"""Random requests against a real JobManager service: whatever the method, target, headers,
Content-Length and body, the answer is never a 5xx and never hangs, and the service still
answers /v1/health afterwards. Signed examples carry a valid proof of the token, so the body
and the routes behind authentication are reached too."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sage.kernel.client.handshake import body_digest
from sage.kernel.jobmanager.limits import ServerLimits
from sage.kernel.jobmanager.records import JobRecord

from tests.jobmanager.conftest import TOKEN
from tests.jobmanager.raw_http import VERSION, read_answer, request_bytes, signed_headers

# /v1/cluster needs Ray and /v1/shutdown ends the service: left out of the targets.
SEGMENTS = ["v1", "jobs", "health", "nonce", "metrics", "logs", "result", "stop", "job-1", "..", "%2F", "%00",
            "%ff", "[/x]", ""]
LINE_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)

methods = st.one_of(st.sampled_from(["GET", "POST"]), st.sampled_from(["GET", "POST"]),
                    st.sampled_from(["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
                    st.text(st.characters(min_codepoint=ord("A"), max_codepoint=ord("Z")), min_size=1, max_size=12))
ROUTES = ["/v1/jobs", "/v1/jobs/job-1", "/v1/jobs/job-1/metrics", "/v1/jobs/job-1/logs", "/v1/jobs/job-1/result",
          "/v1/jobs/job-1/stop", "/v1/jobs/no-such-job", "/v1/health", "/v1/nonce"]
paths = st.one_of(st.sampled_from(ROUTES), st.sampled_from(ROUTES), st.lists(st.sampled_from(SEGMENTS), max_size=5).map(lambda parts: "/" + "/".join(parts)),
                  LINE_TEXT.map(lambda text: "/" + text))
queries = st.one_of(st.just(""), st.sampled_from(["offset=0", "offset=-5", "offset=abc", "offset=1&offset=2",
                                                  "offset=99999999999999999999"]), LINE_TEXT)
EXACT = "exact"  # the body's true length
lengths = st.one_of(st.just(EXACT), st.just(EXACT), st.none(), st.integers(-10, 10**12).map(str), LINE_TEXT,
                    st.sampled_from(["", "-1", "abc", "0x10", " 5", "1e3", "5, 6"]))
headers = st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
                          .filter(lambda name: name.lower() not in ("content-length", "host")), LINE_TEXT, max_size=4)


@pytest.fixture
def fuzzed_jobmanager(start_jobmanager):
    job = JobRecord(job_id="job-1", name="job-1", status="finished", submitted_at=time.time())
    return start_jobmanager(ServerLimits(header_timeout_s=2.0, body_timeout_s=0.5, max_body_bytes=4096),
                            jobs=(job,))


def send(port: int, raw: bytes) -> int:
    """Send the request, close our side, and read the answer's status (10 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before taking everything
        status, _, _ = read_answer(sock)
        return status


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, query=queries, extra=headers, length=lengths, body=st.binary(max_size=2048),
       signed=st.booleans(), digest_matches=st.booleans())
def test_no_request_gets_a_5xx_or_hangs(fuzzed_jobmanager, method, path, query, extra, length, body, signed,
                                        digest_matches):
    port = fuzzed_jobmanager.port
    target = f"{path}?{query}" if query else path
    if signed and "cluster" not in target and "shutdown" not in target and " " not in target:
        digest = body_digest(body if digest_matches else b"something else")
        sent_headers = {**extra, **signed_headers(port, TOKEN, method, target, digest=digest)}
    else:
        sent_headers = {**extra, **VERSION}
    if length is not None:
        sent_headers["Content-Length"] = str(len(body)) if length == EXACT else length
    status = send(port, request_bytes(method, target, sent_headers, body))
    assert 200 <= status < 500, (method, target, sent_headers, status)
    assert send(port, request_bytes("GET", "/v1/health", VERSION)) == 200
