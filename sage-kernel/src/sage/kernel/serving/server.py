"""Running a served pipeline: its job, the request hub between the job and the HTTP server, and
uvicorn, in the foreground (``serve``) or on a thread (``start``, for tests and notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import structlog
from sage.kernel.api.job import FAILED, JobHandle
from sage.kernel.api.record_events import listen
from sage.kernel.errors import JobFailedError, PipelineDefinitionError
from sage.kernel.serving.request_source import attach
from sage.kernel.serving.requests import RequestHub
from sage.kernel.serving.settings import ServeSettings, check_positive_int, refuse_workers

if TYPE_CHECKING:
    from sage.kernel.api.environment import BaseEnvironment

log = structlog.get_logger("sage.serving")
MISSING_EXTRA = ("serving a pipeline needs Starlette and uvicorn; install them with "
                 "pip install 'sage-kernel[serve]'")


class ServedPipeline:
    """A pipeline that starts with a RequestSource and answers through AnswerSink, with the hub
    that connects both to the server. ``launch`` gives its job's handle: ``env.submit`` here; on
    a cluster, the job the JobManager started, as its reports reach the server's actor."""

    def __init__(self, name: str, settings: ServeSettings, hub: RequestHub, launch: Callable[[], JobHandle],
                 stop_grace_s: float, node_id: str | None = None) -> None:
        self.name = name
        self.node_id = node_id  # the Ray node the server runs on, when on a cluster
        self.worker: int | None = None  # which of several worker processes this is (serve(workers=N))
        self.settings = settings
        self.hub = hub
        self.launch = launch
        self.stop_grace_s = stop_grace_s
        self.handle: JobHandle | None = None
        self.job_id: str | None = None
        self.started = int(time.time())
        self.on_stopped: list[Any] = []
        self.startup_error: BaseException | None = None
        self._unlisten: Any = None

    @classmethod
    def local(cls, env: BaseEnvironment, settings: ServeSettings) -> ServedPipeline:
        """``env``'s pipeline, run in this process next to its server."""
        # Only LocalEnvironment serves in this process; a RemoteEnvironment's serve() asks the JobManager.
        if settings.node is not None:
            raise PipelineDefinitionError(
                f"serve: node={settings.node!r} names a node of a cluster, but pipeline {env.name!r} is "
                "served in this process; serve it on a cluster with RemoteEnvironment.serve(..., node=...) "
                "or `sage serve --cluster --node NODE`, or leave node out")
        if env.runtime_spec.ships_functions or env.config.runtime != "local":
            raise PipelineDefinitionError(
                f"serve: pipeline {env.name!r} runs on {type(env).__name__} with runtime "
                f"{env.config.runtime!r}; serving in this process runs a LocalEnvironment on the local "
                "runtime; serve on a cluster with RemoteEnvironment.serve() or `sage serve --cluster`")
        hub = RequestHub(env.name)
        attach([op.function for op in env.logical_plan().operators], env.name, hub.hub_id)
        return cls(env.name, settings, hub, env.submit, env.config.stop_grace_s)

    def start_job(self) -> None:
        """Start the job (its operators open their models once) and watch it end."""
        self.handle = self.launch()
        self.job_id = self.handle.job_id
        self._unlisten = listen(self.job_id, self.hub)
        threading.Thread(target=self._watch, daemon=True, name=f"sage-serve-{self.name}").start()
        log.info("serving", pipeline=self.name, job_id=self.job_id)

    def _watch(self) -> None:
        assert self.handle is not None
        result = self.handle.wait()
        reason = result.error if result.status == FAILED else f"the job {result.status}"
        self.hub.stop(reason or "the job ended")
        for callback in self.on_stopped:
            callback(result)

    def stop_job(self) -> None:
        """Refuse new requests, fail the pending ones and stop the job within its grace period."""
        self.hub.stop("the server is stopping")
        if self.handle is not None:
            self.handle.cancel()
            with contextlib.suppress(TimeoutError):
                self.handle.wait(timeout=self.stop_grace_s + 2)
        if self._unlisten is not None:
            self._unlisten()
        self.hub.close()

    def metrics(self) -> dict[str, Any]:
        """The server's counters and the job's live per-operator metrics."""
        return {"pipeline": self.name, "job_id": self.job_id, "worker": self.worker,
                "serving": {**self.hub.counts, "in_flight": self.hub.in_flight},
                "operators": self.handle.metrics() if self.handle is not None else {}}

    def asgi(self) -> Any:
        """The Starlette app; its lifespan runs the job while the server runs."""
        try:
            from sage.kernel.serving.app import ServingApp
        except ImportError as exc:
            raise PipelineDefinitionError(f"{MISSING_EXTRA} ({exc})") from exc

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            try:
                self.start_job()
            except BaseException as exc:
                self.startup_error = exc
                raise
            try:
                yield
            finally:
                self.stop_job()

        return ServingApp(self).starlette(lifespan)


class RunningServer:
    """A served pipeline listening on a thread of this process; ``stop()`` ends both."""

    def __init__(self, served: ServedPipeline, sock: socket.socket) -> None:
        import uvicorn

        self.served = served
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(served.asgi(), log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        served.on_stopped.append(lambda result: setattr(self._server, "should_exit", True))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"sage-serve-{served.name}-http")
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.01)
        if not self._server.started:
            if served.startup_error is not None:
                raise served.startup_error
            raise RuntimeError(f"serve: the server for {served.name!r} did not start; see the log above")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether the server still runs (it stops with its job, or on ``stop()``)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking socket listening at ``host:port``, or an error that says to pick another port.
    ``reuse_port``: one of several sockets on that port (serving workers, SO_REUSEPORT)."""
    sock = bound_socket(host, port, reuse_port)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bound_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free one), or an error that says to pick another port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PipelineDefinitionError(f"serve: cannot listen on {host}:{port} ({exc}); pick another port") from exc
    return sock


def _settings(host: str, port: int, options: dict[str, Any]) -> ServeSettings:
    try:
        return ServeSettings(host=host, port=port, **options)
    except TypeError as exc:
        raise PipelineDefinitionError(f"serve: {exc}; the options are max_in_flight, request_timeout_s, "
                                      "retry_after_s and api_key") from exc


def start(env: BaseEnvironment, host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningServer:
    """Serve ``env``'s pipeline on a background thread; returns once it listens (port 0: any free one)."""
    refuse_workers(options, "start() serves from a thread of this process; several worker processes run "
                            "with serve(..., workers=N) or `sage serve --workers N`")
    settings = _settings(host, port, options)
    return start_served(ServedPipeline.local(env, settings))


def start_served(served: ServedPipeline) -> RunningServer:
    """Serve ``served`` on a background thread at its settings' address; returns once it listens."""
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise PipelineDefinitionError(f"{MISSING_EXTRA} ({exc})") from exc
    return RunningServer(served, listening_socket(served.settings.host, served.settings.port))


def serve(env: BaseEnvironment, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          **options: Any) -> None:
    """Serve ``env``'s pipeline until Ctrl-C (or SIGTERM); raise JobFailedError when the job fails.
    ``workers`` > 1: that many processes, each with its own copy of the pipeline (see workers.py)."""
    settings = _settings(host, port, options)
    check_positive_int("workers", workers)
    served = ServedPipeline.local(env, settings)
    if workers > 1:
        from sage.kernel.serving.workers import serve_workers

        served.hub.close()  # the check is done; each worker builds its own
        serve_workers(env, settings, workers)
        return
    run_foreground(served, listening_socket(settings.host, settings.port))


def run_foreground(served: ServedPipeline, sock: socket.socket) -> None:
    """Serve ``served`` on ``sock`` in this thread until a signal stops uvicorn or the job ends;
    raise JobFailedError when the job failed."""
    try:
        import uvicorn
    except ImportError as exc:
        raise PipelineDefinitionError(f"{MISSING_EXTRA} ({exc})") from exc
    ended: list[Any] = []
    server = uvicorn.Server(uvicorn.Config(served.asgi(), log_level="info", lifespan="on",
                                           timeout_graceful_shutdown=5))
    served.on_stopped.append(lambda result: (ended.append(result), setattr(server, "should_exit", True)))
    server.run(sockets=[sock])
    if ended and ended[0].status == FAILED:
        raise JobFailedError(f"served pipeline {served.name!r} failed: {ended[0].error}", ended[0])
