"""``sage plugins``: what the plugin registry knows."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from sage.kernel.plugins import get_plugins, get_registry

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)


@app.command("list")
def list_plugins(kind: str = typer.Option(None, help="Only this kind (source, operator, sink, partitioner, runtime, metrics_reporter).")) -> None:
    """List every registered name with its kind and the distribution that provides it."""
    table = Table("name", "kind", "distribution", "version")
    for entry in get_plugins():
        if kind is None or entry.kind == kind:
            table.add_row(entry.name, entry.kind, entry.distribution, entry.version)
    console = Console(width=200)
    console.print(table)
    for failure in get_registry().failures:
        console.print(f"[red]failed to load[/red] plugin {failure.plugin!r} from "
                      f"{failure.distribution} {failure.version}: {failure.error}")
