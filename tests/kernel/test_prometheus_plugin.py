"""The Prometheus metrics plugin serves a running job's metrics over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from sage.kernel.api import LocalEnvironment


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_prometheus_reporter_serves_operator_metrics_while_the_job_runs():
    port = _free_port()
    release = threading.Event()

    def source():
        yield from range(100)
        release.wait(30)

    env = LocalEnvironment(name="scraped", config={
        "batch_size": 10,
        "metrics": {"reporters": ["prometheus"], "interval_s": 0.05, "prometheus": {"port": port}},
    })
    env.from_source(source, name="numbers").map(lambda x: x + 1, name="inc").collect()
    handle = env.submit()
    try:
        deadline = time.monotonic() + 30
        body = ""
        while 'sage_records_out{job="scraped",operator="inc"} 100.0' not in body:
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    body = response.read().decode()
            except OSError:
                continue
        assert handle.status() == "running"
        assert 'sage_records_in{job="scraped",operator="inc"} 100.0' in body
    finally:
        release.set()
    assert handle.wait(30).status == "finished"
