"""The in-process vLLM backend on a CUDA GPU; skipped where there is none or vllm is absent."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sage.kernel.testing import run_pipeline
from sage.middleware.operators.rag import VLLMEmbeddingOperator
from sage.middleware.operators.rag.embedding_backends import cuda_visible
from sage.middleware.operators.rag.model_resolution import MINILM

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_visible(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (sage-middleware[vllm])"),
]


def test_auto_picks_in_process_vllm_on_a_gpu_and_matches_sentence_transformers(minilm):
    texts = ["SAGE runs dataflow pipelines.", "Chroma stores embeddings."]
    out = run_pipeline(texts, lambda s: s.map(VLLMEmbeddingOperator(
        model=MINILM, engine_args={"gpu_memory_utilization": 0.3})))
    vectors = np.asarray([r["embedding"] for r in out])
    assert np.all(np.sum(vectors * minilm.encode(texts, normalize_embeddings=True), axis=1) > 0.99)
