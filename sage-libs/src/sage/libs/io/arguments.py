"""Checks of the constructor arguments that the io sources share."""

from __future__ import annotations

from typing import Any


def check_positive_or_none(owner: str, name: str, value: Any) -> None:
    """Fail unless ``value`` is None or an int >= 1 (``True`` is not an int here)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{owner}: {name} must be an int >= 1 or None, got {value!r}")
