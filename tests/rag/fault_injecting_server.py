"""A fault-injecting OpenAI-compatible chat server, for tests only.

It exists for failures a real server cannot be made to produce on demand: HTTP 429 and 500,
a request that hangs, and answers that are not chat completions. Requests whose prompt
contains a marker follow that marker's script of actions, one action per request, then "ok":

- "ok": an echo of the question, after ``delay_s``;
- a status such as "429", "500" or "400": that status with an OpenAI-style error body (429
  with ``Retry-After: 0``); "429 retry-after=2" sends ``Retry-After: 2``;
- "hang": no answer at all, until the client hangs up or the server stops;
- "drip": a complete answer, one byte every 0.2 s (a minute or so in all);
- "no-choices": 200 with a chat completion whose ``choices`` is empty;
- "error-body": 200 with ``{"error": {...}}`` instead of a completion;
- "html": 200 with an HTML page (``text/html``), as a proxy's welcome page would be.

It also counts requests, the peak number in flight (how the tests see ``max_concurrency``
at work) and when each request arrived (how they see the waits between retries).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultInjectingServer:
    """Serves ``POST /v1/chat/completions`` on 127.0.0.1 with scripted faults."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.scripts: dict[str, list[str]] = {}
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.arrivals: list[float] = []  # time.monotonic() of each request, in order
        self.bodies: list[dict[str, Any]] = []  # the JSON body of each request, in order
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, marker: str, *actions: str) -> None:
        """Requests whose prompt contains ``marker`` get ``actions`` in turn, then "ok"."""
        self.scripts[marker] = list(actions)

    def reset(self) -> None:
        with self._lock:
            self.scripts.clear()
            self.statuses.clear()
            self.arrivals.clear()
            self.bodies.clear()
            self.requests = self.peak_in_flight = 0

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Whether ``condition()`` came true within ``timeout_s`` (checked every 50 ms)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _action(self, prompt: str) -> str:
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            for marker, actions in self.scripts.items():
                if marker in prompt and actions:
                    return actions.pop(0)
        return "ok"

    def _done(self, status: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None,
                      drip_s: float = 0.0) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8" if isinstance(body, str)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not drip_s:
                    self.wfile.write(data)
                    return
                for byte in data:
                    if server._stopping.wait(drip_s):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def _client_gone(self, wait_s: float) -> bool:
                """Whether the client closed the connection (checked for up to ``wait_s``)."""
                readable, _, _ = select.select([self.connection], [], [], wait_s)
                try:
                    return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    return True

            def _completion(self, body: dict[str, Any], prompt: str, choices: bool = True) -> dict[str, Any]:
                question = prompt.rsplit("Question:", 1)[-1].split("\n")[0].strip()
                return {
                    "id": f"chatcmpl-{server.requests}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "test"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"echo: {question}"}}] if choices else [],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 2,
                              "total_tokens": len(prompt.split()) + 2},
                }

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.bodies.append(body)
                prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
                action = server._action(prompt)
                status = 200
                try:
                    if action == "hang":
                        status = 0
                        deadline = time.monotonic() + 60
                        while time.monotonic() < deadline and not server._stopping.is_set():
                            if self._client_gone(0.1):
                                return
                        return
                    code, _, option = action.partition(" retry-after=")
                    if code.isdigit():
                        status = int(code)
                        headers = {"Retry-After": option or "0"} if status == 429 else None
                        self._send(status, {"error": {"message": f"injected fault {status}", "type": "fault",
                                                      "code": status}}, headers)
                        return
                    if action == "no-choices":
                        self._send(200, self._completion(body, prompt, choices=False))
                    elif action == "error-body":
                        self._send(200, {"error": {"message": "the model is overloaded", "type": "server_error",
                                                   "code": 503}})
                    elif action == "html":
                        self._send(200, "<html><head><title>Welcome to nginx!</title></head>"
                                        "<body><h1>Welcome to nginx!</h1></body></html>")
                    elif action == "drip":
                        self._send(200, self._completion(body, prompt), drip_s=0.2)
                    else:
                        time.sleep(server.delay_s)
                        self._send(200, self._completion(body, prompt))
                except (BrokenPipeError, ConnectionResetError):
                    status = 0  # the client gave up and closed the connection
                finally:
                    server._done(status)

        return Handler
