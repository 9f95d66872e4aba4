"""The JobManager's client and wire protocol, used by ``RemoteEnvironment``, ``sage job``,
the cluster tools and (the protocol) the service itself; standard library only."""

from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError

__all__ = ["JobManagerClient", "JobManagerError"]
