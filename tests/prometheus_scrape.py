"""Scraping a Prometheus endpoint the way Prometheus reads it, for the metrics plugin's tests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, Metric]:
    """The endpoint's metric families by name, parsed with ``prometheus_client.parser``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def wait_for_scrape(port: int, ready: Callable[[dict[str, Metric]], bool], timeout_s: float = 60) -> dict[str, Metric]:
    """Scrape until ``ready`` holds (a hang is caught by the timeout); the last scrape."""
    deadline = time.monotonic() + timeout_s
    families: dict[str, Metric] = {}
    while True:
        try:
            families = scrape(port)
        except OSError:
            families = {}
        if ready(families):
            return families
        assert time.monotonic() < deadline, f"not ready after {timeout_s}s: {sorted(families)}"
        time.sleep(0.1)


def counts_by_operator(families: dict[str, Metric], job_id: str, counter: str) -> dict[str, float]:
    """The counter ``sage_<counter>_total`` of one job, summed over instances, per operator."""
    family = families.get(f"sage_{counter}")
    totals: dict[str, float] = {}
    for sample in family.samples if family else []:
        if sample.labels["job_id"] == job_id and sample.name == f"sage_{counter}_total":
            operator = sample.labels["operator"]
            totals[operator] = totals.get(operator, 0) + sample.value
    return totals
