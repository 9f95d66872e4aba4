"""A real OpenAI-compatible chat server on 127.0.0.1 that answers every call after a fixed latency,
and notes from its own side how each call ended: answered, or its client closed the connection
while the server was still working on it (how the tests see a call cancelled upstream)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWERED = "answered"
CLIENT_CLOSED = "client closed"


class SlowChatServer(ThreadingHTTPServer):
    """``POST /v1/chat/completions`` answered after ``latency_s`` (``stream: true``: one chunk, then
    ``[DONE]``); ``calls`` lists each call's question and how it ended, once it has."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, latency_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.started: list[str] = []  # questions, as their calls arrive
        self.calls: list[tuple[str, str]] = []  # (question, ANSWERED | CLIENT_CLOSED), as calls end

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def ended(self, question: str) -> str | None:
        """How the call that asked ``question`` ended, or None while it runs (or never came)."""
        with self.lock:
            return next((how for asked, how in self.calls if asked == question), None)

    def wait_ended(self, question: str, timeout_s: float = 30) -> str | None:
        deadline = time.monotonic() + timeout_s
        while (how := self.ended(question)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return how

    def wait_started(self, question: str, timeout_s: float = 30) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if question in self.started:
                    return True
            time.sleep(0.02)
        return False


class _Handler(BaseHTTPRequestHandler):
    server: SlowChatServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        question = str(body.get("messages", [{}])[-1].get("content", ""))
        with self.server.lock:
            self.server.started.append(question)
        how = CLIENT_CLOSED if self._client_closed_within(self.server.latency_s) else ANSWERED
        if how == ANSWERED:
            try:
                self._answer(body, question)
            except (BrokenPipeError, ConnectionResetError):
                how = CLIENT_CLOSED
        with self.server.lock:
            self.server.calls.append((question, how))

    def _client_closed_within(self, wait_s: float) -> bool:
        """Whether the client closes the connection before ``wait_s`` has passed."""
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
        return False

    def _answer(self, body: dict[str, Any], question: str) -> None:
        text = f"echo: {question}"
        common = {"id": "chatcmpl-slow", "created": int(time.time()), "model": body.get("model", "slow")}
        if body.get("stream"):
            chunks = [{**common, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                      {**common, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
            data = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
            self._send(data.encode(), "text/event-stream")
            return
        reply = {**common, "object": "chat.completion",
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
        self._send(json.dumps(reply).encode(), "application/json")

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def slow_chat_server(latency_s: float) -> Iterator[SlowChatServer]:
    server = SlowChatServer(latency_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
