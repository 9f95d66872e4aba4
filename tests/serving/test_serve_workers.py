"""``sage serve --workers N`` / ``env.serve(workers=N)``: several processes serve one pipeline,
each with its own copy of its job; the kernel spreads connections over them, a stop stops all
of them, and a worker whose job fails ends the server with that failure."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import openai
import pytest
from sage.kernel.api import LocalEnvironment
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving import AnswerSink, RequestSource, serve, start

from tests.services import free_port, wait_http

pytestmark = pytest.mark.timeout(120)
SAGE = [sys.executable, "-c", "from sage.kernel.cli.main import main; main()"]

PIPELINE = textwrap.dedent('''
    from sage.kernel.api import LocalEnvironment, MapFunction
    from sage.kernel.serving import AnswerSink, RequestSource


    class Shout(MapFunction):
        def __init__(self, fail_open=False):
            self.fail_open = fail_open

        def open(self, context):
            if self.fail_open:
                raise RuntimeError("the model file is missing")

        def map(self, record):
            return {**record, "answer": record["query"].upper() + "!"}


    def build(fail_open=False):
        env = LocalEnvironment(name="shout")
        env.from_source(RequestSource()).map(Shout(fail_open)).sink(AnswerSink())
        return env


    def broken():
        return build(fail_open=True)
''')


def _worker_pids(log: Path) -> list[int]:
    found = re.search(r"serving with workers\s+pids=\[([\d, ]+)\]", log.read_text())
    assert found, log.read_text()
    return [int(pid) for pid in found.group(1).split(",")]


def _jobs_of_both_workers(port: int) -> dict[int, str]:
    """Each worker's job id, once both answer (a new connection each time: the kernel picks the worker)."""
    jobs: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while len(jobs) < 2 and time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        except httpx.TransportError:
            continue
        jobs[health["worker"]] = health["job_id"]
    assert set(jobs) == {0, 1}
    return jobs


def _serve_until_both_workers_answer(tmp_path: Path, command: list[str], port: int) -> tuple[subprocess.Popen, Path]:
    """Start ``command`` (a server with two workers on ``port``, its output in serve.log) and
    return once both workers answer; the caller stops it."""
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, process, log)
        _jobs_of_both_workers(port)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process, log


def _sage_serve_shout(tmp_path: Path, port: int) -> list[str]:
    (tmp_path / "shout.py").write_text(PIPELINE)
    return [*SAGE, "serve", f"{tmp_path / 'shout.py'}:build", "--port", str(port), "--workers", "2"]


def _gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody reaped yet counts: an orphan's reaper may be slow)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_each_run_the_pipeline_take_connections_and_all_stop_on_ctrl_c(tmp_path: Path):
    port = free_port()
    process, log = _serve_until_both_workers_answer(tmp_path, _sage_serve_shout(tmp_path, port), port)
    try:
        jobs = _jobs_of_both_workers(port)
        assert jobs[0] != jobs[1]  # each worker runs its own copy of the job
        for _ in range(4):
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-")
            reply = client.chat.completions.create(model="shout", messages=[{"role": "user", "content": "hello"}])
            assert reply.choices[0].message.content == "HELLO!"
            client.close()
        pids = _worker_pids(log)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(40) == 130, log.read_text()
    assert all(_gone(pid) for pid in pids)
    assert log.read_text().count("Application shutdown complete") == 2  # each job closed, not killed
    assert "Traceback" not in log.read_text()


SCRIPT = textwrap.dedent('''
    import contextlib
    import sys

    from sage.kernel.api import LocalEnvironment
    from sage.kernel.serving import AnswerSink, RequestSource

    SUFFIX = "?!"  # a global of __main__: the workers get it with the function, by value


    def ask(record):
        return {**record, "answer": record["query"] + SUFFIX}


    if __name__ == "__main__":
        env = LocalEnvironment(name="asker")
        env.from_source(RequestSource()).map(ask).sink(AnswerSink())
        with contextlib.suppress(KeyboardInterrupt):
            env.serve("127.0.0.1", int(sys.argv[1]), workers=2)
''')


def test_env_serve_with_workers_from_a_script_sends_its_main_module_functions_to_the_workers(tmp_path: Path):
    (tmp_path / "asker.py").write_text(SCRIPT)
    port = free_port()
    process, log = _serve_until_both_workers_answer(
        tmp_path, [sys.executable, str(tmp_path / "asker.py"), str(port)], port)
    try:
        answers = {httpx.post(f"http://127.0.0.1:{port}/query", json={"query": f"q{i}"}).json()["answer"]
                   for i in range(6)}
        assert answers == {f"q{i}?!" for i in range(6)}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(40) == 0, log.read_text()
    assert log.read_text().count("Application shutdown complete") == 2


def test_workers_stop_when_the_serving_process_is_killed(tmp_path: Path):
    port = free_port()
    # both serving first: a worker killed while it starts has no job to close
    process, log = _serve_until_both_workers_answer(tmp_path, _sage_serve_shout(tmp_path, port), port)
    try:
        pids = _worker_pids(log)
    finally:
        process.kill()  # no handler runs: only the closed pipe tells the workers
        process.wait(10)
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids), log.read_text()
    assert log.read_text().count("Application shutdown complete") == 2  # stopped as on SIGTERM: jobs closed


def test_a_worker_whose_job_fails_stops_the_others_and_the_server_fails_naming_the_error(tmp_path: Path):
    (tmp_path / "shout.py").write_text(PIPELINE)
    done = subprocess.run([*SAGE, "serve", f"{tmp_path / 'shout.py'}:broken", "--port", str(free_port()),
                           "--workers", "2"], capture_output=True, text=True, timeout=90)
    assert done.returncode == 1, done.stderr
    assert "of 2 ended" in done.stderr
    assert "the model file is missing" in done.stderr
    assert "the other workers were stopped" in done.stderr


def test_workers_must_be_a_positive_int():
    env = LocalEnvironment(name="shout")
    env.from_source(RequestSource()).map(lambda r: r).sink(AnswerSink())
    with pytest.raises(PipelineDefinitionError, match="workers must be an int >= 1, got 0"):
        serve(env, port=free_port(), workers=0)


def test_start_on_a_thread_refuses_workers():
    env = LocalEnvironment(name="shout")
    env.from_source(RequestSource()).map(lambda r: r).sink(AnswerSink())
    with pytest.raises(PipelineDefinitionError, match="start\\(\\) serves from a thread of this process"):
        start(env, workers=2)


def test_a_cluster_served_pipeline_refuses_workers(tmp_path: Path, monkeypatch):
    from sage.kernel.api import RemoteEnvironment

    monkeypatch.setenv("SAGE_HOME", str(tmp_path))  # no cluster: the refusal comes before any call
    env = RemoteEnvironment(name="shout", port=free_port())
    env.from_source(RequestSource()).map(lambda r: r).sink(AnswerSink())
    with pytest.raises(PipelineDefinitionError, match="on a cluster, give the slow operator parallelism instead"):
        env.serve(workers=2)


def test_sage_serve_workers_with_cluster_is_a_usage_error(tmp_path: Path):
    (tmp_path / "shout.py").write_text(PIPELINE)
    done = subprocess.run([*SAGE, "serve", f"{tmp_path / 'shout.py'}:build", "--workers", "2", "--cluster"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--workers runs several server processes here" in done.stderr
