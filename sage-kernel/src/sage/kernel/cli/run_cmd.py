"""``sage run PIPELINE.yaml``: build a pipeline from a declarative file and run it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from sage.kernel.errors import SageError
from sage.kernel.pipeline_file import load_pipeline


def run(pipeline: Path = typer.Argument(..., exists=True, dir_okay=False, help="A pipeline YAML file.")) -> None:
    """Run the pipeline a YAML file describes and print per-operator metrics."""
    console = Console(stderr=True, soft_wrap=True)
    try:
        env = load_pipeline(pipeline)
        result = env.execute()
    except SageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted: the job was cancelled")
        raise typer.Exit(130) from None
    console.print(f"job {result.job_name} {result.status} in {result.duration_s:.2f}s")
    for name, metrics in result.metrics.items():
        console.print(f"  {name}: in={metrics['records_in']} out={metrics['records_out']} errors={metrics['errors']}")
