"""ServeSettings: the limits and address of a served pipeline, checked when it is built."""

from __future__ import annotations

from typing import Any

import attrs
from sage.kernel.api.config import is_number
from sage.kernel.errors import PipelineDefinitionError


def check_positive_int(name: str, value: Any) -> None:
    """An error naming the serve option ``name`` unless ``value`` is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PipelineDefinitionError(f"serve: {name} must be an int >= 1, got {value!r}")


def _positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_positive_int(attribute.name, value)


def refuse_workers(options: dict[str, Any], instead: str) -> None:
    """Take ``workers`` out of ``options`` where one server process is all there is (a thread,
    a cluster): any value but 1 is an error that says what to use ``instead``."""
    if options.pop("workers", 1) != 1:
        raise PipelineDefinitionError(f"serve: {instead}")


def _positive_number(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not is_number(value, above_zero=True):
        raise PipelineDefinitionError(f"serve: {attribute.name} must be a number > 0, got {value!r}")


def _node(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise PipelineDefinitionError(f"serve: node must be a node's IP address or Ray node id, got {value!r}")


def _port(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise PipelineDefinitionError(f"serve: port must be an int in 0..65535 (0: any free port), got {value!r}")


@attrs.frozen
class ServeSettings:
    """Where the server listens and how much it takes on.

    ``max_in_flight`` requests are worked on at once; one more is refused with 429 and a
    ``Retry-After`` of ``retry_after_s``. A request not answered within ``request_timeout_s``
    gets 504 and its record is dropped where the pipeline allows it. With ``api_key``, every
    request but ``/healthz`` needs ``Authorization: Bearer <api_key>``. ``node`` (on a cluster
    only): the node whose server listens, by IP address or Ray node id; None: the head.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000, validator=_port)
    max_in_flight: int = attrs.field(default=64, validator=_positive_int)
    request_timeout_s: float = attrs.field(default=60.0, validator=_positive_number)
    retry_after_s: int = attrs.field(default=1, validator=_positive_int)
    api_key: str | None = attrs.field(default=None, repr=False)
    node: str | None = attrs.field(default=None, validator=_node)
