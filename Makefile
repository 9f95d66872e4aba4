# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := sage-kernel/pyproject.toml sage-libs/pyproject.toml sage-middleware/pyproject.toml \
            plugins/sage-metrics-prometheus/pyproject.toml plugins/sage-example-textops/pyproject.toml \
            tests/plugins/sage-test-plugin/pyproject.toml pyproject.toml
export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: setup demo test test-fast bench lint clean

$(STAMP): $(PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build on these machines (an unpinned torch pulls CUDA wheels)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e "sage-kernel[ray,serve]" -e "sage-libs[pdf,tokens]" -e "sage-middleware[all]" \
	    -e plugins/sage-metrics-prometheus -e plugins/sage-example-textops -e tests/plugins/sage-test-plugin -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# vLLM's CPU build in its own virtualenv: the real OpenAI-compatible server the RAG tests use.
LLM_STAMP := .venv-llm/.installed
$(LLM_STAMP): scripts/setup-llm-server.sh
	bash scripts/setup-llm-server.sh
	touch $(LLM_STAMP)

demo: setup
	$(PY) examples/rag_demo.py

test: setup $(LLM_STAMP)
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration"

bench: setup
	$(PY) benchmarks/local_throughput.py
	$(PY) benchmarks/broadcast_copies.py
	$(PY) benchmarks/latency.py
	$(PY) benchmarks/io_throughput.py --size-mb 200
	$(PY) benchmarks/distributed_throughput.py
	$(PY) benchmarks/embedding_pipeline.py
	$(PY) benchmarks/generation_concurrency.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .venv-llm .pytest_cache
