"""``sage serve PIPELINE.py``: serve a pipeline over HTTP with OpenAI-compatible endpoints."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from sage.kernel.errors import SageError
from sage.kernel.pipeline_module import load_environment


def serve(
    pipeline: str = typer.Argument(..., help="FILE.py (its pipeline() function), FILE.py:FUNCTION, or a YAML file."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    max_in_flight: int = typer.Option(64, help="Requests worked on at once; one more gets 429."),
    request_timeout_s: float = typer.Option(60.0, help="A request not answered within this gets 504."),
    api_key: str = typer.Option(None, help="Require 'Authorization: Bearer KEY' (default: $SAGE_SERVE_API_KEY)."),
) -> None:
    """Serve a pipeline that starts with RequestSource() and ends in AnswerSink(), until Ctrl-C."""
    console = Console(stderr=True, soft_wrap=True)
    try:
        from sage.kernel.serving import serve as run_server

        env = load_environment(pipeline)
        console.print(f"serving {env.name!r} on http://{host}:{port} (model name {env.name!r})")
        run_server(env, host, port, max_in_flight=max_in_flight, request_timeout_s=request_timeout_s,
                   api_key=api_key or os.environ.get("SAGE_SERVE_API_KEY") or None)
    except SageError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopped: the server and its job ended")
        raise typer.Exit(130) from None
