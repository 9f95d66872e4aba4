"""The ``sage`` command: a thin layer over the same API user code calls."""
