"""SAGE's logs go through the standard logging module: importing SAGE configures nothing, an
application's logging config decides what shows, and SAGE_LOG_FORMAT=json gives JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

JOB = (
    "from sage.kernel.api import LocalEnvironment\n"
    "env = LocalEnvironment('logged', config={'metrics': {'reporters': ['log'], 'interval_s': 0.01}})\n"
    "env.from_collection(range(3)).collect()\n"
    "env.execute()\n"
)


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=True)


def test_importing_sage_configures_no_logging():
    out = run("import logging, structlog, sage.kernel, sage.kernel.api\n"
              "print(structlog.is_configured(), logging.getLogger('sage').handlers, logging.getLogger().handlers)")
    assert out.stdout.strip() == "False [] []"


def test_without_logging_config_sage_logs_to_stderr_and_keeps_stdout_for_data():
    out = run(JOB)
    assert "[info     ] metrics" in out.stderr
    assert out.stdout == ""


def test_an_applications_logging_config_silences_sages_info_lines():
    out = run("import logging\nlogging.basicConfig(level=logging.ERROR)\n" + JOB)
    assert "metrics" not in out.stderr


def test_an_applications_logging_config_routes_sages_lines():
    out = run("import logging\nlogging.basicConfig(level=logging.INFO, format='ROUTED %(name)s %(message)s')\n" + JOB)
    assert any(line.startswith("ROUTED sage.metrics") for line in out.stderr.splitlines()), out.stderr


def test_json_log_lines_parse():
    out = run(JOB, SAGE_LOG_FORMAT="json")
    events = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    metrics = [e for e in events if e["event"] == "metrics"]
    assert metrics and metrics[0]["level"] == "info" and metrics[0]["job"] == "logged"
