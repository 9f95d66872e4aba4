"""A pipeline served on a node the user names: a second node joins the session's cluster with
``sage cluster start --worker`` (at 127.0.0.2, so that its IP address names it apart from the
head's 127.0.0.1), and the server runs in an actor on it, which its ``/healthz`` shows by the
node id. Management stays with the JobManager (``sage job stop``), requests need the API key,
and a disconnected client's LLM call is cancelled there too."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.serving import AnswerSink, RequestSource
from sage.middleware.operators.rag import OpenAIGeneratorOperator

from tests.services import sage
from tests.serving_clients import ask_and_leave
from tests.slow_chat_server import CLIENT_CLOSED, slow_chat_server
from tests.streaming_cases import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
WORKER_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def nodes(cluster) -> dict[str, dict[str, Any]]:
    """The head and a worker node joined with the CLI at WORKER_IP: {"head": ..., "worker": ...},
    each as the JobManager lists it (node_id, address)."""
    home = Path(tempfile.mkdtemp(prefix="sgn", dir="/tmp"))
    joined = sage("cluster", "start", "--worker", f"--head-address=127.0.0.1:{cluster.client_port}",
                  "--jobmanager-port", str(cluster.jobmanager_port), "--num-cpus", "1", "--node-ip", WORKER_IP,
                  home=home, env={"SAGE_TOKEN": cluster.token})
    try:
        assert joined.returncode == 0, joined.stderr
        client = JobManagerClient("127.0.0.1", cluster.jobmanager_port, token=cluster.token)

        def both() -> dict[str, dict[str, Any]] | None:
            live = [node for node in client.cluster()["nodes"] if node["alive"]]
            worker = [node for node in live if node["address"] == WORKER_IP]
            head = [node for node in live if node["head"]]
            return {"head": head[0], "worker": worker[0]} if worker and head else None

        yield wait_for(both, poll_s=0.5)
    finally:
        sage("cluster", "stop", home=home)
        shutil.rmtree(home, ignore_errors=True)


def answer(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "answer": record["query"][::-1]}


@pytest.fixture
def serve_on_node(cluster):
    """``serve_on_node(name, build, node, host, **options)``; every job is stopped at the end of the test."""
    jobs = []

    def serve(name: str, build, node: str, host: str = "127.0.0.1", **options: Any):
        env = RemoteEnvironment(name, port=cluster.jobmanager_port)
        build(env)
        job = env.serve(host, 0, wait=False, node=node, **options)
        jobs.append(job)
        return job

    yield serve
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(timeout=60)


def simple(env) -> None:
    env.from_source(RequestSource()).map(answer, name="answer").sink(AnswerSink())


def test_a_node_named_by_its_id_runs_the_server_with_its_api_key_and_sage_job_stop_ends_it(cluster, nodes, tmp_path):
    pipeline = tmp_path / "mirror.py"
    pipeline.write_text(textwrap.dedent("""
        from sage.kernel.api import LocalEnvironment
        from sage.kernel.serving import AnswerSink, RequestSource

        def mirror(record):
            return {**record, "answer": record["query"][::-1]}

        def pipeline():
            env = LocalEnvironment(name="mirror")
            env.from_source(RequestSource()).map(mirror).sink(AnswerSink())
            return env
    """))
    worker = nodes["worker"]["node_id"]
    jobmanager = ["--jobmanager-port", str(cluster.jobmanager_port)]
    started = sage("serve", str(pipeline), "--cluster", "--node", worker[:12], "--port", "0", "--api-key", "k3y",
                   *jobmanager, home=cluster.home)  # the id as `sage cluster status` shows it
    assert started.returncode == 0, started.stderr
    job_id, url = started.stdout.split()

    health = httpx.get(url + "/healthz").json()
    assert (health["status"], health["job_id"], health["node_id"]) == ("ok", job_id, worker)
    assert worker != nodes["head"]["node_id"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).completions.create(model="mirror", prompt="q")
    client = openai.OpenAI(base_url=url + "/v1", api_key="k3y")
    reply = client.chat.completions.create(model="mirror", messages=[{"role": "user", "content": "abc"}])
    assert reply.choices[0].message.content == "cba"
    wait_for(lambda: httpx.get(url + "/metrics", headers={"Authorization": "Bearer k3y"})
             .json()["operators"].get("mirror", {}).get("records_out") == 1, poll_s=0.2)

    status = sage("job", "status", job_id, "--port", str(cluster.jobmanager_port), home=cluster.home)
    assert "running" in status.stdout, status.stdout + status.stderr
    stopped = sage("job", "stop", job_id, "--port", str(cluster.jobmanager_port), home=cluster.home)
    assert stopped.returncode == 0, stopped.stderr

    def refused() -> bool:
        try:
            httpx.get(url + "/healthz", timeout=2)
        except httpx.TransportError:
            return True
        return False

    wait_for(refused, poll_s=0.2)


def test_a_node_named_by_its_ip_address_serves_on_every_interface_of_it(nodes, serve_on_node):
    served = serve_on_node("by-ip", simple, node=WORKER_IP, host="0.0.0.0")
    assert served.url.startswith(f"http://{WORKER_IP}:")
    assert served.node_id == nodes["worker"]["node_id"]
    assert httpx.get(served.url + "/healthz").json()["node_id"] == nodes["worker"]["node_id"]
    assert httpx.post(served.url + "/query", json={"query": "node"}).json()["answer"] == "edon"


def test_an_unknown_node_is_refused_naming_the_live_nodes(cluster, nodes):
    env = RemoteEnvironment("nowhere", port=cluster.jobmanager_port)
    simple(env)
    with pytest.raises(JobManagerError) as refused:
        env.serve("127.0.0.1", 0, wait=False, node="10.255.255.1")
    message = str(refused.value)
    assert "no live node of the cluster is '10.255.255.1'" in message
    assert nodes["head"]["node_id"] in message and nodes["worker"]["node_id"] in message
    assert WORKER_IP in message


def test_a_disconnected_clients_llm_call_is_cancelled_when_the_server_runs_on_a_node(nodes, serve_on_node):
    with slow_chat_server(latency_s=5.0) as llm:
        def generating(env) -> None:
            generator = OpenAIGeneratorOperator(model="slow", base_url=llm.base_url, prompt_template="{query}",
                                                max_concurrency=1, max_retries=0)
            env.from_source(RequestSource()).map(generator, name="generate").sink(AnswerSink())

        served = serve_on_node("cancelling-on-node", generating, node=nodes["worker"]["node_id"])
        asyncio.run(ask_and_leave(served.url, "cancelling-on-node", "slow question", llm, stream=False))
        assert llm.wait_ended("slow question") == CLIENT_CLOSED
        llm.latency_s = 0.0
        reply = openai.OpenAI(base_url=served.url + "/v1", api_key="-").chat.completions.create(
            model="cancelling-on-node", messages=[{"role": "user", "content": "next"}])
        assert reply.choices[0].message.content == "echo: next"
    serving = httpx.get(served.url + "/metrics").json()["serving"]
    assert (serving["abandoned"], serving["answered"]) == (1, 1)


def test_the_job_ends_when_its_server_on_the_node_dies(cluster, nodes, serve_on_node):
    import ray
    from sage.kernel.runtime.ray.connection import connect

    served = serve_on_node("orphan", simple, node=nodes["worker"]["node_id"])
    assert httpx.post(served.url + "/query", json={"query": "ab"}).json()["answer"] == "ba"
    connect({"address": cluster.gcs_address})
    servers = [actor for actor in ray.util.list_named_actors(all_namespaces=True)
               if actor["namespace"] == "sage" and actor["name"].startswith("sage-serve-")]
    assert len(servers) == 1, servers
    ray.kill(ray.get_actor(servers[0]["name"], namespace="sage"), no_restart=True)
    ended = served.wait(timeout=60)  # the job does not run on without its server
    assert ended.status == "failed"
    assert "RequestSource" in ended.error and "ServingNode" in ended.error and "died" in ended.error
