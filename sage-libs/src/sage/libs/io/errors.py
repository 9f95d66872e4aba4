"""Errors of the IO package; each names the file, the line and how to fix it."""

from __future__ import annotations

from sage.kernel.api import SageError


class BadInputError(SageError, ValueError):
    """A line or file a source could not decode or parse; handed to the job's error policy."""


class MissingExtraError(SageError, ImportError):
    """A format needs an optional library that is not installed."""
