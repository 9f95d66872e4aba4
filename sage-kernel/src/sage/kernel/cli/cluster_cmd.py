"""``sage cluster``: start, join, inspect and stop a SAGE cluster (Ray plus the JobManager)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import DEFAULT_PORT, connect_host
from sage.kernel.cluster.processes import (
    ClusterError,
    restart_jobmanager,
    start_head,
    start_worker,
    stop_cluster,
)
from sage.kernel.home.cluster_state import cluster_dir, read_head_state, read_worker_state
from sage.kernel.jobmanager.retention import RetentionPolicy

app = typer.Typer(help="Start, join, inspect and stop a SAGE cluster.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _say(text: str) -> None:
    err.print(f"{text} ...", highlight=False, markup=False)


@app.command("start")
def start(
    head: bool = typer.Option(False, "--head", help="Start a Ray head and the JobManager here."),
    worker: bool = typer.Option(False, "--worker", help="Join this machine to a head."),
    head_address: str = typer.Option(None, help="With --worker: the head's Ray client address, HOST:10001."),
    bind: str = typer.Option("127.0.0.1", help="Address the head listens on; anything else exposes it."),
    port: int = typer.Option(6379, help="Ray GCS port of the head."),
    client_port: int = typer.Option(10001, help="Ray client server port of the head."),
    jobmanager_port: int = typer.Option(DEFAULT_PORT, help="JobManager port (on the head)."),
    num_cpus: int = typer.Option(None, help="CPUs this node offers (default: all)."),
    num_gpus: int = typer.Option(None, help="GPUs this node offers (default: all detected)."),
    node_ip: str = typer.Option(None, help="With --worker: this node's address as the head sees it."),
    min_worker_port: int = typer.Option(None, help="Lowest port of Ray worker processes."),
    max_worker_port: int = typer.Option(None, help="Highest port of Ray worker processes."),
    keep_jobs: int = typer.Option(
        None, help=f"With --head: finished jobs the JobManager keeps (default {RetentionPolicy().keep_jobs})."),
    keep_days: float = typer.Option(
        None, help=f"With --head: days a finished job is kept (default {RetentionPolicy().keep_days:g})."),
) -> None:
    """Start a head (--head) or join a worker (--worker --head-address=HOST:10001)."""
    if head == worker:
        _fail("choose one of --head or --worker")
    retention = {k: v for k, v in (("keep_jobs", keep_jobs), ("keep_days", keep_days)) if v is not None}
    if worker and retention:
        _fail("--keep-jobs and --keep-days are the head's JobManager's; give them with --head")
    try:
        RetentionPolicy(**retention)
    except (TypeError, ValueError) as exc:
        _fail(f"{exc}: --keep-jobs must be at least 1 and --keep-days above 0")
    ports = {k: v for k, v in (("min_worker_port", min_worker_port), ("max_worker_port", max_worker_port)) if v}
    try:
        if head:
            state = start_head(bind, port, client_port, jobmanager_port, num_cpus, num_gpus, **ports,
                               **retention, say=_say)
            err.print(f"Ray head on {state.gcs_address} (client {state.client_address}), "
                      f"JobManager on {state.jobmanager_address}", highlight=False, markup=False)
            err.print(f"token and addresses in {cluster_dir()}; join workers with "
                      f"`sage cluster start --worker --head-address={state.host}:{state.client_port}`",
                      highlight=False, markup=False)
        else:
            if not head_address:
                _fail("--worker needs --head-address=HOST:10001 (the head's Ray client address)")
            state = start_worker(head_address, jobmanager_port, num_cpus, num_gpus, node_ip, **ports, say=_say)
            err.print(f"joined the cluster at {state.gcs_address} as a worker node", highlight=False, markup=False)
    except ClusterError as exc:
        _fail(str(exc))


@app.command("stop")
def stop() -> None:
    """Stop what this machine started: running jobs, the JobManager, then its Ray node(s)."""
    stopped = stop_cluster()
    if not stopped:
        err.print(f"nothing to stop: no cluster was started from {cluster_dir()}", highlight=False, markup=False)
        return
    for item in stopped:
        err.print(f"stopped {item}", highlight=False, markup=False)


@app.command("restart-jobmanager")
def restart() -> None:
    """Restart the head's JobManager (its running jobs stop first); Ray and job records stay as
    they are. The head's supervisor restarts a JobManager that dies by itself."""
    try:
        state, pid = restart_jobmanager()
    except ClusterError as exc:
        _fail(str(exc))
    err.print(f"JobManager on {state.jobmanager_address} (pid {pid})", highlight=False, markup=False)


def _gb(value: float) -> str:
    return f"{value / 1e9:.1f}GB"


@app.command("status")
def status(
    host: str = typer.Option(None, help="JobManager host (default: from the SAGE home, else 127.0.0.1)."),
    port: int = typer.Option(None, help="JobManager port (default: from the SAGE home, else 19001)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JobManager's answers as JSON instead of a table."),
) -> None:
    """Nodes with CPUs/GPUs/memory used and free, JobManager health, and jobs."""
    head = read_head_state()
    worker = read_worker_state()
    if host is None:
        host = head.host if head else (worker.host if worker else "127.0.0.1")
    if port is None:
        port = head.jobmanager_port if head else DEFAULT_PORT
    console = Console(width=160)
    if worker is not None and not as_json:
        console.print(f"this machine runs a worker node joined to {worker.head_address}", highlight=False,
                      markup=False)
    client = JobManagerClient(connect_host(host), port, timeout_s=10.0)
    try:
        health = client.health()
        info = client.cluster()
    except JobManagerError as exc:
        _fail(f"JobManager unhealthy: {exc}")
        return
    if as_json:
        print(json.dumps({"jobmanager": {"address": client.address, **health},
                          "worker_of": worker.head_address if worker is not None else None, **info},
                         indent=2, default=str))
        return
    console.print(f"JobManager at {client.address}: {health['status']} (protocol {health['protocol']}); "
                  f"Ray GCS at {info['gcs_address']}", highlight=False, markup=False)
    table = Table("node", "address", "alive", "CPU used/total", "GPU used/total", "memory used/total")
    for node in info["nodes"]:
        total, free = node["total"], node["free"]
        cells = []
        for name in ("CPU", "GPU", "memory"):
            t = total.get(name, 0.0)
            used = t - free.get(name, t)
            cells.append(f"{_gb(used)}/{_gb(t)}" if name == "memory" else f"{used:g}/{t:g}")
        label = node["node_id"][:12] + (" (head)" if node["head"] else "")
        table.add_row(Text(label), Text(node["address"]), "yes" if node["alive"] else "no", *cells)
    console.print(table)
    jobs = info["jobs"]
    console.print(f"jobs: {jobs['running']} running, {jobs['total']} known (`sage job list`)", highlight=False, markup=False)
