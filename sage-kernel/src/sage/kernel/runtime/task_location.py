"""Where a task ran, so that a failure cause says which machine and process to look at: a Ray
node (its id as ``sage cluster status`` shows it, and its IP) and the worker's pid, or the
driver's own process on the local runtime."""

from __future__ import annotations

import os
import socket

import attrs
from sage.kernel.errors import OperatorError, StepError, TaskFailedError
from sage.kernel.plan.physical import Chain

NODE_ID_CHARS = 12
"""How much of a Ray node id names it: the prefix ``sage cluster status`` prints."""


@attrs.frozen
class TaskLocation:
    """A task's process: its host (a Ray node's IP, or this machine's name), its pid and, on
    Ray, the node's id."""

    host: str
    pid: int
    node_id: str | None = None

    def describe(self) -> str:
        """``on node 3f2a1b4c5d6e at 10.0.0.5, pid 4242``, or ``in this process, pid 4242 on host h``."""
        if self.node_id is None:
            return f"in this process, pid {self.pid} on host {self.host}"
        return f"on node {self.node_id[:NODE_ID_CHARS]} at {self.host}, pid {self.pid}"


def this_process() -> TaskLocation:
    """The location of the local runtime's tasks: threads of the driver's process."""
    return TaskLocation(host=socket.gethostname(), pid=os.getpid())


def located(error: BaseException, chain: Chain, index: int, location: TaskLocation | None,
            what: str = "failed") -> BaseException:
    """``error`` as the failure cause of task ``index`` of ``chain``: an error of one of its
    functions gets the location added to its message; any other error (the runtime's own, a
    send to a lost actor) becomes a ``TaskFailedError`` that names the task, its location and
    ``what`` happened, with ``error`` as its cause."""
    where = location.describe() if location is not None else None
    if isinstance(error, OperatorError | StepError):
        if where is not None and error.where is None:
            error.locate(where)
        return error
    if isinstance(error, TaskFailedError):
        return error
    failure = TaskFailedError(chain.name, index, chain.parallelism, where,
                              f"{what}: {type(error).__name__}: {error}")
    failure.__cause__ = error
    return failure
