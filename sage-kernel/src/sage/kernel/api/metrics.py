"""Metrics that user code records through ``context.get_metrics()``.

Each operator instance owns one :class:`MetricGroup`; the runtime keeps its built-in counts
(``records_in``, ``records_out``, ``errors``...) in the same group, so user and built-in
metrics travel, merge and report the same way.
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

BUILTIN_COUNTERS = ("records_in", "records_out", "errors", "skipped", "dead_lettered")
SAMPLE_LIMIT = 65_536


class Counter:
    """A monotonically growing count."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class Gauge:
    """A value that goes up and down (a queue depth, a cache size)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def set(self, value: float) -> None:
        self.value = value


class Series:
    """Recorded values: exact count, sum, min and max; percentiles from a bounded sample."""

    __slots__ = ("count", "total", "low", "high", "samples", "_rng")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.samples: list[float] = []
        self._rng = random.Random(0)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value
        if len(self.samples) < SAMPLE_LIMIT:
            self.samples.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot < SAMPLE_LIMIT:
                self.samples[slot] = value

    def merge(self, other: Series) -> None:
        """Fold in another series; each side keeps a share of the sample in proportion to its count."""
        if not other.count:
            return
        count = self.count + other.count
        mine = round(SAMPLE_LIMIT * self.count / count)
        theirs = SAMPLE_LIMIT - mine
        self.samples = _subsample(self.samples, mine, self._rng) + _subsample(other.samples, theirs, self._rng)
        self.count = count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def summary(self) -> dict[str, float]:
        if not self.count:
            return {"count": 0, "sum": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0, "p50": 0.0, "p99": 0.0}
        ordered = sorted(self.samples)
        return {
            "count": self.count,
            "sum": self.total,
            "mean": self.total / self.count,
            "min": self.low,
            "max": self.high,
            "p50": _percentile(ordered, 0.50),
            "p99": _percentile(ordered, 0.99),
        }


def _subsample(samples: list[float], size: int, rng: random.Random) -> list[float]:
    return samples if len(samples) <= size else rng.sample(samples, size)


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


class MetricGroup:
    """The metrics of one operator instance, as returned by ``context.get_metrics()``."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter] = {name: Counter() for name in BUILTIN_COUNTERS}
        self.gauges: dict[str, Gauge] = {}
        self.series: dict[str, Series] = {}

    def record(self, name: str, value: float) -> None:
        """Add one observation (a latency, a size) to the series ``name``."""
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series()
        series.add(value)

    def counter(self, name: str) -> Counter:
        counter = self.counters.get(name)
        if counter is None:
            counter = self.counters[name] = Counter()
        return counter

    def gauge(self, name: str) -> Gauge:
        gauge = self.gauges.get(name)
        if gauge is None:
            gauge = self.gauges[name] = Gauge()
        return gauge

    def merge(self, other: MetricGroup) -> None:
        """Fold another instance's metrics into this one (counters and gauges add up).

        ``other`` may be live: its task may create a metric meanwhile. ``dict.copy()`` is one
        step that runs no Python code (iterating, even inside ``list()``, can let the garbage
        collector run code that switches threads), so the iteration never breaks."""
        for name, counter in other.counters.copy().items():
            self.counter(name).inc(counter.value)
        for name, gauge in other.gauges.copy().items():
            self.gauge(name).set(self.gauge(name).value + gauge.value)
        for name, series in other.series.copy().items():
            mine = self.series.get(name)
            if mine is None:
                mine = self.series[name] = Series()
            mine.merge(series)

    def summary(self) -> dict[str, Any]:
        """Plain data: counters and gauges as numbers, series as count/sum/mean/min/max/p50/p99."""
        out: dict[str, Any] = {name: c.value for name, c in self.counters.items()}
        out.update({name: g.value for name, g in self.gauges.items()})
        out.update({name: s.summary() for name, s in self.series.items()})
        return out


def summarise(names: list[str], instances: list[dict[str, MetricGroup]]) -> dict[str, dict[str, Any]]:
    """Per-operator summaries (in ``names`` order) from the metric groups of every instance."""
    merged = {name: MetricGroup() for name in names}
    for groups in instances:
        for name, group in groups.copy().items():
            merged.setdefault(name, MetricGroup()).merge(group)
    return {name: group.summary() for name, group in merged.items()}


@attrs.frozen
class InstanceMetrics:
    """One operator instance's metrics at one moment, kept apart by kind, so that a reporter
    can export counts as counters, gauges as gauges and recorded series as summaries."""

    operator: str
    instance: int
    counters: dict[str, int]
    gauges: dict[str, float]
    series: dict[str, dict[str, float]]


def instance_snapshots(groups: list[tuple[int, dict[str, MetricGroup]]]) -> list[InstanceMetrics]:
    """Plain snapshots of every (instance index, metric groups by operator) a runtime holds."""
    return [
        InstanceMetrics(operator=name, instance=index,
                        counters={n: c.value for n, c in group.counters.copy().items()},
                        gauges={n: g.value for n, g in group.gauges.copy().items()},
                        series={n: s.summary() for n, s in group.series.copy().items()})
        for index, by_operator in groups
        for name, group in by_operator.copy().items()
    ]
