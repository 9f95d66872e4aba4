"""Starting and stopping the processes of a SAGE cluster on this machine.

Each ``ray start`` runs in a new session, so that every process it leaves behind (GCS,
raylet, agents, workers) shares one process group; the JobManager gets its own. Stopping
signals exactly those groups: other Ray clusters of the user are left alone, unlike
``ray stop``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import structlog
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import connect_host
from sage.kernel.errors import SageError
from sage.kernel.home.cluster_state import (
    LOOPBACK,
    HeadState,
    WorkerState,
    cluster_dir,
    new_token,
    ray_environment,
    read_head_state,
    read_token,
    read_token_file,
    read_worker_state,
    remove_state,
    save_token,
    write_state,
)

RAY_START_TIMEOUT_S = 120.0
JOBMANAGER_START_TIMEOUT_S = 90.0
STOP_GRACE_S = 5.0
SOCKET_PATH_BUDGET = 40
log = structlog.get_logger("sage.cluster")


class ClusterError(SageError):
    """A cluster could not be started, joined or stopped."""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie (Linux /proc; else assume yes)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pgid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _ray_temp_dir(name: str) -> Path:
    """A Ray temp dir for this cluster; short, because Ray puts Unix sockets inside it."""
    preferred = cluster_dir() / name
    if len(str(preferred.resolve())) <= SOCKET_PATH_BUDGET:
        return preferred
    digest = hashlib.sha1(str(preferred.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"sage-{os.getuid()}-{digest}"


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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env}
    if env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0" and "--head" not in args:
        del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # a worker node refuses to start with it
    with log_path.open("ab") as out:
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
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise ClusterError(f"`ray start` failed (exit {code}); the end of {log_path}:\n{tail}")
    return process.pid


def start_head(host: str = "127.0.0.1", gcs_port: int = 6379, client_port: int = 10001,
               jobmanager_port: int = 19001, num_cpus: int | None = None, num_gpus: int | None = None,
               min_worker_port: int = 20002, max_worker_port: int = 29999) -> HeadState:
    """Start a Ray head and the JobManager; return once both answer."""
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
    new_token()
    temp_dir = _ray_temp_dir("ray-head")
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
    ray_pgid = _run_ray_start(args, env, cluster_dir() / "ray-head.log")
    try:
        jm_pid = _start_jobmanager(host, jobmanager_port, f"{host}:{gcs_port}", client_port, env)
    except BaseException:
        stop_group(ray_pgid)
        raise
    state = HeadState(host=host, gcs_port=gcs_port, client_port=client_port, jobmanager_port=jobmanager_port,
                      temp_dir=str(temp_dir), ray_pgid=ray_pgid, jobmanager_pid=jm_pid, started_at=started)
    write_state(state)
    return state


def _start_jobmanager(host: str, port: int, gcs_address: str, client_port: int, env: dict[str, str]) -> int:
    log_path = cluster_dir() / "jobmanager.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sage.kernel.jobmanager", "--host", host, "--port", str(port),
             "--ray-address", gcs_address, "--client-port", str(client_port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **env}, start_new_session=True, cwd=str(cluster_dir()))
    client = JobManagerClient(connect_host(host), port, timeout_s=2.0)
    deadline = time.monotonic() + JOBMANAGER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise ClusterError(f"the JobManager exited (code {process.returncode}); the end of {log_path}:\n{tail}")
        try:
            client.health()
            return process.pid
        except JobManagerError:
            time.sleep(0.3)
    stop_group(process.pid)
    raise ClusterError(f"the JobManager did not answer on {host}:{port} within "
                       f"{JOBMANAGER_START_TIMEOUT_S:.0f}s; see {log_path}")


def restart_jobmanager() -> HeadState:
    """Stop the JobManager of the head started from this SAGE home, if it still runs, and start
    it again on the same address, as ``start_head`` does; it reads its job records back from disk.
    Ray is left running."""
    head = read_head_state()
    if head is None or not group_alive(head.ray_pgid):
        raise ClusterError(f"no running head was started from {cluster_dir()}; "
                           "`sage cluster start --head` starts one")
    stop_group(head.jobmanager_pid)
    env = ray_environment(loopback=head.host in LOOPBACK)
    jm_pid = _start_jobmanager(head.host, head.jobmanager_port, head.gcs_address, head.client_port, env)
    state = attrs.evolve(head, jobmanager_pid=jm_pid)
    write_state(state)
    return state


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
                 min_worker_port: int = 30002, max_worker_port: int = 39999) -> WorkerState:
    """Join this machine to the cluster whose head's Ray client server is ``head_address``."""
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
    temp_dir = _ray_temp_dir("ray-worker")
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
            client.shutdown()
        except JobManagerError as exc:
            log.warning("jobmanager did not shut down cleanly", error=str(exc))
        stop_group(head.jobmanager_pid, grace_s=5.0)
        stopped.append(f"JobManager on {head.jobmanager_address}")
        stop_group(head.ray_pgid)
        remove_state(HeadState)
        stopped.append(f"Ray head on {head.gcs_address}")
    return stopped
