"""How vLLM's CPU build (.venv-llm) is started, by the RAG tests and by benchmarks/serving.py:
its environment and its server command, in one place so both run the same server."""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1", "HF_HUB_OFFLINE": "1",
               "VLLM_NO_USAGE_STATS": "1", "VLLM_LOGGING_LEVEL": "WARNING"}


def vllm_environment() -> dict[str, str]:
    """This process's environment with vLLM's CPU settings: 1 GiB of KV cache, both cores, offline."""
    return {**os.environ, **ENVIRONMENT}


def vllm_command(python: Path, port: int, args: list[str], max_num_seqs: int) -> list[str]:
    """The OpenAI-compatible server of ``args`` (the model and its options) on 127.0.0.1:port."""
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", *args, "--host", "127.0.0.1",
            "--port", str(port), "--dtype", "bfloat16", "--max-num-seqs", str(max_num_seqs), "--enforce-eager"]
