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
            raise key_error(self.partitioning, self.target_name, exc) from exc

    def _pick_by_partitioner(self, record: Any, n: int) -> int:
        partitioner: Partitioner = self.partitioning.partitioner
        target = partitioner.partition(record, n)
        if type(target) is not int or not 0 <= target < n:
            raise RoutingError(
                f"partitioner {type(partitioner).__name__} returned {target!r} for record "
                f"{short_repr(record)}; it must return an int in [0, {n})"
            )
        return target


def key_error(partitioning: Partitioning, target_name: str, exc: BaseException) -> RoutingError:
    return RoutingError(f"key_by({partitioning.key_description}) before {target_name!r}: {type(exc).__name__}: {exc}")


class FusedKey:
    """The key of a record for a keyed operator fused with its producer (a key_by at
    parallelism 1, which routes nothing): computed with the check and the message the router
    would give, so that a key that could not be routed at a higher parallelism (one without
    a stable hash) fails here too. Keys already checked are remembered."""

    REMEMBERED = 1 << 16

    def __init__(self, partitioning: Partitioning, target_name: str) -> None:
        self.partitioning = partitioning
        self.key = partitioning.key
        self.target_name = target_name
        self._checked: set[Any] = set()

    def __call__(self, record: Any) -> Any:
        try:
            key = self.key(record)
            try:
                checked = key in self._checked
            except TypeError:  # unhashable: the check says why
                checked = False
            if not checked:
                self._check(key)
        except Exception as exc:
            raise key_error(self.partitioning, self.target_name, exc) from exc
        return key

    def keys(self, records: list[Any]) -> list[Any]:
        """The keys of ``records``, not checked: a batch operator calls ``new_key`` for each
        key before it first keeps state for it. Raises when a record has none (then take the
        records one by one)."""
        return list(map(self.key, records))

    def new_key(self, key: Any) -> None:
        """Check a key the operator has not seen before."""
        try:
            self._check(key)
        except Exception as exc:
            raise key_error(self.partitioning, self.target_name, exc) from exc

    def _check(self, key: Any) -> None:
        stable_hash(key)
        if len(self._checked) >= self.REMEMBERED:
            self._checked.clear()
        self._checked.add(key)
