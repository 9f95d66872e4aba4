"""``sage serve PIPELINE.py``: serve a pipeline over HTTP with OpenAI-compatible endpoints, here or
(``--cluster``) on the head of a SAGE cluster through its JobManager."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape
from sage.kernel.errors import SageError
from sage.kernel.pipeline_module import load_environment


def serve(
    pipeline: str = typer.Argument(..., help="FILE.py (its pipeline() function), FILE.py:FUNCTION, or a YAML file."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface); with "
                                               "--cluster, an address of the head (or of --node)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    max_in_flight: int = typer.Option(64, help="Requests worked on at once; one more gets 429."),
    request_timeout_s: float = typer.Option(60.0, help="A request not answered within this gets 504."),
    api_key: str = typer.Option(None, help="Require 'Authorization: Bearer KEY' (default: $SAGE_SERVE_API_KEY)."),
    cluster: bool = typer.Option(False, "--cluster", help="Run the job on the SAGE cluster and serve it on "
                                                          "its head (or --node), through the JobManager; returns "
                                                          "once it listens."),
    jobmanager_host: str = typer.Option(None, help="With --cluster: the JobManager's host (default: from the SAGE home)."),
    jobmanager_port: int = typer.Option(None, help="With --cluster: the JobManager's port (default: from the SAGE home)."),
    node: str = typer.Option(None, help="With --cluster: serve on this node (its IP address or Ray node id, as "
                                        "`sage cluster status` shows them) instead of the head."),
    workers: int = typer.Option(1, min=1, help="Processes that serve, each with its own copy of the pipeline "
                                               "(one process runs on one core at a time); not with --cluster."),
) -> None:
    """Serve a pipeline that starts with RequestSource() and ends in AnswerSink(), until Ctrl-C
    (with --cluster: until `sage job stop JOB_ID`)."""
    console = Console(stderr=True, soft_wrap=True)
    options = {"max_in_flight": max_in_flight, "request_timeout_s": request_timeout_s,
               "api_key": api_key or os.environ.get("SAGE_SERVE_API_KEY") or None}
    if node is not None and not cluster:
        console.print("[red]error:[/red] --node names a node of a cluster; add --cluster", highlight=False)
        raise typer.Exit(2)
    if workers > 1 and cluster:
        console.print("[red]error:[/red] --workers runs several server processes here; on a cluster, give the "
                      "slow operator parallelism instead", highlight=False)
        raise typer.Exit(2)
    try:
        env = load_environment(pipeline)
        if cluster:
            _serve_on_cluster(env, host, port, jobmanager_host, jobmanager_port, {**options, "node": node})
            return
        from sage.kernel.serving import serve as run_server

        processes = f", {workers} worker processes" if workers > 1 else ""
        console.print(f"serving {env.name!r} on http://{host}:{port} (model name {env.name!r}{processes})")
        run_server(env, host, port, workers=workers, **options)
    except SageError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopped: the server and its job ended")
        raise typer.Exit(130) from None


def _serve_on_cluster(env, host: str, port: int, jobmanager_host: str | None, jobmanager_port: int | None,
                      options: dict) -> None:
    """Send the pipeline to the JobManager, which serves it on the head (or the node named in
    ``options``); print the job id and where it listens."""
    from sage.kernel.api.remote import RemoteEnvironment
    from sage.kernel.client.protocol import DEFAULT_PORT, connect_host
    from sage.kernel.home.cluster_state import read_head_state

    head = read_head_state()
    jm_host = connect_host(jobmanager_host or (head.host if head else "127.0.0.1"))
    jm_port = jobmanager_port or (head.jobmanager_port if head else DEFAULT_PORT)
    job = RemoteEnvironment.of(env, jm_host, jm_port).serve(host, port, wait=False, **options)
    print(f"{job.job_id} {job.url}")
