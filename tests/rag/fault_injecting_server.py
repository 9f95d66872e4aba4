"""A fault-injecting OpenAI-compatible chat server, for tests only.

It exists for failures a real server cannot be made to produce on demand: HTTP 429 and 500,
and a request that hangs. Requests whose prompt contains a marker follow that marker's script
of actions ("429", "500", "400", "hang", "ok"), one action per request; everything else is
answered after ``delay_s`` with an echo of the question. It also counts requests and the peak
number in flight, which is how the tests see ``max_concurrency`` at work.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultInjectingServer:
    """Serves ``POST /v1/chat/completions`` on 127.0.0.1 with scripted faults."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.scripts: dict[str, list[str]] = {}
        self.requests = 0
        self.statuses: dict[int, int] = {}
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
            self.requests = self.peak_in_flight = 0

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _action(self, prompt: str) -> str:
        with self._lock:
            self.requests += 1
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

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
                action = server._action(prompt)
                status = 200
                try:
                    if action == "hang":
                        server._stopping.wait(60)
                        status = 0
                        return
                    if action.isdigit():
                        status = int(action)
                        headers = {"Retry-After": "0"} if status == 429 else None
                        self._send(status, {"error": {"message": f"injected fault {status}", "type": "fault",
                                                      "code": status}}, headers)
                        return
                    time.sleep(server.delay_s)
                    question = prompt.rsplit("Question:", 1)[-1].split("\n")[0].strip()
                    self._send(200, {
                        "id": f"chatcmpl-{server.requests}", "object": "chat.completion",
                        "created": int(time.time()), "model": body.get("model", "test"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": f"echo: {question}"}}],
                        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 2,
                                  "total_tokens": len(prompt.split()) + 2},
                    })
                finally:
                    server._done(status)

        return Handler
