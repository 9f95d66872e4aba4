"""The in-process runtime: one thread per chain instance, bounded queues between them."""

from sage.kernel.runtime.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
