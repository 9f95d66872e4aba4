"""A fixture plugin: one operator, one sink and one partitioner, registered by name."""

import sys

from sage.kernel.api import MapFunction, Partitioner, SinkFunction
from sage.kernel.hookspecs import hookimpl


class Shout(MapFunction):
    """Upper-cases a string and adds a suffix."""

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def map(self, record):
        return record.upper() + self.suffix


class PrintSink(SinkFunction):
    """Prints each record on a line of its own (one write, so parallel instances never
    interleave within a line)."""

    def sink(self, record):
        sys.stdout.write(f"{record}\n")
        sys.stdout.flush()


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
