"""``sage run PIPELINE.yaml``: build a pipeline from a declarative file and run it."""

from __future__ import annotations

from pathlib import Path

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from sage.kernel.errors import SageError
from sage.kernel.pipeline_file import load_pipeline

log = structlog.get_logger("sage.cli")


def run(pipeline: Path = typer.Argument(..., help="A pipeline YAML file.")) -> None:
    """Run the pipeline a YAML file describes and print per-operator metrics."""
    console = Console(stderr=True, soft_wrap=True, highlight=False)

    def fail(message: str) -> None:
        console.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(1)

    if not pipeline.is_file():
        fail(f"{pipeline}: no such file" if not pipeline.exists() else f"{pipeline}: not a file")
    try:
        env = load_pipeline(pipeline)
    except SageError as exc:
        fail(str(exc))
    except Exception as exc:  # anything else building it raised: one paragraph, never a traceback
        log.debug("building the pipeline failed", path=str(pipeline), exc_info=True)
        fail(f"{pipeline}: building the pipeline failed: {type(exc).__name__}: {exc}")
    try:
        result = env.execute()
    except SageError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("interrupted: the job was cancelled")
        raise typer.Exit(130) from None
    console.print(f"job {escape(result.job_name)} {result.status} in {result.duration_s:.2f}s")
    for name, metrics in result.metrics.items():
        console.print(f"  {escape(name)}: in={metrics['records_in']} out={metrics['records_out']} "
                      f"errors={metrics['errors']}")
