"""The RAG operators are registered through the ``sage`` entry points."""

from __future__ import annotations

from sage.kernel.plugins import get_plugins, lookup
from sage.middleware.operators.rag import (
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    OpenAIGeneratorOperator,
    VLLMEmbeddingOperator,
)


def test_operators_and_sink_are_registered_by_name():
    assert lookup("operator", "vllm_embedding") is VLLMEmbeddingOperator
    assert lookup("operator", "chroma_retriever") is ChromaRetrieverOperator
    assert lookup("operator", "openai_generator") is OpenAIGeneratorOperator
    assert lookup("sink", "chroma_upsert") is ChromaUpsertOperator
    mine = {(e.kind, e.name) for e in get_plugins() if e.distribution == "sage-middleware"}
    assert mine == {("operator", "vllm_embedding"), ("operator", "chroma_retriever"),
                    ("operator", "openai_generator"), ("sink", "chroma_upsert")}


def test_importing_the_operators_loads_no_backend():
    import subprocess
    import sys

    code = ("import sys, sage.middleware.operators.rag; "
            "print(sorted(m for m in ('vllm', 'torch', 'sentence_transformers', 'chromadb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
