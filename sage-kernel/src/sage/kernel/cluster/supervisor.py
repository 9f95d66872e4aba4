"""``python -m sage.kernel.cluster.supervisor``: keeps the head's JobManager running.

``sage cluster start --head`` starts the supervisor in a process group of its own, and the
supervisor starts the JobManager in the same group, so that ``sage cluster stop`` stops both
with one signal. When the JobManager dies (a crash, ``kill -9``, the kernel's OOM killer) the
supervisor starts it again and tells it how the last one ended, so that the jobs that were
running are marked failed with that cause. Restarts that follow quick deaths wait longer
(1 s, 2 s, 4 s ... up to 30 s). SIGHUP asks for a restart (``sage cluster
restart-jobmanager``): the JobManager is shut down cleanly first. The supervisor ends when the
JobManager exits by itself after a shutdown request (exit code 0), on SIGTERM, when the
JobManager's first start fails, and when Ray's head is gone.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import attrs
import structlog
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import connect_host
from sage.kernel.cluster.process_groups import STOP_GRACE_S, group_alive
from sage.kernel.home.cluster_state import private_cluster_dir, write_jobmanager_pid
from sage.kernel.home.private_files import open_private

RESTART_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_AFTER_S = 60.0
START_TIMEOUT_S = 90.0
SHUTDOWN_TIMEOUT_S = 40.0
POLL_S = 0.2
RESTART_REQUESTED = "stopped by `sage cluster restart-jobmanager`"
SUPERVISOR_MODULE = "sage.kernel.cluster.supervisor"
log = structlog.get_logger("sage.supervisor")


def exit_cause(returncode: int) -> str:
    """How a process ended, from its ``Popen.returncode``: ``killed by signal 9``."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@attrs.frozen
class JobManagerCommand:
    """How to start the JobManager: address, Ray cluster, retention flags."""

    host: str
    port: int
    ray_address: str
    client_port: int
    keep_jobs: int | None = None
    keep_days: float | None = None

    def argv(self, previous_exit: str | None) -> list[str]:
        argv = [sys.executable, "-m", "sage.kernel.jobmanager", "--host", self.host, "--port", str(self.port),
                "--ray-address", self.ray_address, "--client-port", str(self.client_port)]
        if self.keep_jobs is not None:
            argv += ["--keep-jobs", str(self.keep_jobs)]
        if self.keep_days is not None:
            argv += ["--keep-days", str(self.keep_days)]
        if previous_exit:
            argv += ["--previous-exit", previous_exit]
        return argv

    def supervisor_argv(self, ray_pgid: int) -> list[str]:
        """The command line that starts a supervisor of this JobManager."""
        argv = [sys.executable, "-m", SUPERVISOR_MODULE, "--ray-pgid", str(ray_pgid)]
        return argv + self.argv(None)[3:]


class Supervisor:
    """Starts the JobManager and starts it again whenever it dies."""

    def __init__(self, command: JobManagerCommand, ray_pgid: int) -> None:
        self.command = command
        self.ray_pgid = ray_pgid
        self.log_path = private_cluster_dir() / "jobmanager.log"
        self.stopping = threading.Event()
        self.restart_requested = threading.Event()

    def run(self) -> int:
        """Supervise until told to stop; the exit code of the supervisor process."""
        process = self._start(None)
        if not self._wait_healthy(process):
            return 1
        failures = 0
        while True:
            started = time.monotonic()
            while process.poll() is None and not (self.stopping.is_set() or self.restart_requested.is_set()):
                time.sleep(POLL_S)
            if self.stopping.is_set():
                self._terminate(process)
                return 0
            if self.restart_requested.is_set():
                self.restart_requested.clear()
                cause, delay = self._shut_down(process), 0.0
            elif process.returncode == 0:
                log.info("the jobmanager was shut down; the supervisor ends")
                return 0
            else:
                cause = exit_cause(process.returncode)
                if time.monotonic() - started >= STABLE_AFTER_S:
                    failures = 0
                delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
                failures += 1
                log.warning("the jobmanager died; starting it again", cause=cause, delay_s=delay)
            if self.stopping.wait(delay):
                return 0
            if not group_alive(self.ray_pgid):
                log.error("the Ray head is gone; the jobmanager is not started again", ray_pgid=self.ray_pgid)
                return 1
            process = self._start(cause)

    def _start(self, previous_exit: str | None) -> subprocess.Popen:
        with open_private(self.log_path, "ab") as out:
            process = subprocess.Popen(self.command.argv(previous_exit), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        write_jobmanager_pid(process.pid)
        log.info("jobmanager started", pid=process.pid, previous_exit=previous_exit)
        return process

    def _client(self, timeout_s: float) -> JobManagerClient:
        return JobManagerClient(connect_host(self.command.host), self.command.port, timeout_s=timeout_s)

    def _wait_healthy(self, process: subprocess.Popen) -> bool:
        """Whether the first JobManager answers; one that exits or stays silent is not retried."""
        client = self._client(2.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping.is_set():
            if process.poll() is not None:
                log.error("the jobmanager exited on its first start", cause=exit_cause(process.returncode))
                return False
            try:
                client.health()
                return True
            except JobManagerError:
                time.sleep(0.3)
        self._terminate(process)
        return False

    def _shut_down(self, process: subprocess.Popen) -> str | None:
        """Stop the JobManager cleanly (its jobs stop first); the cause to report for jobs that
        it could not stop, None when it exited cleanly."""
        try:
            self._client(SHUTDOWN_TIMEOUT_S).shutdown()
        except JobManagerError as exc:
            log.warning("the jobmanager did not take the shutdown request", error=str(exc))
        try:
            process.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._terminate(process)
            return RESTART_REQUESTED
        return None if process.returncode == 0 else RESTART_REQUESTED

    def _terminate(self, process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sage.kernel.cluster.supervisor",
                                     description="Keep a SAGE head's JobManager running.")
    parser.add_argument("--ray-pgid", type=int, required=True, help="the Ray head's process group")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ray-address", required=True)
    parser.add_argument("--client-port", type=int, required=True)
    parser.add_argument("--keep-jobs", type=int, default=None)
    parser.add_argument("--keep-days", type=float, default=None)
    args = parser.parse_args(argv)
    command = JobManagerCommand(args.host, args.port, args.ray_address, args.client_port,
                                args.keep_jobs, args.keep_days)
    supervisor = Supervisor(command, args.ray_pgid)

    def on_signal(signum: int, frame: Any) -> None:
        (supervisor.restart_requested if signum == signal.SIGHUP else supervisor.stopping).set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
