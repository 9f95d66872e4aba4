"""Side outputs of one chain instance: what its operators send with ``context.output(name, r)``.

Only the chain's last operator can have streams reading its side outputs (an operator whose
output is read by two streams ends its chain), so its records are buffered per name and routed
by the task after each batch, through the edges that read that name. A record sent to a name
no stream reads is counted in the operator's ``side_output_dropped`` metric and the first one
per name is logged: it is never lost without a word.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.plan.physical import Chain, ChainEdge

log = structlog.get_logger("sage.runtime")


class SideOutputs:
    """Per-name buffers of the chain's last operator, and the senders every context calls."""

    def __init__(self, chain: Chain, index: int, contexts: list[RuntimeContext],
                 edges: list[ChainEdge]) -> None:
        self._positions: dict[str, list[int]] = {}
        for position, edge in enumerate(edges):
            if edge.port is not None:
                self._positions.setdefault(edge.port, []).append(position)
        self._buffers: dict[str, list[Any]] = {name: [] for name in self._positions}
        self.pending = False  # set by a sender, cleared by take(); read once per batch
        last = len(chain.operators) - 1
        for position, context in enumerate(contexts):
            context._side_output = self._sender(context, routable=position == last)

    def _sender(self, context: RuntimeContext, routable: bool) -> Callable[[str, Any], None]:
        buffers = self._buffers if routable else {}
        warned: set[str] = set()

        def send(name: str, record: Any) -> None:
            buffer = buffers.get(name)
            if buffer is not None:
                buffer.append(record)
                self.pending = True
                return
            context.get_metrics().counter("side_output_dropped").value += 1
            if name not in warned:
                warned.add(name)
                context.logger.warning(
                    "side output dropped", side_output=name,
                    hint=f"no stream reads side output {name!r} of this operator; read it with "
                         f"stream.side_output({name!r})",
                )

        return send

    def take(self) -> list[tuple[list[int], list[Any]]]:
        """What was sent since the last call: (edge positions, records) per name."""
        self.pending = False
        taken = []
        for name, buffer in self._buffers.items():
            count = len(buffer)
            if count:
                records = buffer[:count]
                del buffer[:count]  # a sender on another thread appends behind what is taken
                taken.append((self._positions[name], records))
        return taken
