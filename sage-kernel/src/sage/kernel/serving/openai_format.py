"""The OpenAI API's request and response shapes: a request's query, and the completion bodies
and server-sent-event chunks built from a pipeline's answer."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sage.kernel.serving.requests import REQUEST_KEY


class BadRequest(ValueError):
    """A request body the endpoint cannot take; answered with 400 and this message."""


def chat_query(body: dict[str, Any]) -> str:
    """The content of the last user message of a chat completion request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"), "the last user message's content")
    raise BadRequest("'messages' has no message with role 'user'; the last user message is the query")


def completion_query(body: dict[str, Any]) -> str:
    """The prompt of a completion request (a str, or a list holding one str)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return _text(prompt, "'prompt'")


def _text(content: Any, what: str) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        content = "".join(part.get("text", "") for part in content
                          if isinstance(part, dict) and part.get("type") == "text")
    if not isinstance(content, str) or not content.strip():
        raise BadRequest(f"{what} must be a non-empty string")
    return content


def answer_text(record: Any) -> str:
    """The completion text of a pipeline's answer: its ``answer`` field, a str as it is, or
    the record as JSON."""
    if isinstance(record, dict) and "answer" in record:
        answer = record["answer"]
        return answer if isinstance(answer, str) else json.dumps(answer, default=str)
    if isinstance(record, str):
        return record
    return json.dumps(public_record(record), default=str)


def public_record(record: Any) -> Any:
    """The record without the request id the server added."""
    if isinstance(record, dict) and REQUEST_KEY in record:
        return {key: value for key, value in record.items() if key != REQUEST_KEY}
    return record


def usage_of(record: Any) -> dict[str, int]:
    usage = record.get("usage") if isinstance(record, dict) else None
    if isinstance(usage, dict) and all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")):
        return {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class Completion:
    """The id, time and model shared by every chunk of one completion."""

    def __init__(self, model: str, chat: bool) -> None:
        self.chat = chat
        self.model = model
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def body(self, text: str, usage: dict[str, int]) -> dict[str, Any]:
        """The whole completion, for a request without ``stream``."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": [choice], "usage": usage}

    def chunk(self, text: str | None, finish: bool = False, first: bool = False) -> str:
        """One server-sent event of a streamed completion."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop" if finish else None, "logprobs": None}
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if text:
                delta["content"] = text
            choice["delta"] = delta
        else:
            choice["text"] = text or ""
        body = {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": [choice]}
        return event(body)


def event(body: Any) -> str:
    """A server-sent event carrying ``body`` as JSON."""
    return f"data: {json.dumps(body, default=str)}\n\n"


DONE = "data: [DONE]\n\n"


def error_body(message: str, kind: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    """An error in the OpenAI API's shape, which its clients turn into exceptions with ``message``."""
    return {"error": {"message": message, "type": kind, "code": code, **extra}}
