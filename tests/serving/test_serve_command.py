"""``sage serve PIPELINE.py``: a module's function builds the pipeline; the command serves it
until Ctrl-C, and the real openai client talks to it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import openai
import pytest

from tests.services import free_port, wait_http

pytestmark = pytest.mark.timeout(120)
SAGE = [sys.executable, "-c", "from sage.kernel.cli.main import main; main()"]

PIPELINE = textwrap.dedent('''
    from sage.kernel.api import LocalEnvironment
    from sage.kernel.serving import AnswerSink, RequestSource


    def shout(record):
        return {**record, "answer": record["query"].upper() + "!"}


    def build():
        env = LocalEnvironment(name="shout")
        env.from_source(RequestSource()).map(shout).sink(AnswerSink())
        return env
''')


def test_sage_serve_runs_the_pipeline_a_module_builds_until_ctrl_c(tmp_path: Path):
    (tmp_path / "shout.py").write_text(PIPELINE)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([*SAGE, "serve", f"{tmp_path / 'shout.py'}:build", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, process, log)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-")
        reply = client.chat.completions.create(model="shout", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "HELLO!"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130, log.read_text()  # as `sage run`: Ctrl-C ends it with 130
    assert "Traceback" not in log.read_text()


def test_sage_serve_names_the_missing_function(tmp_path: Path):
    (tmp_path / "shout.py").write_text(PIPELINE)
    done = subprocess.run([*SAGE, "serve", str(tmp_path / "shout.py")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "has no function 'pipeline'" in done.stderr


def test_sage_serve_node_without_cluster_is_a_usage_error(tmp_path: Path):
    (tmp_path / "shout.py").write_text(PIPELINE)
    done = subprocess.run([*SAGE, "serve", f"{tmp_path / 'shout.py'}:build", "--node", "10.0.0.5"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--node names a node of a cluster; add --cluster" in done.stderr
