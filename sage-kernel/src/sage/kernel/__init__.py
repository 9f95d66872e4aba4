"""SAGE kernel: the dataflow API, plans, runtimes, plugin registry and CLI."""

__version__ = "0.1.0"
