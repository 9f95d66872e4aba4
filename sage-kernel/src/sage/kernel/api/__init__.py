"""The public dataflow API of SAGE."""

from sage.kernel.api.aggregations import AggregateFunction
from sage.kernel.api.connected import CoFlatMapFunction, CoMapFunction, CoProcessFunction
from sage.kernel.api.datastream import ConnectedStreams, DataStream, KeyedStream, WindowedStream
from sage.kernel.api.environment import LocalEnvironment
from sage.kernel.api.function import (
    FilterFunction,
    FlatMapFunction,
    Function,
    MapFunction,
    SinkFunction,
    SourceFunction,
)
from sage.kernel.api.job import JobHandle, JobResult
from sage.kernel.api.partitioner import Partitioner
from sage.kernel.api.process import ProcessFunction, TimerService
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.windows import Every, Session, Sliding, Tumbling, Window, WindowResult
from sage.kernel.errors import JobFailedError, OperatorError, PipelineDefinitionError, SageError
from sage.kernel.home import sage_home

__all__ = [
    "AggregateFunction",
    "CoFlatMapFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "ConnectedStreams",
    "DataStream",
    "Every",
    "FilterFunction",
    "FlatMapFunction",
    "Function",
    "JobFailedError",
    "JobHandle",
    "JobResult",
    "KeyedStream",
    "LocalEnvironment",
    "MapFunction",
    "OperatorError",
    "Partitioner",
    "PipelineDefinitionError",
    "RemoteEnvironment",
    "ProcessFunction",
    "RuntimeContext",
    "SageError",
    "Session",
    "Sliding",
    "SinkFunction",
    "SourceFunction",
    "TimerService",
    "Tumbling",
    "Window",
    "WindowResult",
    "WindowedStream",
    "sage_home",
]


def __getattr__(name: str):
    # RemoteEnvironment pulls in the JobManager client; import it only when asked for.
    if name == "RemoteEnvironment":
        from sage.kernel.api.remote import RemoteEnvironment

        return RemoteEnvironment
    raise AttributeError(f"module 'sage.kernel.api' has no attribute {name!r}")
