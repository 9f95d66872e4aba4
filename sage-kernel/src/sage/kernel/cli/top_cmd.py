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


def job_table(job: dict[str, Any]) -> Table:
    """One running job: per operator its instances and nodes, records/s, processing time p50
    and p99 (per batch, sampled), queued batches, time blocked on full channels and errors."""
    table = Table(title=Text(f"{job['job_id']} ({job['name']}) {job['status']}, {job.get('duration_s') or 0:.0f}s"),
                  title_justify="left")
    for column in ("operator", "instances", "nodes", "records/s", "p50 ms", "p99 ms", "queued", "blocked ms",
                   "errors"):
        table.add_column(column, justify="left" if column in ("operator", "nodes") else "right")
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in job.get("instances", []):
        rows.setdefault(row["operator"], []).append(row)
    for name, metrics in job.get("metrics", {}).items():
        instances = rows.get(name, [])
        nodes = sorted({row.get("node") or "?" for row in instances})
        latency = metrics.get("processing_ms")
        table.add_row(
            Text(name), str(len(instances)), Text(", ".join(nodes)),
            f"{job.get('throughput', {}).get(name, 0):,.0f}",
            f"{latency['p50']:.2f}" if isinstance(latency, dict) and latency.get("count") else "-",
            f"{latency['p99']:.2f}" if isinstance(latency, dict) and latency.get("count") else "-",
            str(sum(row.get("queue_depth", 0) for row in instances)),
            f"{metrics.get('blocked_ms', 0):,.0f}",
            str(metrics.get("errors", 0)),
        )
    return table


def _screen(client: Any) -> Group:
    running = [job for job in client.jobs() if job["status"] == "running"]
    if not running:
        return Group(Text("no running jobs"))
    return Group(*(job_table(client.job(job["job_id"])) for job in running))


def top(host: str = HostOption, port: int = PortOption,
        once: bool = typer.Option(False, "--once", help="Print one screen and exit."),
        interval: float = typer.Option(1.0, "--interval", help="Seconds between refreshes.")) -> None:
    """A live view of the cluster's running jobs, refreshed every second (Ctrl-C ends it)."""
    client = _client(host, port)
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
