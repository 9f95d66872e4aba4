"""examples/rag_server.py serves the docs RAG: the openai client and plain HTTP ask it questions
and get answers from the right document; with the real vLLM CPU server behind it, stream=true
brings the generator's tokens as server-sent events as they are produced.

The example runs as a subprocess on a small document folder and a SAGE home of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.rag.conftest import CHAT_MODEL
from tests.rag.test_rag_chat import DOCS, QUESTIONS
from tests.services import free_port, stop_group, wait_http

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rag_server.py"
READY_S = 240  # ingesting the documents and loading MiniLM twice, on a slow CPU


def run_example(tmp_path: Path, sage_home: Path, **environ: str) -> Iterator[str]:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL")}
    env.update(SAGE_HOME=str(sage_home), HF_HUB_OFFLINE="1", **environ)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(EXAMPLE), "--docs", str(docs), "--port", str(port)],
                                   cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", READY_S, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process)


@pytest.fixture
def extractive_server(tmp_path: Path, sage_home: Path) -> Iterator[str]:
    yield from run_example(tmp_path, sage_home)


@pytest.mark.timeout(600)
def test_the_served_docs_rag_answers_from_the_right_document(extractive_server: str):
    client = openai.OpenAI(base_url=extractive_server + "/v1", api_key="unused")
    for question, source in QUESTIONS:
        reply = client.chat.completions.create(model="sage-docs", messages=[{"role": "user", "content": question}])
        assert DOCS[source].split("\n\n")[1].split(",")[0] in reply.choices[0].message.content

    question, source = QUESTIONS[0]
    record = httpx.post(extractive_server + "/query", json={"query": question}, timeout=60).json()
    assert record["query"] == question
    assert source in json.dumps(record["contexts"][0])


@pytest.fixture
def llm_server(tmp_path: Path, sage_home: Path, vllm_chat_server) -> Iterator[str]:
    yield from run_example(tmp_path, sage_home, OPENAI_BASE_URL=vllm_chat_server.wait().base_url,
                           OPENAI_MODEL=CHAT_MODEL)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_stream_true_brings_the_generators_tokens_as_they_are_made(llm_server: str):
    client = openai.OpenAI(base_url=llm_server + "/v1", api_key="unused")
    question = QUESTIONS[0][0]
    whole = client.chat.completions.create(model="sage-docs", messages=[{"role": "user", "content": question}])
    chunks = list(client.chat.completions.create(model="sage-docs", stream=True,
                                                 messages=[{"role": "user", "content": question}]))
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) > 1  # token by token, not the whole answer in one event
    assert "".join(pieces) == whole.choices[0].message.content  # greedy decoding: the same answer
