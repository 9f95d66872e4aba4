"""Routing a batch of outputs to the instances of the next chain.

Keys are hashed with :func:`sage.kernel.api.key_hash.stable_hash`, so a key reaches the same
instance in every process and every runtime.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sage.kernel.api.key_hash import stable_hash
from sage.kernel.api.partitioner import Partitioner
from sage.kernel.errors import short_repr
from sage.kernel.plan.logical import Partitioning


class RoutingError(Exception):
    """A key function or partitioner failed, or picked an instance that does not exist."""


class Router:
    """Splits a batch into (target instance, batch) pairs for one edge."""

    def __init__(self, partitioning: Partitioning, own_index: int, targets: int, target_name: str = "") -> None:
        # Each sending instance owns its copy, so a stateful partitioner is never shared.
        self.partitioning = copy.deepcopy(partitioning)
        self.own_index = own_index
        self.targets = targets
        self.target_name = target_name
        self._offset = own_index % targets

    def route(self, batch: list[Any], on_error: Callable[[Any, BaseException], None]):
        kind = self.partitioning.kind
        n = self.targets
        if kind == "forward":
            return [(self.own_index, batch)]
        if kind == "broadcast":
            return [(target, list(batch)) for target in range(n)]
        if kind == "rebalance":
            offset = self._offset
            self._offset = (offset + len(batch)) % n
            if n == 1:
                return [(0, batch)]
            return [(t, part) for t in range(n) if (part := batch[(t - offset) % n :: n])]
        buckets: list[list[Any]] = [[] for _ in range(n)]
        pick = self._pick_by_key if kind == "hash" else self._pick_by_partitioner
        for record in batch:
            try:
                target = pick(record, n)
            except Exception as exc:
                on_error(record, exc)
                continue
            buckets[target].append(record)
        return [(t, bucket) for t, bucket in enumerate(buckets) if bucket]

    def _pick_by_key(self, record: Any, n: int) -> int:
        try:
            key = self.partitioning.key(record)
            return stable_hash(key) % n
        except Exception as exc:
            raise RoutingError(
                f"key_by({self.partitioning.key_description}) before {self.target_name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _pick_by_partitioner(self, record: Any, n: int) -> int:
        partitioner: Partitioner = self.partitioning.partitioner
        target = partitioner.partition(record, n)
        if type(target) is not int or not 0 <= target < n:
            raise RoutingError(
                f"partitioner {type(partitioner).__name__} returned {target!r} for record "
                f"{short_repr(record)}; it must return an int in [0, {n})"
            )
        return target
