"""``sage plugins``: what the plugin registry knows."""

from __future__ import annotations

import enum
import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sage.kernel.plugins import KINDS, get_plugins, get_registry

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
Kind = enum.Enum("Kind", {kind: kind for kind in KINDS}, type=str)
"""The kinds of things plugins register, as the fixed choices of ``--kind``."""


@app.command("list")
def list_plugins(
    kind: Kind = typer.Option(None, help="Only this kind.", case_sensitive=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every registered name with its kind, the distribution that provides it, and
    whether it can be used here (a runtime whose package is missing says how to install it)."""
    entries = [e for e in get_plugins() if kind is None or e.kind == kind.value]
    failures = get_registry().failures
    if as_json:
        print(json.dumps({
            "plugins": [{"name": e.name, "kind": e.kind, "distribution": e.distribution, "version": e.version,
                         "available": e.unavailable is None, "unavailable_reason": e.unavailable}
                        for e in entries],
            "failures": [{"plugin": f.plugin, "distribution": f.distribution, "version": f.version,
                          "error": f.error} for f in failures],
        }, indent=2))
        return
    table = Table("name", "kind", "distribution", "version", "available")
    for entry in entries:
        reason = entry.unavailable
        table.add_row(escape(entry.name), entry.kind, escape(entry.distribution), escape(entry.version),
                      "yes" if reason is None else f"[red]no[/red]: {escape(reason)}")
    console = Console(width=200)
    console.print(table)
    for failure in failures:
        console.print(f"[red]failed to load[/red] plugin {escape(repr(failure.plugin))} from "
                      f"{escape(failure.distribution)} {escape(failure.version)}: {escape(failure.error)}")
