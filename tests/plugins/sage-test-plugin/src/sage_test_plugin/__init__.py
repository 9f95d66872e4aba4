"""A fixture plugin: one operator, one sink and one partitioner, registered by name."""

from sage.kernel.api import MapFunction, Partitioner, SinkFunction
from sage.kernel.hookspecs import hookimpl


class Shout(MapFunction):
    """Upper-cases a string and adds a suffix."""

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def map(self, record):
        return record.upper() + self.suffix


class PrintSink(SinkFunction):
    """Prints each record on a line of its own."""

    def sink(self, record):
        print(record, flush=True)


class FirstLetter(Partitioner):
    """Routes strings by their first letter."""

    def partition(self, record, num_partitions):
        return ord(record[0]) % num_partitions


@hookimpl
def sage_operators():
    return {"shout": Shout}


@hookimpl
def sage_sinks():
    return {"print": PrintSink}


@hookimpl
def sage_partitioners():
    return {"first_letter": FirstLetter}
