"""Reading the answer out of what a chat-completion server sent with HTTP 200, or saying what
it sent instead: an error body, a completion without choices, an HTML page."""

from __future__ import annotations

from typing import Any

EXCERPT_CHARS = 200


class UnusableReply(Exception):
    """A 200 response that holds no answer; the message says what the server sent."""


def excerpt(text: str) -> str:
    """The start of a body, on one line, for messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "..."


def read_answer(raw: Any) -> tuple[Any, str]:
    """The completion the SDK parsed from ``raw`` (its ``with_raw_response`` result) and the text
    of its first choice."""
    from openai.types.chat import ChatCompletion

    http_response = raw.http_response
    content_type = http_response.headers.get("content-type", "no content type")
    try:
        completion = raw.parse()
    except ValueError:
        raise UnusableReply(f"with {content_type} that is not valid JSON: {excerpt(http_response.text)}") from None
    if not isinstance(completion, ChatCompletion):
        raise UnusableReply(f"with {content_type} instead of a JSON chat completion: "
                            f"{excerpt(http_response.text)}")
    error = (completion.model_extra or {}).get("error")
    if error is not None:
        detail = error.get("message") if isinstance(error, dict) else None
        raise UnusableReply(f"with an error instead of a completion: {detail or excerpt(http_response.text)}")
    if not completion.choices:
        raise UnusableReply(f"with a chat completion that has no choices: {excerpt(http_response.text)}")
    choice = completion.choices[0]
    content = getattr(getattr(choice, "message", None), "content", None)
    if not isinstance(content, str):
        raise UnusableReply(f"with a first choice that holds no text (finish_reason "
                            f"{getattr(choice, 'finish_reason', None)!r}): {excerpt(http_response.text)}")
    return completion, content
