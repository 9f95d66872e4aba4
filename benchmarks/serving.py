"""Latency and requests/s that serving a pipeline adds over calling the LLM server directly.

The LLM server is the fixed-latency OpenAI-compatible test server of
``generation_concurrency.py`` (every chat completion answered after exactly ``--latency-ms``),
in its own process. The served pipeline is ``RequestSource -> OpenAIGeneratorOperator -> AnswerSink``
against that server, served by ``sage.kernel.serving`` in a process of its own (locally), or
through the JobManager of a running SAGE cluster (``--cluster``: the endpoint on the head,
the job in Ray actors). A second baseline is the glue a user would write instead
(``serve_glue``: one Starlette route calling the LLM server through the same openai client,
under uvicorn, in a process of its own), so that what SAGE costs is told apart from what any
Python HTTP front costs on the same cores. The same asyncio + aiohttp load generator sends the
same chat completion requests to all three, ``C`` at a time, and measures each request's
latency; the direct calls, the glue and the served pipeline are measured in the same run,
interleaved.

    .venv/bin/python benchmarks/serving.py [--latency-ms 50] [--concurrency 1 8 32] [--cluster] [--vllm]

``--vllm`` calls vLLM's CPU server instead (``.venv-llm``, a tiny random-weight Llama, one
token per answer), so the baseline is a real inference server's own latency and throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from generation_concurrency import free_port, serve, wait_for
from sage.kernel.api import LocalEnvironment, RemoteEnvironment
from sage.kernel.serving import AnswerSink, RequestSource
from sage.middleware.operators.rag import OpenAIGeneratorOperator

MODEL = "serving-benchmark"
VLLM_MODEL = "tiny-llama"
REPO = Path(__file__).resolve().parents[1]


def pipeline(env: Any, llm_url: str, llm_model: str) -> Any:
    (env.from_source(RequestSource())
        .map(OpenAIGeneratorOperator(model=llm_model, base_url=llm_url, max_concurrency=128, max_tokens=1,
                                     max_retries=0))
        .sink(AnswerSink()))
    return env


def serve_locally(port: int, llm_url: str, llm_model: str, workers: int = 1) -> None:
    """The served pipeline on 127.0.0.1:port, in this (child) process (and ``workers`` processes
    of its own when more than one), until it is stopped."""
    import logging

    logging.disable(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):  # the benchmark's terminate() is a SIGTERM: a stop
        pipeline(LocalEnvironment(MODEL, config={"error_policy": "skip"}), llm_url, llm_model).serve(
            "127.0.0.1", port, workers=workers, max_in_flight=512, request_timeout_s=60)


def serve_glue(port: int, llm_url: str, llm_model: str, reuse_port: bool = False) -> None:
    """The hand-written alternative on 127.0.0.1:port, in this (child) process: one Starlette
    route that calls the LLM server through the openai client as the generator does (its
    ``post()`` with a body built here, over aiohttp, the answer read as JSON) and answers in
    OpenAI's format, under uvicorn with the served pipeline's settings. No SAGE: what a user's
    own glue costs, at its cheapest."""
    import json

    import httpx2
    import openai
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    client = openai.AsyncOpenAI(base_url=llm_url, api_key="EMPTY", max_retries=0,
                                http_client=openai.DefaultAioHttpClient())

    async def chat(request: Any) -> JSONResponse:
        body = await request.json()
        query = body["messages"][-1]["content"]
        answer = await client.post("/chat/completions", cast_to=httpx2.Response, body={
            "model": llm_model, "messages": [{"role": "user", "content": query}], "max_tokens": 1})
        reply = json.loads(answer.content)
        return JSONResponse({"id": reply.get("id"), "object": "chat.completion", "created": int(time.time()),
                             "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                 "role": "assistant", "content": reply["choices"][0]["message"]["content"]}}],
                             "usage": reply.get("usage")})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    sock = socket.socket()
    if reuse_port:  # one of several glue processes, as the served pipeline's workers
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def start_vllm(port: int, folder: Path) -> subprocess.Popen:
    """vLLM's CPU build (``.venv-llm``, from ``scripts/setup-llm-server.sh``) serving the tiny
    random-weight Llama the RAG tests use, on 127.0.0.1:port, as those tests start it."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # for the tests' launcher: one way to start the server
    from tests.rag.vllm_cpu import vllm_command, vllm_environment

    python = REPO / ".venv-llm" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--vllm needs {python}: run `bash scripts/setup-llm-server.sh` first")
    model = folder / VLLM_MODEL
    subprocess.run([str(python), str(REPO / "tests" / "rag" / "make_tiny_llama.py"), str(model)], check=True,
                   capture_output=True)
    # --max-num-seqs 32 (the tests use 8), so that C = 32 is not capped by the server.
    command = vllm_command(python, port, ["--model", str(model), "--served-model-name", VLLM_MODEL,
                                          "--max-model-len", "4096"], max_num_seqs=32)
    log = (folder / "vllm.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=vllm_environment(),
                            start_new_session=True)


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
    """Return once the vLLM server answers /health; exit naming why when it ends or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the vLLM server ended with exit code {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the vLLM server did not answer /health within {timeout_s:.0f} s")


async def load(url: str, model: str, concurrency: int, requests: int) -> tuple[list[float], float]:
    """Per-request latencies (s) and the whole run's duration of ``requests`` chat completions,
    ``concurrency`` in flight at a time.

    The load generator is aiohttp: about 0.3 ms of CPU per request, where httpx's pool took 3
    to 6 ms at 32 in flight and stalled some requests for a second, so that the direct calls
    measured the load generator rather than the LLM server (160 of the 640 requests/s a 50 ms
    server allows at 32 in flight)."""
    latencies: list[float] = []
    body = {"model": model, "messages": [{"role": "user", "content": "How does key_by route records?"}],
            "max_tokens": 1}
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as session:
        async def post() -> None:
            async with session.post("/v1/chat/completions", json=body) as response:
                text = await response.text()
                assert response.status == 200, text

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                await post()
                latencies.append(time.perf_counter() - began)

        # One untimed round opens the connections, so that no measured request waits for one.
        await asyncio.gather(*(post() for _ in range(concurrency)))
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - began


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(url: str, model: str, concurrency: int, requests: int) -> dict[str, float]:
    latencies, duration = asyncio.run(load(url, model, concurrency, requests))
    return {"p50": statistics.median(latencies) * 1000, "p99": percentile(latencies, 0.99) * 1000,
            "rps": len(latencies) / duration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-per-slot", type=int, default=25,
                        help="requests per concurrent client (at least 200 per run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per setting; medians shown")
    parser.add_argument("--cluster", action="store_true",
                        help="serve through the JobManager of the SAGE cluster of $SAGE_HOME")
    parser.add_argument("--jobmanager-port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that serve, locally: the served pipeline's workers (serve(workers=N)) "
                             "and as many glue processes on one port (SO_REUSEPORT)")
    parser.add_argument("--vllm", action="store_true",
                        help="call vLLM's CPU server (a tiny random-weight Llama, 1 token per answer) "
                             "instead of the fixed-latency server")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm: Any = None
    scratch = tempfile.TemporaryDirectory(prefix="sage-serving-bench-")
    served_process = None
    glue_processes: list[Any] = []
    served_job = None
    try:
        llm_url = f"http://127.0.0.1:{llm_port}"
        if args.vllm:
            llm_model = VLLM_MODEL
            llm = start_vllm(llm_port, Path(scratch.name))
            wait_healthy(llm_url, llm)
            llm_name = "vLLM CPU server (tiny random-weight Llama, max_tokens 1)"
        else:
            llm_model = "bench"
            llm = spawn.Process(target=serve, args=(llm_port, args.latency_ms / 1000), daemon=True)
            llm.start()
            wait_for(llm_port)
            llm_name = f"fixed-latency LLM server: {args.latency_ms:.0f} ms per request"
        if args.cluster:
            from sage.kernel.home.cluster_state import read_head_state

            head = read_head_state()
            port = args.jobmanager_port or (head.jobmanager_port if head else 19001)
            env = pipeline(RemoteEnvironment(MODEL, port=port, config={"error_policy": "skip"}), llm_url + "/v1",
                           llm_model)
            served_job = env.serve("127.0.0.1", 0, wait=False, max_in_flight=512, request_timeout_s=60)
            served_url = served_job.url
        else:
            served_port = free_port()
            served_process = spawn.Process(target=serve_locally, args=(served_port, llm_url + "/v1", llm_model,
                                                                       args.workers), daemon=True)
            served_process.start()
            wait_for(served_port)
            if args.workers > 1:
                time.sleep(3)  # every worker listening
            served_url = f"http://127.0.0.1:{served_port}"
        glue_port = free_port()
        for _ in range(1 if args.cluster else args.workers):
            glue_processes.append(spawn.Process(target=serve_glue, daemon=True, args=(
                glue_port, llm_url + "/v1", llm_model, args.workers > 1 and not args.cluster)))
            glue_processes[-1].start()
            wait_for(glue_port)
        if len(glue_processes) > 1:
            time.sleep(2)  # every glue process listening
        glue_url = f"http://127.0.0.1:{glue_port}"
        for url, model in ((llm_url, llm_model), (glue_url, MODEL), (served_url, MODEL)):
            run(url, model, 4, 100)  # warm up every path: imports, connections, the clients
        where = ("through the JobManager, job on Ray" if args.cluster else "locally (its own process)"
                 if args.workers == 1 else f"locally ({args.workers} worker processes; the glue as many)")
        print(f"{llm_name}; the served pipeline {where}; "
              f"median of {args.repeats} interleaved runs")
        print(f"{'conc.':>5} {'direct p50':>10} {'p99':>7} {'req/s':>7} | {'glue p50':>8} {'p99':>7} {'req/s':>7} | "
              f"{'served p50':>10} {'p99':>7} {'req/s':>7} | {'added p50':>9} {'added p99':>9} "
              f"{'req/s / direct':>14} {'/ glue':>6}")
        for concurrency in args.concurrency:
            requests = max(200, concurrency * args.requests_per_slot)
            runs: dict[str, list[dict[str, float]]] = {"direct": [], "glue": [], "served": []}
            for _ in range(args.repeats):
                runs["direct"].append(run(llm_url, llm_model, concurrency, requests))
                runs["glue"].append(run(glue_url, MODEL, concurrency, requests))
                runs["served"].append(run(served_url, MODEL, concurrency, requests))
            d, g, s = ({k: statistics.median(r[k] for r in runs[path]) for k in ("p50", "p99", "rps")}
                       for path in ("direct", "glue", "served"))
            print(f"{concurrency:>5} {d['p50']:>8.1f}ms {d['p99']:>5.1f}ms {d['rps']:>7.1f} | {g['p50']:>6.1f}ms "
                  f"{g['p99']:>5.1f}ms {g['rps']:>7.1f} | {s['p50']:>8.1f}ms {s['p99']:>5.1f}ms {s['rps']:>7.1f} | "
                  f"{s['p50'] - d['p50']:>7.1f}ms {s['p99'] - d['p99']:>7.1f}ms {s['rps'] / d['rps']:>14.2f} "
                  f"{s['rps'] / g['rps']:>6.2f}")
        print(f"targets: added p50 <= {'20' if args.cluster else '5'} ms; req/s / direct >= 0.90 at concurrency 32")
    finally:
        if served_job is not None:
            served_job.cancel()
            served_job.wait(timeout=60)
        for process in (served_process, *glue_processes):
            if process is not None:
                process.terminate()
                process.join(30)
        if isinstance(llm, subprocess.Popen):
            os.killpg(llm.pid, signal.SIGTERM)
            llm.wait(30)
        elif llm is not None:
            llm.terminate()
            llm.join(5)
        scratch.cleanup()


if __name__ == "__main__":
    main()
