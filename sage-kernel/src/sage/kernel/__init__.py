"""SAGE kernel: the dataflow API, plans, runtimes, plugin registry and CLI."""

from sage.kernel.log import configure_default_logging

__version__ = "0.1.0"

configure_default_logging()
