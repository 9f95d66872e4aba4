"""What one request may cost the JobManager: a body over the limit is refused before it is
read, a request must arrive whole within its deadlines, connections are bounded, and
malformed input is answered 4xx, never 500."""

from __future__ import annotations

import pickle
import socket
import threading
import time

import pytest
from sage.kernel.client.jobmanager import JobManagerError
from sage.kernel.client.protocol import Submission
from sage.kernel.jobmanager.limits import MIB, LimitsError, ServerLimits

from tests.jobmanager.conftest import TOKEN
from tests.jobmanager.raw_http import (
    VERSION,
    error_of,
    exchange,
    read_answer,
    request_bytes,
    signed_headers,
)


def post(port: int, headers: dict[str, str], body: bytes = b"", target: str = "/v1/jobs"):
    return exchange(port, request_bytes("POST", target, headers, body))


def test_a_body_over_the_limit_is_refused_before_it_is_read(jobmanager):
    # The headers announce 256 MB and no byte of the body is sent: the answer comes anyway.
    headers = signed_headers(jobmanager.port, TOKEN, "POST", "/v1/jobs", digest="0" * 64)
    status, _, body = post(jobmanager.port, {**headers, "Content-Length": str(256 * MIB)})
    assert status == 413
    assert "takes at most 67108864" in error_of(body) and "SAGE_JOBMANAGER_MAX_BODY_BYTES" in error_of(body)


@pytest.mark.parametrize(("length", "status"), [("-1", 400), ("abc", 400), ("+5", 400), ("1e3", 400),
                                                (str(10**11), 413)])
def test_a_malformed_or_huge_content_length_is_a_4xx_at_once(jobmanager, length, status):
    headers = signed_headers(jobmanager.port, TOKEN, "POST", "/v1/jobs")
    answer, _, body = post(jobmanager.port, {**headers, "Content-Length": length})
    assert answer == status
    assert "Content-Length" in error_of(body) or "takes at most" in error_of(body)


def test_the_client_refuses_a_request_larger_than_the_server_takes(start_jobmanager):
    server = start_jobmanager(ServerLimits(max_body_bytes=1000))
    with pytest.raises(JobManagerError, match="takes at most 1000") as caught:
        server.client().submit("big", b"x" * 5000, {})
    assert caught.value.status == 413


def test_headers_dripped_a_byte_at_a_time_are_cut_off_at_the_deadline(start_jobmanager):
    server = start_jobmanager(ServerLimits(header_timeout_s=1.0))
    raw = request_bytes("GET", "/v1/health", VERSION) + b"X-Padding: " + b"a" * 100_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for byte in raw:  # a byte every 0.05 s: every single read is quick, the whole never ends
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # the server closed the connection: cut off
            time.sleep(0.05)
        else:
            pytest.fail("the server read 100 kB of dripped headers without cutting the client off")
        assert sock.recv(100) == b""


def test_a_body_dripped_a_byte_at_a_time_is_cut_off_at_its_deadline(start_jobmanager):
    server = start_jobmanager(ServerLimits(body_timeout_s=1.0))
    headers = signed_headers(server.port, TOKEN, "POST", "/v1/jobs", digest="0" * 64)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_bytes("POST", "/v1/jobs", {**headers, "Content-Length": "100000"}))
        answered = threading.Event()

        def drip() -> None:
            while not answered.is_set():
                try:
                    sock.send(b"x")
                except OSError:
                    return
                time.sleep(0.05)

        threading.Thread(target=drip, daemon=True).start()
        status, _, body = read_answer(sock)
        answered.set()
    assert status == 408
    assert "SAGE_JOBMANAGER_BODY_TIMEOUT_S" in error_of(body)


def test_idle_connections_cannot_hold_every_thread(start_jobmanager):
    server = start_jobmanager(ServerLimits(max_connections=4, header_timeout_s=1.0))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4)]
    try:
        time.sleep(0.2)  # let the server accept them
        status, _, body = exchange(server.port, request_bytes("GET", "/v1/health", VERSION))
        assert status == 503 and "SAGE_JOBMANAGER_MAX_CONNECTIONS" in error_of(body)
        for sock in idle:  # each is closed at its header deadline, freeing its thread
            assert sock.recv(100) == b""
    finally:
        for sock in idle:
            sock.close()
    assert server.client().health()["status"] == "ok"


def test_two_hundred_half_open_connections_leave_the_server_answering(start_jobmanager):
    server = start_jobmanager(ServerLimits(header_timeout_s=1.0))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(200)]
    try:
        for sock in idle:
            sock.recv(100)  # closed by the server: at its deadline, or at once past the limit
        assert server.client().health()["status"] == "ok"
    finally:
        for sock in idle:
            sock.close()


def submit_raw(server, submission) -> tuple[int, str]:
    body = pickle.dumps(submission)
    headers = signed_headers(server.port, TOKEN, "POST", "/v1/jobs", body)
    status, _, answer = post(server.port, {**headers, "Content-Length": str(len(body))}, body)
    return status, error_of(answer)


@pytest.mark.parametrize(("submission", "message"), [
    (Submission(name=["not", "a", "str"], config={}, plan=b""), "name must be a str, got list"),
    (Submission(name="job", config=None, plan=b""), "config must be a dict, got NoneType"),
    (Submission(name="job", config={"metrics": None}, plan=b""), "config['metrics'] must be a dict"),
    (Submission(name="job", config={"ray": {"address": 5}}, plan=b""), "config['ray']['address'] must be a str"),
    (Submission(name="job", config={"batch_size": "big"}, plan=b""), "config['batch_size'] must be an int"),
    ("not a submission", "not a SAGE job submission"),
])
def test_a_malformed_submission_is_a_400_naming_what_is_wrong(jobmanager, submission, message):
    status, error = submit_raw(jobmanager, submission)
    assert status == 400
    assert message in error


def test_an_unknown_metrics_reporter_is_a_400_naming_it(jobmanager):
    import cloudpickle
    from sage.kernel.api import LocalEnvironment
    from sage.kernel.plan.shipping import dumps_plan

    env = LocalEnvironment("reported")
    env.from_collection([1]).sink(lambda x: None)
    plan = dumps_plan(env.physical_plan())
    assert cloudpickle.loads(plan)  # a real plan: only the reporter is wrong
    status, error = submit_raw(jobmanager, Submission(
        name="reported", config={"metrics": {"reporters": ["no-such-reporter"]}}, plan=plan))
    assert status == 400
    assert "no-such-reporter" in error


@pytest.mark.parametrize("offset", ["-5", "abc", "1.5", "99999999999999999999999"])
def test_a_malformed_log_offset_is_a_400(start_jobmanager, offset):
    server = start_jobmanager(jobs=("logged",))
    job_id = server.manager.list()[0].job_id
    target = f"/v1/jobs/{job_id}/logs?offset={offset}"
    status, _, body = exchange(server.port, request_bytes("GET", target, signed_headers(
        server.port, TOKEN, "GET", target)))
    assert status == 400
    assert "offset" in error_of(body)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "BREW"])
def test_an_unknown_method_is_a_405(jobmanager, method):
    status, _, body = exchange(jobmanager.port, request_bytes(method, "/v1/jobs", VERSION))
    assert status == 405
    assert "use GET or POST" in error_of(body)


def test_limits_come_from_the_environment_and_a_wrong_one_names_its_variable():
    limits = ServerLimits.from_environment({"SAGE_JOBMANAGER_MAX_BODY_BYTES": "1024",
                                            "SAGE_JOBMANAGER_HEADER_TIMEOUT_S": "2.5"})
    assert (limits.max_body_bytes, limits.header_timeout_s) == (1024, 2.5)
    assert limits.max_connections == ServerLimits().max_connections
    with pytest.raises(LimitsError, match="SAGE_JOBMANAGER_MAX_CONNECTIONS='many'"):
        ServerLimits.from_environment({"SAGE_JOBMANAGER_MAX_CONNECTIONS": "many"})
    with pytest.raises(LimitsError, match="max_connections must be an int >= 1, got 0"):
        ServerLimits.from_environment({"SAGE_JOBMANAGER_MAX_CONNECTIONS": "0"})
