"""The backends sage-middleware installs only on request, and the extra that installs each.

``pip install sage-middleware`` brings the operators, numpy and the openai client; Chroma,
sentence-transformers (with torch and the MiniLM wheel) and vLLM are extras, imported only
when an instance opens. A missing one is a ``BackendUnavailableError`` that names the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sage.middleware.operators.rag.errors import BackendUnavailableError

EXTRAS = {"chromadb": "chroma", "sentence_transformers": "embeddings-cpu", "vllm": "vllm"}


def require(module: str, owner: str, why: str) -> ModuleType:
    """Import ``module`` (a backend in ``EXTRAS``) for ``owner``, or say how to install it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != top:
            raise  # the backend is there but broken: its own error says more than ours would
        raise BackendUnavailableError(
            f"{owner}: {why} needs the {top} package, which is not installed here; "
            f"pip install 'sage-middleware[{EXTRAS[top]}]' on the machine that runs the operator"
        ) from None
