"""Reading the answer out of what a chat-completion server sent with HTTP 200, or saying what
it sent instead: an error body, a completion without choices, an HTML page.

The body is read as plain JSON rather than into the openai SDK's pydantic models: the
generator needs three fields of it, and building the models took 0.27 ms of CPU per answer
(json.loads: 0.007 ms), which a served pipeline pays on every request.
"""

from __future__ import annotations

import json
from typing import Any

EXCERPT_CHARS = 200
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


class UnusableReply(Exception):
    """A 200 response that holds no answer; the message says what the server sent."""


def excerpt(text: str) -> str:
    """The start of a body, on one line, for messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "..."


def read_answer(response: Any) -> tuple[str, str | None, dict[str, Any]]:
    """The text of the first choice of the chat completion in ``response`` (an HTTP response
    with its body read), the model that answered (None when the server did not say) and the
    token usage (``{}`` when the server did not count)."""
    content_type = response.headers.get("content-type", "no content type")
    try:
        completion = json.loads(response.content)
    except ValueError:
        if content_type.partition(";")[0].strip().endswith("json"):
            raise UnusableReply(f"with {content_type} that is not valid JSON: {excerpt(response.text)}") from None
        completion = None
    if not isinstance(completion, dict):
        raise UnusableReply(f"with {content_type} instead of a JSON chat completion: {excerpt(response.text)}")
    error = completion.get("error")
    if error is not None:
        detail = error.get("message") if isinstance(error, dict) else None
        raise UnusableReply(f"with an error instead of a completion: {detail or excerpt(response.text)}")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise UnusableReply(f"with a chat completion that has no choices: {excerpt(response.text)}")
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise UnusableReply(f"with a first choice that holds no text (finish_reason "
                            f"{choice.get('finish_reason')!r}): {excerpt(response.text)}")
    model = completion.get("model")
    usage = completion.get("usage")
    counts = {field: usage.get(field) for field in USAGE_FIELDS} if isinstance(usage, dict) and usage else {}
    return content, model if isinstance(model, str) else None, counts
