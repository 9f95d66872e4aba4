"""The prompt a generator sends: the default RAG template and how contexts are written into it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sage.libs.io import source_of

DEFAULT_RAG_TEMPLATE = (
    "Answer the question using only the numbered context passages below. Cite the passages you "
    "use by their numbers, like [1]. If the passages do not contain the answer, say so.\n\n"
    "Context:\n{context}\n\nQuestion: {query}\nAnswer:"
)

PromptTemplate = str | Callable[[str, list[dict[str, Any]]], str]


def format_contexts(contexts: list[dict[str, Any]]) -> str:
    """``[1] (docs/a.md) text...``, one passage per paragraph."""
    if not contexts:
        return "(no passages were retrieved)"
    return "\n\n".join(
        f"[{number}] ({source_of(context)}) {str(context.get('text', '')).strip()}"
        for number, context in enumerate(contexts, start=1)
    )


def render_prompt(template: PromptTemplate | None, query: str, contexts: list[dict[str, Any]]) -> str:
    """The prompt for ``query``: ``template`` may be a str with ``{query}`` and ``{context}``, or a
    callable ``(query, contexts) -> str``."""
    if callable(template):
        return template(query, contexts)
    return (template or DEFAULT_RAG_TEMPLATE).format(query=query, context=format_contexts(contexts))


def template_problem(template: Any) -> str | None:
    """Why ``template`` cannot be used, or None."""
    if template is None or callable(template):
        return None
    if not isinstance(template, str):
        return f"prompt_template must be a str or a callable (query, contexts) -> str, got {type(template).__name__}"
    if "{query}" not in template:
        return "prompt_template must contain {query} (and usually {context})"
    try:
        template.format(query="", context="")
    except (KeyError, IndexError, ValueError) as exc:
        return (f"prompt_template cannot be filled ({type(exc).__name__}: {exc}); only {{query}} and "
                "{context} are replaced, write other braces as {{ and }}")
    return None
