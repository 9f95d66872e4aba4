"""Client and JobManager prove to each other that they hold the cluster token without sending
it: whoever answers on the JobManager's port learns nothing it can replay, and a client uses
nothing from a server that has not proved it holds the token."""

from __future__ import annotations

import json
import pickle
import socket
import threading
from pathlib import Path

import pytest
from sage.kernel.client.handshake import body_digest, new_nonce, sign_response
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import PICKLE_TYPE, PROTOCOL_VERSION, SIGNATURE_HEADER

from tests.jobmanager.conftest import TOKEN
from tests.jobmanager.raw_http import error_of, exchange, request_bytes, signed_headers
from tests.services import sage


class Impostor:
    """A real socket server on a free port that is not the JobManager: it records every byte it
    is sent and answers every request with ``answer(target) -> (status, content type, body)``
    (a nonce for ``/v1/nonce``, so that a client goes on to send its signed request)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head = data.split(b"\r\n\r\n")[0].decode("latin-1")
                length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                               if line.lower().startswith("content-length:")), 0)
                while len(data) - len(head) - 4 < length and (chunk := conn.recv(65536)):
                    data += chunk
                self.received.append(data)
                target = head.split()[1]
                if target == "/v1/nonce":
                    status, kind, body = 200, "application/json", json.dumps(
                        {"nonce": new_nonce(), "max_body_bytes": 1 << 30}).encode()
                else:
                    status, kind, body = self.answer(target)
                conn.sendall(f"HTTP/1.0 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                             f"{SIGNATURE_HEADER}: {'0' * 64}\r\n\r\n".encode() + body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def impostor():
    servers = []

    def start(answer=lambda target: (200, "application/json", b'{"jobs": []}')) -> Impostor:
        servers.append(Impostor(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_sage_job_list_sends_an_impostor_nothing_it_can_replay(impostor, jobmanager, sage_home):
    fake = impostor()
    listed = sage("job", "list", "--port", str(fake.port), home=sage_home, env={"SAGE_TOKEN": TOKEN})
    assert listed.returncode == 1
    assert "did not prove that it holds the cluster token" in listed.stderr
    assert fake.received, "the CLI never reached the impostor"
    everything = b"".join(fake.received)
    assert TOKEN.encode() not in everything
    # The signed request it captured is refused by the real JobManager (same token): its
    # nonce was never issued there.
    signed = next(request for request in fake.received if b"X-Sage-Signature" in request)
    status, _, body = exchange(jobmanager.port, signed)
    assert status == 401
    assert "nonce was not issued here" in error_of(body)


class WritesAFile:
    """A pickle that, when loaded, creates ``path``: what a malicious server would send."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("status", [200, 500])
def test_a_result_from_an_impostor_is_never_unpickled(impostor, tmp_path, status):
    marker = tmp_path / "the-server-ran-code-here"
    payload = pickle.dumps(WritesAFile(marker))
    fake = impostor(lambda target: (status, PICKLE_TYPE, payload))
    client = JobManagerClient("127.0.0.1", fake.port, token=TOKEN, timeout_s=10)
    with pytest.raises(JobManagerError) as caught:
        client.result("job-1")
    assert not marker.exists()
    if status == 200:
        assert "did not prove that it holds the cluster token" in str(caught.value)
        assert "Nothing it sent was used" in str(caught.value)


def test_a_replayed_request_is_refused_by_the_jobmanager(jobmanager):
    raw = request_bytes("GET", "/v1/jobs", signed_headers(jobmanager.port, TOKEN, "GET", "/v1/jobs"))
    first, headers, body = exchange(jobmanager.port, raw)
    assert first == 200
    # The answer carries the server's proof over this request's client nonce and the body.
    client_nonce = raw.split(b"X-Sage-Client-Nonce: ")[1].split(b"\r\n")[0].decode()
    assert headers[SIGNATURE_HEADER] == sign_response(TOKEN, client_nonce, 200, headers["Content-Type"], body)
    again, _, body = exchange(jobmanager.port, raw)
    assert again == 401
    assert "is spent or has expired" in error_of(body)


def test_a_signed_request_cannot_be_altered(jobmanager):
    headers = signed_headers(jobmanager.port, TOKEN, "GET", "/v1/jobs")
    status, _, body = exchange(jobmanager.port, request_bytes("POST", "/v1/shutdown", headers))
    assert status == 401
    assert "wrong cluster token" in error_of(body)
    body_sent = b"other body"
    headers = signed_headers(jobmanager.port, TOKEN, "POST", "/v1/jobs", b"the signed body")
    status, _, body = exchange(jobmanager.port, request_bytes(
        "POST", "/v1/jobs", {**headers, "Content-Length": str(len(body_sent))}, body_sent))
    assert status == 400
    assert "does not match its X-Sage-Body-SHA256" in error_of(body)
    assert body_digest(body_sent) != headers["X-Sage-Body-SHA256"]


def test_a_bearer_token_alone_is_refused(jobmanager):
    status, _, body = exchange(jobmanager.port, request_bytes("GET", "/v1/jobs", {
        "X-Sage-Protocol": str(PROTOCOL_VERSION), "Authorization": f"Bearer {TOKEN}"}))
    assert status == 401
    assert "missing proof of the cluster token" in error_of(body)


def test_the_client_and_the_jobmanager_with_one_token_talk(start_jobmanager):
    server = start_jobmanager(jobs=("one", "two"))
    assert sorted(job["name"] for job in server.client().jobs()) == ["one", "two"]


def test_a_client_with_another_token_gets_a_clear_error(jobmanager):
    with pytest.raises(JobManagerError, match="wrong cluster token") as caught:
        jobmanager.client(token="not-the-token").jobs()
    assert caught.value.status == 401
