"""Registers the RAG operators with SAGE's plugin registry."""

from __future__ import annotations

from typing import Any

from sage.kernel.hookspecs import hookimpl


@hookimpl
def sage_operators() -> dict[str, Any]:
    """The RAG map operators by name."""
    from sage.middleware.operators.rag import (
        ChromaRetrieverOperator,
        OpenAIGeneratorOperator,
        VLLMEmbeddingOperator,
    )

    return {
        "vllm_embedding": VLLMEmbeddingOperator,
        "chroma_retriever": ChromaRetrieverOperator,
        "openai_generator": OpenAIGeneratorOperator,
    }


@hookimpl
def sage_sinks() -> dict[str, Any]:
    """The RAG sinks by name."""
    from sage.middleware.operators.rag import ChromaUpsertOperator

    return {"chroma_upsert": ChromaUpsertOperator}
