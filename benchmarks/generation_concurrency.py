"""Requests per second through OpenAIGeneratorOperator as max_concurrency grows.

The server is a fixed-latency OpenAI-compatible test server (every chat completion is answered
after exactly ``--latency-ms``), run in its own process so it does not share the client's GIL.
With that latency L and C requests in flight, the best possible rate is C / L; the operator
should reach at least 80% of it.

    .venv/bin/python benchmarks/generation_concurrency.py [--latency-ms 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import time

import structlog
from sage.kernel.api import LocalEnvironment
from sage.middleware.operators.rag import OpenAIGeneratorOperator

REQUESTS_PER_SLOT = 10


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float) -> None:
    """One keep-alive connection of the fixed-latency test server."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length) or b"{}")
            await asyncio.sleep(latency_s)
            reply = json.dumps({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "bench"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            }).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(port: int, latency_s: float) -> None:
    """Run the fixed-latency test server on 127.0.0.1:port until the process is stopped."""
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(r, w, latency_s), "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the fixed-latency test server did not start")


def measure(base_url: str, concurrency: int, parallelism: int) -> float:
    in_flight = concurrency * parallelism
    queries = [{"query": f"question {i}", "contexts": []} for i in range(in_flight * REQUESTS_PER_SLOT)]
    env = LocalEnvironment(name="generation-benchmark", config={"batch_size": len(queries)})
    (env.from_collection(queries)
        .map(OpenAIGeneratorOperator(model="bench", base_url=base_url, max_concurrency=concurrency, max_tokens=1),
             parallelism=parallelism)
        .collect())
    began = time.perf_counter()
    done = len(env.execute().collected())
    assert done == len(queries)
    return done / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; the best is shown")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    latency_s = args.latency_ms / 1000
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port, latency_s), daemon=True)
    server.start()
    try:
        wait_for(port)
        base_url = f"http://127.0.0.1:{port}/v1"
        measure(base_url, 2, 1)  # warm up imports and the connection pool
        print(f"fixed-latency test server: {args.latency_ms:.0f} ms per request; {REQUESTS_PER_SLOT} requests "
              f"per slot in flight; best of {args.repeats} runs per setting")
        print(f"{'parallelism':>11} {'max_conc.':>9} {'in flight':>9} {'req/s':>8} {'ideal':>8} {'of ideal':>8}")
        settings = [(c, 1) for c in args.concurrency] + [(16, 2)]
        worst = 1.0
        for concurrency, parallelism in settings:
            rate = max(measure(base_url, concurrency, parallelism) for _ in range(args.repeats))
            ideal = concurrency * parallelism / latency_s
            worst = min(worst, rate / ideal)
            print(f"{parallelism:>11} {concurrency:>9} {concurrency * parallelism:>9} {rate:>8.1f} {ideal:>8.1f} "
                  f"{rate / ideal:>8.1%}")
        print(f"lowest share of concurrency/latency: {worst:.1%} (target >= 80%)")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
