"""RAG operators: embeddings, Chroma, LLM generation."""

from sage.middleware.operators.rag.chroma_retriever import ChromaRetrieverOperator
from sage.middleware.operators.rag.chroma_upsert import ChromaUpsertOperator
from sage.middleware.operators.rag.embedding import VLLMEmbeddingOperator
from sage.middleware.operators.rag.errors import (
    BackendUnavailableError,
    CollectionNotFoundError,
    EmbeddingMismatchError,
    GenerationError,
    RagError,
    RecordError,
)
from sage.middleware.operators.rag.generator import OpenAIGeneratorOperator
from sage.middleware.operators.rag.prompts import DEFAULT_RAG_TEMPLATE

__all__ = [
    "DEFAULT_RAG_TEMPLATE",
    "BackendUnavailableError",
    "ChromaRetrieverOperator",
    "ChromaUpsertOperator",
    "CollectionNotFoundError",
    "EmbeddingMismatchError",
    "GenerationError",
    "OpenAIGeneratorOperator",
    "RagError",
    "RecordError",
    "VLLMEmbeddingOperator",
]
