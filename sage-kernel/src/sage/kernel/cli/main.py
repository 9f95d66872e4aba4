"""Entry point of the ``sage`` command; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer
from sage.kernel import __version__
from sage.kernel.cli import plugins_cmd, run_cmd, serve_cmd
from sage.kernel.log import configure_default_logging

app = typer.Typer(help="SAGE: streaming dataflow pipelines for LLM and RAG work.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _print_version(value: bool) -> None:
    if value:
        print(f"sage {__version__} (sage-kernel, Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """SAGE: streaming dataflow pipelines for LLM and RAG work."""
app.add_typer(plugins_cmd.app, name="plugins")
app.command("run")(run_cmd.run)
app.command("serve")(serve_cmd.serve)


def _add_optional_groups() -> None:
    """Command groups that need more than the kernel's core (the cluster and job commands)."""
    try:
        from sage.kernel.cli import cluster_cmd, job_cmd, top_cmd
    except ImportError:
        return
    job_cmd.app.command("top")(top_cmd.top)
    job_cmd.app.command("graph")(top_cmd.graph)
    app.add_typer(cluster_cmd.app, name="cluster")
    app.add_typer(job_cmd.app, name="job")


_add_optional_groups()


def main() -> None:
    configure_default_logging()
    app()
