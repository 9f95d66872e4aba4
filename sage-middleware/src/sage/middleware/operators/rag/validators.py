"""attrs validators shared by the operators' configurations; they fail at build time."""

from __future__ import annotations

import re
from typing import Any

import attrs
from sage.kernel.api import PipelineDefinitionError

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def _owner(instance: Any) -> str:
    return type(instance).__name__


def positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PipelineDefinitionError(f"{_owner(instance)}: {attribute.name} must be an int >= 1, got {value!r}")


def non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PipelineDefinitionError(f"{_owner(instance)}: {attribute.name} must be an int >= 0, got {value!r}")


def non_negative_number(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An int or float >= 0."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise PipelineDefinitionError(f"{_owner(instance)}: {attribute.name} must be a number >= 0, got {value!r}")


def positive_number(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An int or float > 0."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise PipelineDefinitionError(f"{_owner(instance)}: {attribute.name} must be a number > 0, got {value!r}")


def non_empty_str(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A string with at least one non-blank character."""
    if not isinstance(value, str) or not value.strip():
        raise PipelineDefinitionError(f"{_owner(instance)}: {attribute.name} must be a non-empty string, got {value!r}")


def optional_str(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """None or a non-empty string."""
    if value is not None:
        non_empty_str(instance, attribute, value)


def one_of(*choices: str):
    """One of ``choices``."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise PipelineDefinitionError(
                f"{_owner(instance)}: {attribute.name} must be one of {', '.join(map(repr, choices))}; got {value!r}"
            )

    return check


def collection_name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A name Chroma accepts: 3-512 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    if not isinstance(value, str) or not _COLLECTION_NAME.match(value) or ".." in value:
        raise PipelineDefinitionError(
            f"{_owner(instance)}: collection={value!r} is not a valid Chroma collection name; use 3 to "
            "512 characters from [A-Za-z0-9._-], starting and ending with a letter or digit"
        )
