"""docs/rag.md's and the README's RAG examples run as written: ingest SAGE's own docs/ into
the embedded Chroma, then ask, with the real MiniLM and vLLM's CPU server answering (the
OPENAI_BASE_URL / OPENAI_MODEL the examples read point at it)."""

from __future__ import annotations

import pytest

from tests.docs_blocks import REPO, run_blocks, runnable
from tests.rag.conftest import CHAT_MODEL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def llm(vllm_chat_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", vllm_chat_server.base_url)
    monkeypatch.setenv("OPENAI_MODEL", CHAT_MODEL)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(REPO)  # the examples ingest docs/ from the repository root


def test_rag_page_examples(llm, sage_home):
    namespace, out = run_blocks(runnable("rag.md"))
    assert "How does key_by route records?" in out and "What does sage job stop do?" in out
    collection = namespace["ChromaRetrieverOperator"](collection="docs").location.connect("test")
    assert collection.get_collection("docs").count() > 100


def test_readme_rag_example(llm, sage_home):
    _, out = run_blocks(runnable("README.md")[1:2])
    assert "How does key_by route records?" in out
