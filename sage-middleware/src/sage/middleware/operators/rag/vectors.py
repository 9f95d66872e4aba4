"""Checking a record's embedding before it is stored: a non-empty list of finite numbers.

Chroma refuses a whole upsert when one of its embeddings is NaN, infinite, non-numeric or
empty, so each record's embedding is checked on its own, before it joins a batch.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

FIX = ("an embedding must be a non-empty list of finite numbers; check the embedding model's "
       "output, or drop such records before the sink")


def embedding_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as an embedding (a phrase to follow "has"), or None."""
    if type(value) is list and value and all(type(item) is float for item in value) and math.isfinite(sum(value)):
        return None  # what the embedding operators emit, checked fast (NaN and inf make the sum so)
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return f'an "embedding" array of shape {value.shape}; expected one dimension'
        value = value.tolist()
    elif not isinstance(value, list | tuple):
        return f'an "embedding" of type {type(value).__name__}'
    if not value:
        return 'an empty "embedding"'
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, Real):
            return f'an "embedding" holding {item!r} (a {type(item).__name__}) at position {position}'
        if not math.isfinite(item):
            return f'an "embedding" holding {item!r} at position {position}'
    return None


def as_floats(value: Any) -> list[float]:
    """An embedding that passed ``embedding_problem`` as a list of Python floats."""
    return [float(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
