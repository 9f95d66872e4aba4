"""The three ways to compute embeddings: in-process vLLM, an OpenAI-compatible server, or
sentence-transformers; and the ``auto`` rule that picks one.

Every backend takes a list of texts and returns one list of floats per text, in order, from
a single model call (a single HTTP request for the server backend).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Protocol

import numpy as np
from sage.middleware.operators.rag.model_resolution import resolve_model
from sage.middleware.operators.rag.optional_backends import require

BACKENDS = ("auto", "vllm", "openai", "sentence-transformers")


class Embedder(Protocol):
    """A loaded embedding model."""

    backend: str
    dimension: int | None

    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def close(self) -> None: ...


def cuda_visible() -> bool:
    """Whether torch sees a CUDA GPU (False when torch is not installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(requested: str, base_url: str | None) -> tuple[str, str]:
    """The backend to use and why: explicit choice, else server, else vLLM on a GPU, else ST."""
    if requested != "auto":
        return requested, "requested"
    if base_url:
        return "openai", "base_url is set"
    if importlib.util.find_spec("vllm") is not None and cuda_visible():
        return "vllm", "vllm is installed and a CUDA GPU is visible"
    return "sentence-transformers", "no base_url, and no vllm with a CUDA GPU"


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


class SentenceTransformerEmbedder:
    """sentence-transformers in this process, on CPU or GPU."""

    backend = "sentence-transformers"

    def __init__(self, model: str, normalize: bool = True, device: str | None = None,
                 owner: str = "SentenceTransformerEmbedder") -> None:
        sentence_transformers = require("sentence_transformers", owner, "the sentence-transformers backend")

        self.resolved = resolve_model(model)
        self.normalize = normalize
        self._model = sentence_transformers.SentenceTransformer(self.resolved.location, device=device)
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension: int | None = dimension()

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, batch_size=max(1, len(texts)), normalize_embeddings=self.normalize,
                                     convert_to_numpy=True, show_progress_bar=False)
        return vectors.tolist()

    def close(self) -> None:
        self._model = None


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (``vllm serve``, OpenAI, ...)."""

    backend = "openai"

    def __init__(self, model: str, base_url: str | None, api_key: str | None = None,
                 normalize: bool = True, timeout_s: float = 60.0) -> None:
        import openai

        self.model = model
        self.normalize = normalize
        self.base_url = base_url
        self._client = openai.OpenAI(base_url=base_url, timeout=timeout_s,
                                     api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY")
        self.dimension: int | None = None

    def embed(self, texts: list[str]) -> list[list[float]]:
        response = self._client.embeddings.create(model=self.model, input=texts)
        data = sorted(response.data, key=lambda item: item.index)
        vectors = np.asarray([item.embedding for item in data], dtype=np.float32)
        if self.normalize:
            vectors = _normalized(vectors)
        self.dimension = int(vectors.shape[1])
        return vectors.tolist()

    def probe(self) -> int:
        """Embed one text to learn the dimension (and fail early when the server is wrong)."""
        self.embed(["dimension probe"])
        assert self.dimension is not None
        return self.dimension

    def close(self) -> None:
        self._client.close()


class VLLMEmbedder:
    """An in-process vLLM engine in pooling mode (GPU machines; ``sage-middleware[vllm]``)."""

    backend = "vllm"

    def __init__(self, model: str, normalize: bool = True, device: str | None = None,
                 engine_args: dict[str, Any] | None = None, owner: str = "VLLMEmbedder") -> None:
        vllm = require("vllm", owner, "the vllm backend (or use backend='sentence-transformers')")

        self.resolved = resolve_model(model)
        self.normalize = normalize
        args = {"runner": "pooling", "enforce_eager": True, **(engine_args or {})}
        if device:
            args.setdefault("device", device)
        self._llm = vllm.LLM(model=self.resolved.location, **args)
        self.dimension: int | None = None

    def embed(self, texts: list[str]) -> list[list[float]]:
        outputs = self._llm.embed(texts, use_tqdm=False)
        vectors = np.asarray([out.outputs.embedding for out in outputs], dtype=np.float32)
        if self.normalize:
            vectors = _normalized(vectors)
        self.dimension = int(vectors.shape[1])
        return vectors.tolist()

    def close(self) -> None:
        self._llm = None


def load_embedder(backend: str, model: str, *, base_url: str | None = None, api_key: str | None = None,
                  normalize: bool = True, device: str | None = None,
                  engine_args: dict[str, Any] | None = None, owner: str = "load_embedder") -> Embedder:
    """Load ``model`` on ``backend`` (already chosen, not ``auto``) for ``owner`` (named in errors)."""
    if backend == "sentence-transformers":
        return SentenceTransformerEmbedder(model, normalize=normalize, device=device, owner=owner)
    if backend == "openai":
        embedder = OpenAIEmbedder(model, base_url, api_key=api_key, normalize=normalize)
        embedder.probe()
        return embedder
    if backend == "vllm":
        return VLLMEmbedder(model, normalize=normalize, device=device, engine_args=engine_args, owner=owner)
    raise ValueError(f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}")
