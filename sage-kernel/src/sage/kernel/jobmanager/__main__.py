"""``python -m sage.kernel.jobmanager``: run the JobManager (``sage cluster start`` does this)."""

from __future__ import annotations

import argparse
import os
import sys

from sage.kernel.client.protocol import DEFAULT_HOST, DEFAULT_PORT
from sage.kernel.home import jobs_dir
from sage.kernel.home.cluster_state import read_token
from sage.kernel.jobmanager.limits import LimitsError, ServerLimits
from sage.kernel.jobmanager.records import JobStore
from sage.kernel.jobmanager.retention import RetentionPolicy
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
    default = RetentionPolicy()
    parser.add_argument("--keep-jobs", type=int, default=default.keep_jobs,
                        help="finished jobs to keep (newest first)")
    parser.add_argument("--keep-days", type=float, default=default.keep_days,
                        help="days to keep a finished job")
    parser.add_argument("--previous-exit", default=None,
                        help="how the last JobManager ended (the supervisor says), for its running jobs")
    args = parser.parse_args(argv)
    os.umask(0o077)  # everything the JobManager writes (job folders, logs, dead letters) is private
    try:
        limits = ServerLimits.from_environment()
    except LimitsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        retention = RetentionPolicy(args.keep_jobs, args.keep_days)
    except (TypeError, ValueError) as exc:
        print(f"invalid retention: {exc}; --keep-jobs must be at least 1, --keep-days above 0",
              file=sys.stderr)
        return 2
    token = read_token()
    if not token:
        print("no cluster token: set SAGE_TOKEN or write SAGE_HOME/cluster/token", file=sys.stderr)
        return 2
    manager = JobManager(JobStore(jobs_dir()), args.ray_address, args.client_port, retention,
                         args.previous_exit)
    serve(args.host, args.port, token, manager, limits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
