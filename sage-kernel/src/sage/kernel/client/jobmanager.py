"""The JobManager client used by RemoteEnvironment and ``sage job``; standard library only."""

from __future__ import annotations

import http.client
import json
import pickle
from typing import Any
from urllib.parse import quote

from sage.kernel.api.job import JobResult
from sage.kernel.client.handshake import (
    body_digest,
    is_nonce,
    new_nonce,
    same,
    sign_request,
    sign_response,
)
from sage.kernel.client.protocol import (
    BODY_DIGEST_HEADER,
    CLIENT_NONCE_HEADER,
    DEFAULT_HOST,
    DEFAULT_PORT,
    JSON_TYPE,
    NONCE_PATH,
    PICKLE_TYPE,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    SERVER_NONCE_HEADER,
    SIGNATURE_HEADER,
    Submission,
)
from sage.kernel.errors import SageError
from sage.kernel.home.cluster_state import read_token


class JobManagerError(SageError):
    """The JobManager refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_message(payload: bytes, reason: str) -> str:
    """The ``error`` of a JSON error answer, else its text; never anything but text."""
    try:
        return str(json.loads(payload)["error"])
    except (ValueError, KeyError, TypeError):
        return payload.decode("utf-8", "replace")[:500] or reason


class JobManagerClient:
    """Calls one JobManager at ``host:port``, proving it holds the cluster token without
    sending it, and using only answers whose proof shows the server holds it too."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.token = read_token(token)
        self.timeout_s = timeout_s

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _exchange(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, str, str, str | None, bytes]:
        """(status, reason, content type, signature header, body) of one HTTP exchange."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request(method, target, body=body, headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION),
                                                                  **headers})
            response = connection.getresponse()
            payload = response.read()
            return (response.status, response.reason, response.getheader("Content-Type", ""),
                    response.getheader(SIGNATURE_HEADER), payload)
        except (OSError, http.client.HTTPException) as exc:
            raise JobManagerError(
                f"cannot reach the JobManager at {self.address} ({exc or type(exc).__name__}); is the "
                "cluster running? (`sage cluster status`, `sage cluster start --head`)") from None
        finally:
            connection.close()

    def _refused(self, status: int, reason: str, payload: bytes) -> JobManagerError:
        return JobManagerError(f"JobManager at {self.address}: {_error_message(payload, reason)}", status)

    def _server_nonce(self, body_bytes: int) -> str:
        """A fresh nonce from the server; refuses here a body larger than the server takes."""
        status, reason, _, _, payload = self._exchange("GET", NONCE_PATH, None, {})
        if status != 200:
            raise self._refused(status, reason, payload)
        try:
            answer = json.loads(payload)
            nonce, limit = answer["nonce"], answer["max_body_bytes"]
        except (ValueError, KeyError, TypeError):
            nonce = limit = None
        if not isinstance(nonce, str) or not is_nonce(nonce) or not isinstance(limit, int):
            raise JobManagerError(f"the server at {self.address} answered {NONCE_PATH} with no valid nonce; "
                                  "it is not a SAGE JobManager of this version")
        if body_bytes > limit:
            raise JobManagerError(f"the request is {body_bytes} bytes; the JobManager at {self.address} takes "
                                  f"at most {limit} (SAGE_JOBMANAGER_MAX_BODY_BYTES on the head); a large "
                                  "plan usually holds data that belongs in a file the job reads", 413)
        return nonce

    def _request(self, method: str, target: str, body: bytes | None = None,
                 content_type: str = JSON_TYPE, auth: bool = True) -> tuple[str, bytes]:
        if not auth:
            status, reason, answer_type, _, payload = self._exchange(method, target, body, {})
            if status >= 400:
                raise self._refused(status, reason, payload)
            return answer_type, payload
        if not self.token:
            raise JobManagerError(
                "no cluster token: start a cluster with `sage cluster start --head`, or set "
                "SAGE_TOKEN (or config['token']) to the token in the head's SAGE_HOME/cluster/token")
        server_nonce, client_nonce = self._server_nonce(len(body or b"")), new_nonce()
        digest = body_digest(body or b"")
        headers = {"Content-Type": content_type, SERVER_NONCE_HEADER: server_nonce,
                   CLIENT_NONCE_HEADER: client_nonce, BODY_DIGEST_HEADER: digest,
                   SIGNATURE_HEADER: sign_request(self.token, method, target, server_nonce, client_nonce, digest)}
        status, reason, answer_type, signature, payload = self._exchange(method, target, body, headers)
        if not same(sign_response(self.token, client_nonce, status, answer_type, payload), signature):
            if status >= 400:  # e.g. 401 from a JobManager with another token: its message is only shown
                raise self._refused(status, reason, payload)
            raise JobManagerError(
                f"the server at {self.address} did not prove that it holds the cluster token (its answer "
                f"to {method} {target} carries no valid {SIGNATURE_HEADER}); it is not this cluster's "
                "JobManager, or the tokens differ. Nothing it sent was used; check the host and port "
                "(`sage cluster status`) and the token")
        if status >= 400:
            raise self._refused(status, reason, payload)
        return answer_type, payload

    def _json(self, method: str, target: str, auth: bool = True, options: dict[str, Any] | None = None) -> Any:
        body = json.dumps(options).encode() if options else None
        return json.loads(self._request(method, target, body, auth=auth)[1])

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/v1/health", auth=False)

    def cluster(self) -> dict[str, Any]:
        return self._json("GET", "/v1/cluster")

    def submit(self, name: str, plan_bytes: bytes, config: dict[str, Any], resume_from: str | None = None,
               allow_dropped_state: bool = False) -> dict[str, Any]:
        """Run a pipeline; ``resume_from``: a savepoint or checkpoint folder on the head it starts from."""
        body = pickle.dumps(Submission(name=name, config=config, plan=plan_bytes, resume_from=resume_from,
                                       allow_dropped_state=allow_dropped_state))
        return json.loads(self._request("POST", "/v1/jobs", body, PICKLE_TYPE)[1])

    def serve(self, name: str, plan_bytes: bytes, config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """Run a pipeline and serve it over HTTP on the head with ``settings`` (``ServeSettings``
        as a dict); the job's record, plus ``serving``: the ``host`` and ``port`` it listens on."""
        body = pickle.dumps(Submission(name=name, config=config, plan=plan_bytes, serve=settings))
        return json.loads(self._request("POST", "/v1/serve", body, PICKLE_TYPE)[1])

    def jobs(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/jobs")["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def metrics(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}/metrics")

    def graph(self, job_id: str) -> dict[str, str]:
        """The job's plan with its latest counts: ``text``, ``mermaid`` and ``dot``."""
        return self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}/graph")

    def logs(self, job_id: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """A page of the job's log from byte ``offset``: ``text``, ``offset`` of the next page,
        the log's ``size``, and ``done`` once the job has ended and the page reaches the end.
        A page holds at most ``limit`` bytes, and never more than the JobManager's page size."""
        query = f"offset={offset}" + (f"&limit={limit}" if limit is not None else "")
        return self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}/logs?{query}")

    def stop(self, job_id: str, savepoint: str | None = None) -> dict[str, Any]:
        """Stop the job; with ``savepoint`` (an absolute path on the head, a folder that does not
        exist yet) the job's state is written there once everything read has been processed."""
        options = {"savepoint": savepoint} if savepoint is not None else None
        return self._json("POST", f"/v1/jobs/{quote(job_id, safe='')}/stop", options=options)

    def resume(self, job_id: str, path: str | None = None) -> dict[str, Any]:
        """Run the ended job's pipeline again as a new job from ``path`` (a savepoint or
        checkpoint folder on the head; by default its savepoint, else its newest checkpoint);
        the new job's record."""
        options = {"from": path} if path is not None else None
        return self._json("POST", f"/v1/jobs/{quote(job_id, safe='')}/resume", options=options)

    def result(self, job_id: str) -> JobResult:
        """The job's result, unpickled only once the server has proved it holds the token."""
        answer_type, body = self._request("GET", f"/v1/jobs/{quote(job_id, safe='')}/result")
        if answer_type != PICKLE_TYPE:
            raise JobManagerError(f"JobManager at {self.address} answered the result of {job_id} with "
                                  f"{answer_type!r}, not {PICKLE_TYPE}")
        return pickle.loads(body)

    def shutdown(self) -> dict[str, Any]:
        return self._json("POST", "/v1/shutdown")
