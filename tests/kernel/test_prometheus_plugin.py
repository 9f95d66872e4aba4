"""The Prometheus metrics plugin serves every job's per-instance metrics over real HTTP, scraped
and parsed the way Prometheus reads them (``prometheus_client.parser``)."""

from __future__ import annotations

import re
import socket
import threading

import pytest
from sage.kernel.api import LocalEnvironment, PipelineDefinitionError

from tests.prometheus_scrape import counts_by_operator, scrape, wait_for_scrape


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _held_job(name: str, port: int, release: threading.Event, records: int = 100):
    """A job that reads ``records`` numbers, then waits for ``release`` before it ends."""

    def source():
        yield from range(records)
        release.wait(60)

    env = LocalEnvironment(name=name, config={
        "batch_size": 10,
        "metrics": {"reporters": ["prometheus"], "interval_s": 0.05, "prometheus": {"port": port}},
    })
    env.from_source(source, name="numbers").map(lambda x: x + 1, parallelism=2, name="inc").sink(
        lambda x: None, name="drop")
    return env.submit()


def test_counts_are_counters_per_instance_while_the_job_runs_and_equal_the_result_at_the_end():
    port = _free_port()
    release = threading.Event()
    handle = _held_job("scraped", port, release)
    try:
        families = wait_for_scrape(
            port, lambda f: counts_by_operator(f, handle.job_id, "records_in").get("inc") == 100)
        assert handle.status() == "running"
        records_in = families["sage_records_in"]
        assert records_in.type == "counter"
        inc = [s for s in records_in.samples if s.labels["operator"] == "inc" and s.labels["job_id"] == handle.job_id]
        assert {s.name for s in inc} == {"sage_records_in_total"}
        assert {s.labels["instance"] for s in inc} == {"0", "1"}
        assert all(s.labels["job"] == "scraped" for s in inc)
        assert families["sage_processing_ms"].type == "summary"
    finally:
        release.set()
    result = handle.wait(30)
    assert result.status == "finished"
    families = scrape(port)  # the final report stays on the endpoint after the job ended
    for counter in ("records_in", "records_out", "errors"):
        assert counts_by_operator(families, result.job_id, counter) == {
            name: metrics[counter] for name, metrics in result.metrics.items()}


def test_jobs_that_name_the_same_port_share_one_endpoint():
    port = _free_port()
    release = threading.Event()
    first, second = _held_job("first", port, release), _held_job("second", port, release)
    try:
        wait_for_scrape(port, lambda f: all(counts_by_operator(f, job.job_id, "records_in").get("inc") == 100
                                            for job in (first, second)))
    finally:
        release.set()
    assert first.wait(30).status == second.wait(30).status == "finished"


def test_a_misspelt_setting_names_the_known_ones():
    env = LocalEnvironment(name="typo", config={"metrics": {"reporters": ["prometheus"],
                                                            "prometheus": {"prot": 9999}}})
    env.from_collection([1]).collect()
    with pytest.raises(PipelineDefinitionError, match=r"unknown setting\(s\) \['prot'\]; reporter 'prometheus' "
                                                      r"knows \['addr', 'port', 'retain_s'\]"):
        env.execute()


def test_a_port_in_use_is_an_error_that_says_how_to_choose_another():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = LocalEnvironment(name="busy", config={"metrics": {"reporters": ["prometheus"],
                                                                "prometheus": {"port": port}}})
        env.from_collection([1]).collect()
        with pytest.raises(PipelineDefinitionError, match=rf"cannot serve on 127.0.0.1:{port} .*choose another "
                                                          r"port with config\['metrics'\]\['prometheus'\]\['port'\]"):
            env.execute()


def test_the_monitoring_page_example_prints_what_the_page_shows():
    from tests.docs_blocks import blocks, run_blocks

    page = blocks("monitoring.md")
    example = next(b for b in page if b.language == "python" and "prometheus" in b.code)
    shown = next(b for b in page if b.language == "text" and b.code.startswith("sage_records_in_total"))
    namespace, printed = run_blocks([example])

    def without_job_id(text):
        return re.sub(r'job_id="[^"]+"', 'job_id="ID"', text).strip()

    def counts(text):  # the instances share the collection: which read what differs between runs
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines())

    def shape(text):
        return re.sub(r"\} [0-9.]+", "} N", without_job_id(text))

    assert shape(printed) == shape(shown.code)
    assert counts(printed) == counts(shown.code) == 3
    assert f'job_id="{namespace["result"].job_id}"' in printed
