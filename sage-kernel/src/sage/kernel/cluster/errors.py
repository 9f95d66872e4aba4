"""The error the cluster tools raise."""

from __future__ import annotations

from sage.kernel.errors import SageError


class ClusterError(SageError):
    """A cluster could not be started, joined or stopped."""
