"""Starting and stopping the processes of a SAGE cluster on this machine.

Each ``ray start`` runs in a new session, so that every process it leaves behind (GCS,
raylet, agents, workers) shares one process group; the JobManager's supervisor and the
JobManager share another (``supervisor.py``). Stopping signals exactly those groups: other
Ray clusters of the user are left alone, unlike ``ray stop``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import structlog
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import connect_host
from sage.kernel.cluster.errors import ClusterError
from sage.kernel.cluster.process_groups import (
    STOP_GRACE_S,
    group_alive,
    process_alive,
    runs_module,
    stop_group,
)
from sage.kernel.cluster.ray_auth import check_head_refuses_strangers, check_ray_version
from sage.kernel.cluster.supervisor import START_TIMEOUT_S, SUPERVISOR_MODULE, JobManagerCommand
from sage.kernel.home.cluster_state import (
    LOOPBACK,
    HeadState,
    WorkerState,
    cluster_dir,
    new_token,
    private_cluster_dir,
    ray_environment,
    read_head_state,
    read_jobmanager_pid,
    read_token,
    read_token_file,
    read_worker_state,
    remove_state,
    save_token,
    write_state,
)
from sage.kernel.home.private_files import open_private, private_dir

RAY_START_TIMEOUT_S = 120.0
JOBMANAGER_START_TIMEOUT_S = START_TIMEOUT_S + 10.0
SOCKET_PATH_BUDGET = 40
log = structlog.get_logger("sage.cluster")
__all__ = ["ClusterError", "group_alive", "process_alive", "restart_jobmanager", "start_head",
           "start_worker", "stop_cluster", "stop_group"]


def _ray_temp_dir(name: str) -> Path:
    """A Ray temp dir for this cluster, in a folder only this user can enter (Ray makes the
    temp dir itself readable to all); short, because Ray puts Unix sockets inside it."""
    preferred = cluster_dir() / name
    if len(str(preferred.resolve())) <= SOCKET_PATH_BUDGET:
        return preferred
    digest = hashlib.sha1(str(preferred.resolve()).encode()).hexdigest()[:10]
    return private_dir(Path("/tmp") / f"sage-{os.getuid()}") / digest


def _free_port(first: int = 52366, last: int = 52465) -> int:
    """A free port in [first, last]: outside Ray's worker port ranges, unlike an ephemeral one."""
    for port in range(first, last + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free port in {first}-{last} for the Ray dashboard agent")


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((connect_host(host), port)) == 0


def _run_ray_start(args: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run ``ray start`` in a new session; return the process group it leaves behind."""
    env = {**os.environ, **env}
    if env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0" and "--head" not in args:
        del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # a worker node refuses to start with it
    with open_private(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sage.kernel.cluster.launch_ray", "start", *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    try:
        code = process.wait(RAY_START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_group(process.pid, 2)
        raise ClusterError(f"`ray start` did not finish within {RAY_START_TIMEOUT_S:.0f}s; see {log_path}") from None
    if code != 0:
        stop_group(process.pid, 2)
        raise ClusterError(f"`ray start` failed (exit {code}); the end of {log_path}:\n{_tail(log_path)}")
    return process.pid


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _quiet(text: str) -> None:
    """The default listener of what cluster starts wait for: nobody."""


def start_head(host: str = "127.0.0.1", gcs_port: int = 6379, client_port: int = 10001,
               jobmanager_port: int = 19001, num_cpus: int | None = None, num_gpus: int | None = None,
               min_worker_port: int = 20002, max_worker_port: int = 29999, keep_jobs: int | None = None,
               keep_days: float | None = None, say: Callable[[str], None] = _quiet) -> HeadState:
    """Start a Ray head and the JobManager's supervisor; return once Ray refuses clients
    without the token and the JobManager answers. ``keep_jobs``/``keep_days``: the
    JobManager's retention of finished jobs (None: its default). ``say`` hears what it is
    waiting for."""
    check_ray_version()
    existing = read_head_state()
    if existing is not None and group_alive(existing.ray_pgid):
        raise ClusterError(
            f"a SAGE cluster started from {cluster_dir()} is already running (Ray at "
            f"{existing.gcs_address}, JobManager at {existing.jobmanager_address}); "
            "`sage cluster stop` stops it")
    for name, port in (("GCS", gcs_port), ("Ray client", client_port), ("JobManager", jobmanager_port)):
        if _port_in_use(host, port):
            raise ClusterError(f"the {name} port {port} on {host} is in use; choose another with its flag "
                               "(`sage cluster start --help`)")
    private_cluster_dir()
    token = new_token()
    temp_dir = private_dir(_ray_temp_dir("ray-head"))
    loopback = host in LOOPBACK
    env = ray_environment(loopback=loopback)
    args = ["--head", f"--node-ip-address={host}", f"--port={gcs_port}",
            f"--ray-client-server-port={client_port}", f"--min-worker-port={min_worker_port}",
            f"--max-worker-port={max_worker_port}", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    started = time.time()
    say(f"waiting for the Ray head to start on {host}:{gcs_port} (log: {cluster_dir() / 'ray-head.log'})")
    ray_pgid = _run_ray_start(args, env, cluster_dir() / "ray-head.log")
    command = JobManagerCommand(host, jobmanager_port, f"{host}:{gcs_port}", client_port, keep_jobs, keep_days)
    try:
        say("checking that the Ray head refuses clients without the cluster token")
        check_head_refuses_strangers(f"{connect_host(host)}:{gcs_port}", token)
        say(f"waiting for the JobManager to answer on {host}:{jobmanager_port} "
            f"(log: {cluster_dir() / 'jobmanager.log'})")
        supervisor_pid = _start_supervisor(command, ray_pgid, env)
    except BaseException:
        stop_group(ray_pgid)
        raise
    state = HeadState(host=host, gcs_port=gcs_port, client_port=client_port, jobmanager_port=jobmanager_port,
                      temp_dir=str(temp_dir), ray_pgid=ray_pgid, supervisor_pid=supervisor_pid,
                      started_at=started, keep_jobs=keep_jobs, keep_days=keep_days)
    write_state(state)
    return state


def _start_supervisor(command: JobManagerCommand, ray_pgid: int, env: dict[str, str]) -> int:
    """Start the supervisor (which starts the JobManager) in a session of its own; return its
    pid, the group of both, once the JobManager answers."""
    log_path = private_cluster_dir() / "supervisor.log"
    with open_private(log_path, "ab") as out:
        process = subprocess.Popen(command.supervisor_argv(ray_pgid), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                   start_new_session=True, cwd=str(cluster_dir()))
    jobmanager_log = cluster_dir() / "jobmanager.log"
    client = JobManagerClient(connect_host(command.host), command.port, timeout_s=2.0)
    deadline = time.monotonic() + JOBMANAGER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(f"the JobManager did not start; the end of {jobmanager_log}:\n"
                               f"{_tail(jobmanager_log)}\nand of {log_path}:\n{_tail(log_path, 5)}")
        try:
            client.health()
            return process.pid
        except JobManagerError:
            time.sleep(0.3)
    stop_group(process.pid)
    raise ClusterError(f"the JobManager did not answer on {command.host}:{command.port} within "
                       f"{JOBMANAGER_START_TIMEOUT_S:.0f}s; see {jobmanager_log}")


def restart_jobmanager() -> tuple[HeadState, int]:
    """Restart the JobManager of the head started from this SAGE home (after its clean shutdown:
    running jobs stop first), through its supervisor; start a new supervisor if that one is gone.
    Ray is left running; the JobManager reads its job records back from disk. Returns the head's
    state and the new JobManager's pid."""
    head = read_head_state()
    if head is None or not group_alive(head.ray_pgid):
        raise ClusterError(f"no running head was started from {cluster_dir()}; "
                           "`sage cluster start --head` starts one")
    old_pid = read_jobmanager_pid()
    if runs_module(head.supervisor_pid, SUPERVISOR_MODULE):
        os.kill(head.supervisor_pid, signal.SIGHUP)
    else:
        stop_group(head.supervisor_pid)  # a JobManager left behind by a supervisor that died
        command = JobManagerCommand(head.host, head.jobmanager_port, head.gcs_address, head.client_port,
                                    head.keep_jobs, head.keep_days)
        env = ray_environment(loopback=head.host in LOOPBACK)
        head = attrs.evolve(head, supervisor_pid=_start_supervisor(command, head.ray_pgid, env))
        write_state(head)
    client = JobManagerClient(connect_host(head.host), head.jobmanager_port, timeout_s=2.0)
    deadline = time.monotonic() + JOBMANAGER_START_TIMEOUT_S + 60.0  # its jobs stop first
    while time.monotonic() < deadline:
        pid = read_jobmanager_pid()
        if pid is not None and pid != old_pid:
            try:
                client.health()
                return head, pid
            except JobManagerError:
                pass
        if not runs_module(head.supervisor_pid, SUPERVISOR_MODULE):
            break
        time.sleep(0.3)
    raise ClusterError(f"the JobManager did not come back; see {cluster_dir() / 'jobmanager.log'} and "
                       f"{cluster_dir() / 'supervisor.log'}")


def _gcs_address_of(head_address: str, jobmanager_port: int) -> str:
    """The GCS address of the head whose Ray client server is ``head_address``."""
    host = head_address.removeprefix("ray://").rpartition(":")[0] or head_address
    local = read_head_state()
    if local is not None and local.host == host:
        return local.gcs_address
    try:
        return JobManagerClient(host, jobmanager_port, timeout_s=10.0).cluster()["gcs_address"]
    except JobManagerError as exc:
        raise ClusterError(
            f"cannot learn the GCS address from the JobManager at {host}:{jobmanager_port} ({exc}); "
            "check --head-address and --jobmanager-port, and that SAGE_TOKEN holds the head's token") from exc


def start_worker(head_address: str, jobmanager_port: int = 19001, num_cpus: int | None = None,
                 num_gpus: int | None = None, node_ip: str | None = None,
                 min_worker_port: int = 30002, max_worker_port: int = 39999, say: Callable[[str], None] = _quiet) -> WorkerState:
    """Join this machine to the cluster whose head's Ray client server is ``head_address``."""
    check_ray_version()
    existing = read_worker_state()
    if existing is not None and group_alive(existing.ray_pgid):
        raise ClusterError(f"this machine already runs a SAGE worker joined to {existing.head_address} "
                           f"(SAGE home {cluster_dir().parent}); `sage cluster stop` stops it")
    token = read_token()
    if not token:
        raise ClusterError("no cluster token: set SAGE_TOKEN to the content of the head's "
                           "SAGE_HOME/cluster/token")
    gcs_address = _gcs_address_of(head_address, jobmanager_port)
    if read_token_file() != token:
        save_token(token)
    gcs_host = gcs_address.rpartition(":")[0]
    loopback = gcs_host in LOOPBACK
    node_ip = node_ip or ("127.0.0.1" if loopback else None)
    temp_dir = private_dir(_ray_temp_dir("ray-worker"))
    env = ray_environment(loopback=False)
    args = [f"--address={gcs_address}", f"--min-worker-port={min_worker_port}",
            f"--max-worker-port={max_worker_port}", f"--dashboard-agent-listen-port={_free_port()}",
            "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    if node_ip:
        args.append(f"--node-ip-address={node_ip}")
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    started = time.time()
    say(f"waiting for Ray to join this node to {head_address} (log: {cluster_dir() / 'ray-worker.log'})")
    pgid = _run_ray_start(args, env, cluster_dir() / "ray-worker.log")
    state = WorkerState(head_address=head_address, gcs_address=gcs_address, node_ip=node_ip or "",
                        temp_dir=str(temp_dir), ray_pgid=pgid, started_at=started)
    write_state(state)
    return state


def stop_cluster() -> list[str]:
    """Stop what this machine started (jobs first, then the JobManager, then Ray)."""
    stopped = []
    worker = read_worker_state()
    if worker is not None:
        stop_group(worker.ray_pgid)
        remove_state(WorkerState)
        stopped.append(f"Ray worker node joined to {worker.head_address}")
    head = read_head_state()
    if head is not None:
        client = JobManagerClient(connect_host(head.host), head.jobmanager_port, timeout_s=30.0)
        try:
            client.shutdown()  # the JobManager stops its jobs, then exits, and so does its supervisor
        except JobManagerError as exc:
            log.warning("jobmanager did not shut down cleanly", error=str(exc))
        deadline = time.monotonic() + STOP_GRACE_S
        while group_alive(head.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_group(head.supervisor_pid)
        stopped.append(f"JobManager on {head.jobmanager_address} and its supervisor")
        stop_group(head.ray_pgid)
        remove_state(HeadState)
        stopped.append(f"Ray head on {head.gcs_address}")
    return stopped
