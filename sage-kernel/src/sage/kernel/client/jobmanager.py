"""The JobManager client used by RemoteEnvironment and ``sage job``; standard library only."""

from __future__ import annotations

import json
import pickle
import urllib.error
import urllib.request
from typing import Any

from sage.kernel.api.job import JobResult
from sage.kernel.client.protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    JSON_TYPE,
    PICKLE_TYPE,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    TOKEN_HEADER,
    Submission,
)
from sage.kernel.errors import SageError
from sage.kernel.home.cluster_state import read_token


class JobManagerError(SageError):
    """The JobManager refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class JobManagerClient:
    """Calls one JobManager at ``host:port`` with the cluster token."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.token = read_token(token)
        self.timeout_s = timeout_s

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _request(self, method: str, path: str, body: bytes | None = None,
                 content_type: str = JSON_TYPE, auth: bool = True) -> tuple[str, bytes]:
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Content-Type": content_type}
        if auth:
            if not self.token:
                raise JobManagerError(
                    "no cluster token: start a cluster with `sage cluster start --head`, or set "
                    "SAGE_TOKEN (or config['token']) to the token in the head's SAGE_HOME/cluster/token")
            headers[TOKEN_HEADER] = f"Bearer {self.token}"
        request = urllib.request.Request(f"http://{self.address}{path}", data=body, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                message = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                message = payload.decode("utf-8", "replace") or exc.reason
            raise JobManagerError(f"JobManager at {self.address}: {message}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JobManagerError(
                f"cannot reach the JobManager at {self.address} ({reason}); is the cluster running? "
                "(`sage cluster status`, `sage cluster start --head`)") from None

    def _json(self, method: str, path: str, auth: bool = True) -> Any:
        return json.loads(self._request(method, path, auth=auth)[1])

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/v1/health", auth=False)

    def cluster(self) -> dict[str, Any]:
        return self._json("GET", "/v1/cluster")

    def submit(self, name: str, plan_bytes: bytes, config: dict[str, Any]) -> dict[str, Any]:
        body = pickle.dumps(Submission(name=name, config=config, plan=plan_bytes))
        return json.loads(self._request("POST", "/v1/jobs", body, PICKLE_TYPE)[1])

    def jobs(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/jobs")["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def metrics(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/metrics")

    def logs(self, job_id: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """A page of the job's log from byte ``offset``: ``text``, ``offset`` of the next page,
        the log's ``size``, and ``done`` once the job has ended and the page reaches the end.
        A page holds at most ``limit`` bytes, and never more than the JobManager's page size."""
        query = f"offset={offset}" + (f"&limit={limit}" if limit is not None else "")
        return self._json("GET", f"/v1/jobs/{job_id}/logs?{query}")

    def stop(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/stop")

    def result(self, job_id: str) -> JobResult:
        _, body = self._request("GET", f"/v1/jobs/{job_id}/result")
        return pickle.loads(body)

    def shutdown(self) -> dict[str, Any]:
        return self._json("POST", "/v1/shutdown")
