"""Runtimes execute a physical plan; the task loop in ``task.py`` is shared by all of them."""
