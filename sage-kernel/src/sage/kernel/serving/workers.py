"""Serving one pipeline from several processes, as uvicorn's and gunicorn's workers do.

A served process runs its Python (the HTTP server, the pipeline, the LLM client) on one core at
a time, so one process caps a local server at what one core does. With ``workers=N`` this
process holds the port, and starts N worker processes that each run a copy of the pipeline's
job and listen on it. On Linux each worker has its own socket (``SO_REUSEPORT``), so the kernel
spreads new connections evenly over the workers (nginx's and gunicorn's ``reuse-port``); one
socket shared by every worker would give most connections to whichever wakes first. Elsewhere
the workers share this process's listening socket. Each worker loads its models once, keeps its
own limits (``max_in_flight`` is per worker) and answers ``/healthz`` and ``/metrics`` for
itself. Ctrl-C or SIGTERM stops every worker within its grace period; a worker whose job
fails stops the others, and ``serve`` raises the failure.

The parent pickles the environment once (the user's own modules by value, as for a cluster)
and hands it to each worker on its standard input; a worker is ``python -m
sage.kernel.serving.workers``, so nothing of the user's script runs again in it. The parent
keeps that input open: a worker stops (as on SIGTERM) when it closes, so no worker outlives a
parent that was killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import attrs
import cloudpickle
import structlog
from sage.kernel.errors import JobFailedError, PipelineDefinitionError
from sage.kernel.plan.shipping import by_value, user_modules
from sage.kernel.serving.server import (
    MISSING_EXTRA,
    ServedPipeline,
    bound_socket,
    listening_socket,
    run_foreground,
)
from sage.kernel.serving.settings import ServeSettings

if TYPE_CHECKING:
    from sage.kernel.api.environment import BaseEnvironment

log = structlog.get_logger("sage.serving")
REUSE_PORT = sys.platform.startswith("linux")
EXTRA_GRACE_S = 10.0  # beyond the job's stop grace: uvicorn's own graceful shutdown (5 s) and the exit


class _Worker:
    """One worker process and the pipe on which it says why it failed (closed when it exits)."""

    def __init__(self, index: int, workers: int, blob: bytes, shared: socket.socket | None) -> None:
        self.index = index
        status_read, status_write = os.pipe()
        self.status = status_read
        fds = (status_write,) if shared is None else (status_write, shared.fileno())
        command = [sys.executable, "-m", "sage.kernel.serving.workers", str(status_write), str(index),
                   str(workers), str(-1 if shared is None else shared.fileno())]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=fds)
        os.close(status_write)
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a worker that died at start says so on its status pipe
            self.process.stdin.write(len(blob).to_bytes(8, "big") + blob)
            self.process.stdin.flush()

    def failure(self) -> str:
        """What the worker wrote before it exited (empty when it wrote nothing)."""
        chunks = []
        while chunk := os.read(self.status, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()


def serve_workers(env: BaseEnvironment, settings: ServeSettings, workers: int) -> None:
    """Serve ``env``'s pipeline from ``workers`` processes until Ctrl-C or SIGTERM; raise
    JobFailedError when a worker's job fails (the other workers are stopped first)."""
    try:
        import uvicorn  # noqa: F401  (said here once, not by every worker)
    except ImportError as exc:
        raise PipelineDefinitionError(f"{MISSING_EXTRA} ({exc})") from exc
    # On Linux this process only holds the port (bound, not listening: it takes no connection)
    held = bound_socket(settings.host, settings.port, reuse_port=True) if REUSE_PORT else None
    shared = None if held is not None else listening_socket(settings.host, settings.port)
    settings = attrs.evolve(settings, port=(held or shared).getsockname()[1])
    with by_value(user_modules()):
        try:
            # with this process's logging.disable() level: the workers log (access lines too) as it would
            blob = cloudpickle.dumps((env, settings, logging.root.manager.disable))
        except Exception as exc:
            raise PipelineDefinitionError(
                f"serve: pipeline {env.name!r} cannot be sent to its worker processes: it cannot be pickled "
                f"({type(exc).__name__}: {exc}); create clients, locks and models in open() instead of "
                "__init__()") from exc
    grace_s = env.config.stop_grace_s + EXTRA_GRACE_S
    started: list[_Worker] = []
    previous = _stop_on_signals()
    try:
        started.extend(_Worker(index, workers, blob, shared) for index in range(workers))
        log.info("serving with workers", pipeline=env.name, workers=workers,
                 pids=[worker.process.pid for worker in started])
        ended, reason = _wait_for_first_exit(started)
    except KeyboardInterrupt:
        _stop(started, grace_s)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        (held or shared).close()
    _stop(started, grace_s)
    code = ended.process.returncode
    raise JobFailedError(f"served pipeline {env.name!r}: worker {ended.index} of {workers} ended "
                         f"(exit code {code}): {reason or 'see its log above'}; the other workers were stopped")


def _stop_on_signals() -> dict[int, Any]:
    """Let Ctrl-C and SIGTERM stop the workers, also where SIGINT was ignored when this process
    started (a shell's background job), as uvicorn does for one process; the handlers replaced.
    Only the main thread may set handlers: elsewhere the caller's stay."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}


def _wait_for_first_exit(workers: list[_Worker]) -> tuple[_Worker, str]:
    """Block until a worker exits (its status pipe then reads to its end); that worker and what it said."""
    by_status = {worker.status: worker for worker in workers}
    readable, _, _ = select.select(list(by_status), [], [])
    worker = by_status[readable[0]]
    reason = worker.failure()
    worker.process.wait()
    return worker, reason


def _stop(workers: list[_Worker], grace_s: float) -> None:
    """SIGTERM every worker still running (a graceful stop: its job's close() runs), then wait;
    kill one that outlives ``grace_s``."""
    for worker in workers:
        if worker.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in time; killed", worker=worker.index, pid=worker.process.pid)
            worker.process.kill()
            worker.process.wait()
        os.close(worker.status)
        with contextlib.suppress(OSError):
            worker.process.stdin.close()


def _stop_when_parent_goes() -> None:
    """Stop this worker as SIGTERM does once the parent's end of standard input closes (it ended)."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(argv: list[str]) -> int:
    """A worker: read the pickled pipeline from stdin, serve it on the inherited socket."""
    status_fd, index, workers, shared_fd = (int(arg) for arg in argv)
    with os.fdopen(status_fd, "w") as status:
        try:
            size = int.from_bytes(sys.stdin.buffer.read(8), "big")
            env, settings, disabled_below = cloudpickle.loads(sys.stdin.buffer.read(size))
            threading.Thread(target=_stop_when_parent_goes, daemon=True, name="sage-serve-lifeline").start()
            logging.disable(disabled_below)
            served = ServedPipeline.local(env, settings)
            served.worker = index
            if shared_fd >= 0:
                sock = socket.socket(fileno=shared_fd)
            else:
                sock = listening_socket(settings.host, settings.port, reuse_port=True)
            run_foreground(served, sock)
        except KeyboardInterrupt:  # uvicorn stopped on SIGINT and raised it again
            return 0
        except Exception as exc:
            reason = str(exc) if isinstance(exc, JobFailedError) else f"{type(exc).__name__}: {exc}"
            log.error("worker failed", worker=index, workers=workers, error=reason)
            status.write(reason)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
