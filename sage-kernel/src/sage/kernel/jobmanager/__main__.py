"""``python -m sage.kernel.jobmanager``: run the JobManager (``sage cluster start`` does this)."""

from __future__ import annotations

import argparse
import sys

from sage.kernel.client.protocol import DEFAULT_HOST, DEFAULT_PORT
from sage.kernel.home import jobs_dir
from sage.kernel.home.cluster_state import read_token
from sage.kernel.jobmanager.limits import LimitsError, ServerLimits
from sage.kernel.jobmanager.records import JobStore
from sage.kernel.jobmanager.service import JobManager, serve
from sage.kernel.log import configure_default_logging


def main(argv: list[str] | None = None) -> int:
    configure_default_logging()
    parser = argparse.ArgumentParser(prog="python -m sage.kernel.jobmanager",
                                     description="Run the SAGE JobManager on a Ray cluster.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--ray-address", required=True, help="the Ray GCS address, HOST:PORT")
    parser.add_argument("--client-port", type=int, default=None, help="the Ray client server port")
    args = parser.parse_args(argv)
    try:
        limits = ServerLimits.from_environment()
    except LimitsError as exc:
        print(exc, file=sys.stderr)
        return 2
    token = read_token()
    if not token:
        print("no cluster token: set SAGE_TOKEN or write SAGE_HOME/cluster/token", file=sys.stderr)
        return 2
    manager = JobManager(JobStore(jobs_dir()), args.ray_address, args.client_port)
    serve(args.host, args.port, token, manager, limits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
