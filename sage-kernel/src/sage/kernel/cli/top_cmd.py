"""``sage job top`` and ``sage job graph``: a live view of the cluster's running jobs, and a
job's plan with its latest counts."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sage.kernel.cli.job_cmd import HostOption, PortOption, _call, _client

FORMATS = ("text", "mermaid", "dot")


def operator_rows(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Per operator of a job's record, what ``sage job top`` shows: its instances and nodes,
    records/s, processing time p50 and p99 per batch (sampled; None before the first sample),
    queued batches, time blocked on full channels and errors."""
    by_operator: dict[str, list[dict[str, Any]]] = {}
    for row in job.get("instances", []):
        by_operator.setdefault(row["operator"], []).append(row)
    rows = []
    for name, metrics in job.get("metrics", {}).items():
        instances = by_operator.get(name, [])
        latency = metrics.get("processing_ms")
        sampled = isinstance(latency, dict) and bool(latency.get("count"))
        rows.append({
            "operator": name,
            "instances": len(instances),
            "nodes": sorted({row.get("node") or "?" for row in instances}),
            "records_per_s": job.get("throughput", {}).get(name, 0.0),
            "p50_ms": latency["p50"] if sampled else None,
            "p99_ms": latency["p99"] if sampled else None,
            "queued": sum(row.get("queue_depth", 0) for row in instances),
            "blocked_ms": metrics.get("blocked_ms", 0),
            "errors": metrics.get("errors", 0),
        })
    return rows


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """One running job as ``sage job top --json`` prints it."""
    return {"job_id": job["job_id"], "name": job["name"], "status": job["status"],
            "duration_s": job.get("duration_s"), "operators": operator_rows(job)}


def job_table(job: dict[str, Any]) -> Table:
    """One running job as the live view shows it (``operator_rows``)."""
    table = Table(title=Text(f"{job['job_id']} ({job['name']}) {job['status']}, {job.get('duration_s') or 0:.0f}s"),
                  title_justify="left")
    for column in ("operator", "instances", "nodes", "records/s", "p50 ms", "p99 ms", "queued", "blocked ms",
                   "errors"):
        table.add_column(column, justify="left" if column in ("operator", "nodes") else "right")
    for row in operator_rows(job):
        table.add_row(
            Text(row["operator"]), str(row["instances"]), Text(", ".join(row["nodes"])),
            f"{row['records_per_s']:,.0f}",
            f"{row['p50_ms']:.2f}" if row["p50_ms"] is not None else "-",
            f"{row['p99_ms']:.2f}" if row["p99_ms"] is not None else "-",
            str(row["queued"]), f"{row['blocked_ms']:,.0f}", str(row["errors"]),
        )
    return table


def _running(client: Any) -> list[dict[str, Any]]:
    """The records of the jobs running now, oldest first."""
    return [client.job(job["job_id"]) for job in client.jobs() if job["status"] == "running"]


def _screen(client: Any) -> Group:
    running = _running(client)
    if not running:
        return Group(Text("no running jobs"))
    return Group(*(job_table(job) for job in running))


def top(host: str = HostOption, port: int = PortOption,
        once: bool = typer.Option(False, "--once", help="Print one screen and exit."),
        interval: float = typer.Option(1.0, "--interval", help="Seconds between refreshes."),
        as_json: bool = typer.Option(False, "--json", help="Print one snapshot of the view as JSON and exit.")) -> None:
    """A live view of the cluster's running jobs, refreshed every second (Ctrl-C ends it)."""
    client = _client(host, port)
    if as_json:
        print(json.dumps({"jobs": [job_view(job) for job in _call(_running, client)]}, indent=2, default=str))
        return
    console = Console(width=160)
    if once:
        console.print(_call(_screen, client))
        return
    try:
        with Live(_call(_screen, client), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(_call(_screen, client))
    except KeyboardInterrupt:
        pass


def graph(job_id: str, host: str = HostOption, port: int = PortOption,
          output: str | None = typer.Option(None, "--format", help="text (the default), mermaid or dot."),
          as_json: bool = typer.Option(False, "--json", help="Print every format in one JSON object.")) -> None:
    """A job's compiled plan (chains, parallelism, edges) with its latest counts."""
    if as_json and output is not None:
        raise typer.BadParameter("--json prints every format; leave out --format", param_hint="--format")
    if output is not None and output not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}", param_hint="--format")
    pictures = _call(_client(host, port).graph, job_id)
    if as_json:
        print(json.dumps({"job_id": job_id, **{name: pictures[name] for name in FORMATS}}, indent=2))
        return
    typer.echo(pictures[output or "text"])
