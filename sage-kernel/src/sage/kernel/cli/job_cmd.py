"""``sage job``: list, inspect, stop and follow jobs on the JobManager."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import DEFAULT_PORT, connect_host
from sage.kernel.home.cluster_state import read_head_state

app = typer.Typer(help="List, inspect, stop and follow jobs on the JobManager.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
HostOption = typer.Option(None, "--host", help="JobManager host (default: from the SAGE home).")
PortOption = typer.Option(None, "--port", help="JobManager port (default: from the SAGE home).")
JsonOption = typer.Option(False, "--json", help="Print the JobManager's answer as JSON instead of a table.")


def _client(host: str | None, port: int | None) -> JobManagerClient:
    head = read_head_state()
    host = host or (head.host if head else "127.0.0.1")
    port = port or (head.jobmanager_port if head else DEFAULT_PORT)
    return JobManagerClient(connect_host(host), port)


def _call(fn, *args: Any) -> Any:
    try:
        return fn(*args)
    except JobManagerError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


@app.command("list")
def list_jobs(host: str = HostOption, port: int = PortOption, as_json: bool = JsonOption) -> None:
    """Every job the JobManager knows, oldest first."""
    jobs = _call(_client(host, port).jobs)
    if as_json:
        print(json.dumps({"jobs": jobs}, indent=2, default=str))
        return
    table = Table("job id", "name", "status", "started", "duration", "error")
    for job in jobs:
        duration = f"{job['duration_s']:.1f}s" if job.get("duration_s") is not None else "-"
        table.add_row(Text(job["job_id"]), Text(job["name"]), Text(job["status"]), _when(job["started_at"]),
                      duration, Text((job.get("error") or "")[:60]))
    Console(width=200).print(table)


@app.command("status")
def status(job_id: str, host: str = HostOption, port: int = PortOption, as_json: bool = JsonOption) -> None:
    """A job's status with per-operator, per-instance records in/out, throughput, queue depth and errors."""
    job = _call(_client(host, port).job, job_id)
    if as_json:
        print(json.dumps(job, indent=2, default=str))
        return
    console = Console(width=200)
    duration = f"{job['duration_s']:.1f}s" if job.get("duration_s") is not None else "-"
    console.print(f"{job['job_id']} ({job['name']}): {job['status']}, running time {duration}",
                  highlight=False, markup=False)
    if job.get("error"):
        console.print(f"error: {job['error']}", highlight=False, markup=False)
    for line in _recovery_lines(job):
        console.print(line, highlight=False, markup=False)
    for warning in job.get("warnings") or []:
        console.print(f"warning: {warning}", highlight=False, markup=False)
    if job.get("output_lines_dropped"):
        console.print(f"{job['output_lines_dropped']} lines the job printed were dropped (sage job logs "
                      "marks where)", highlight=False, markup=False)
    table = Table("operator", "instance", "records in", "records out", "records/s", "queue depth", "errors")
    seconds = job.get("duration_s") or 0
    for row in job["instances"]:
        handled = row["records_out"] if row["records_in"] == 0 else row["records_in"]  # a source: what it read
        rate = f"{handled / seconds:,.0f}" if seconds > 0 else "-"
        table.add_row(Text(row["operator"]), str(row["instance"]), str(row["records_in"]), str(row["records_out"]),
                      rate, str(row["queue_depth"]), str(row["errors"]))
    for name, metrics in job["metrics"].items():
        table.add_row(Text(name, style="bold"), "all", str(metrics["records_in"]), str(metrics["records_out"]),
                      f"{job['throughput'].get(name, 0.0):,.0f}", str(metrics.get("queue_depth", 0)),
                      str(metrics["errors"]))
    console.print(table)


def _recovery_lines(job: dict[str, Any]) -> list[str]:
    """What ``sage job status`` says of a job's fault tolerance: what it resumed, its restarts
    with their notes, its newest checkpoint and savepoint, the sources it is at-most-once from."""
    lines = []
    if job.get("resumed_job") or job.get("resumed_from"):
        lines.append(f"resumed {job.get('resumed_job') or 'a job'} from {job.get('resumed_from') or 'its start'}")
    if job.get("restarts"):
        lines.append(f"restarts: {job['restarts']}")
    lines.extend(f"note: {note}" for note in job.get("notes") or [])
    if job.get("checkpoint"):
        lines.append(f"checkpoint: {job['checkpoint']}")
    if job.get("savepoint"):
        lines.append(f"savepoint: {job['savepoint']}")
    lines.extend(job.get("at_most_once") or [])
    return lines


def _value(value: Any) -> str:
    """A metric as the table shows it: a number, or a recorded series' count, mean, p50, p99, max."""
    if isinstance(value, dict):
        return (f"count={value.get('count', 0):,} mean={value.get('mean', 0):,.2f} p50={value.get('p50', 0):,.2f} "
                f"p99={value.get('p99', 0):,.2f} max={value.get('max', 0):,.2f}")
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int | float) else str(value)


@app.command("metrics")
def metrics(job_id: str, host: str = HostOption, port: int = PortOption, as_json: bool = JsonOption) -> None:
    """A job's metrics per operator, built-in and recorded by user code (series as count, mean, p50, p99, max)."""
    answer = _call(_client(host, port).metrics, job_id)
    if as_json:
        print(json.dumps(answer, indent=2, default=str))
        return
    table = Table("operator", "metric", "value")
    for name, group in answer["metrics"].items():
        for metric, value in group.items():
            table.add_row(Text(name), Text(metric), Text(_value(value)))
    Console(width=200).print(table)


SavepointOption = typer.Option(
    None, "--savepoint",
    help="Write the job's state to this folder before it ends, to resume it with `sage job resume`: an "
         "absolute path on the head's filesystem (the JobManager writes it), a folder that does not exist yet.")
WAIT_FOR_SAVEPOINT_S = 600.0


@app.command("stop")
def stop(job_id: str, savepoint: str | None = SavepointOption, host: str = HostOption,
         port: int = PortOption) -> None:
    """Stop a job's sources; records already read still pass every operator."""
    client = _client(host, port)
    job = _call(client.stop, job_id, savepoint)
    if savepoint is None and job["status"] != "running":
        err.print(f"job {job['job_id']} has already ended ({job['status']}); nothing to stop",
                  highlight=False, markup=False)
        return
    if savepoint is None:
        err.print(f"stop requested for {job['job_id']}; it ends within its stop_grace_s "
                  f"(`sage job status {job['job_id']}`)", highlight=False, markup=False)
        return
    err.print(f"stop requested for {job['job_id']}, with a savepoint; waiting for it to end",
              highlight=False, markup=False)
    deadline = time.monotonic() + WAIT_FOR_SAVEPOINT_S
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        job = _call(client.job, job_id)
    if job.get("savepoint"):
        err.print(f"job {job_id} {job['status']}; savepoint written to {job['savepoint']} (on the head); "
                  f"`sage job resume {job_id}` continues from it", highlight=False, markup=False)
        return
    why = "; ".join(note for note in job.get("notes") or [] if "savepoint" in note) or \
        f"the job is {job['status']}" + (f": {job['error']}" if job.get("error") else "")
    err.print(f"[red]error:[/red] no savepoint of {job_id}: {escape(why)}", highlight=False)
    raise typer.Exit(1)


@app.command("resume")
def resume(job_id: str,
           start: str | None = typer.Option(
               None, "--from",
               help="The savepoint or checkpoint folder to start from: an absolute path on the head's "
                    "filesystem (default: the savepoint the job was stopped with, else its newest checkpoint)."),
           host: str = HostOption, port: int = PortOption,
           as_json: bool = typer.Option(False, "--json", help="Print the new job's record as JSON instead of "
                                                               "its id.")) -> None:
    """Run an ended job's pipeline again as a new job, from its savepoint or newest checkpoint."""
    job = _call(_client(host, port).resume, job_id, start)
    if as_json:
        print(json.dumps(job, indent=2, default=str))
        return
    print(job["job_id"])
    err.print(f"job {job_id} resumed as {job['job_id']} from {job['resumed_from']} (`sage job status "
              f"{job['job_id']}`)", highlight=False, markup=False)


def _pages(client: JobManagerClient, job_id: str, follow: bool) -> Iterator[dict[str, Any]]:
    """The job's log page by page from its start; with ``follow``, until the job has ended."""
    offset = 0
    while True:
        page = _call(client.logs, job_id, offset)
        yield page
        offset = page["offset"]
        if offset < page["size"] and page["text"]:
            continue  # more of the log is there already
        if not follow or page["done"]:
            return
        time.sleep(0.5)


@app.command("logs")
def logs(job_id: str, follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends."),
         host: str = HostOption, port: int = PortOption,
         as_json: bool = typer.Option(False, "--json", help="Print the log as one JSON object (with --follow: "
                                                             "once the job has ended).")) -> None:
    """What the job's functions printed, and its lifecycle events (read page by page)."""
    client = _client(host, port)
    if not as_json:
        for page in _pages(client, job_id, follow):
            sys.stdout.write(page["text"])
            sys.stdout.flush()
        return
    texts, done = [], False
    for page in _pages(client, job_id, follow):
        texts.append(page["text"])
        done = page["done"]
    lines = "".join(texts).split("\n")
    if lines[-1] == "":
        lines.pop()  # the log ends with a newline
    print(json.dumps({"job_id": job_id, "done": done, "lines": lines}, indent=2))
