"""Registers the IO sources and sinks with SAGE's plugin registry."""

from __future__ import annotations

from typing import Any

from sage.kernel.hookspecs import hookimpl


@hookimpl
def sage_sources() -> dict[str, Any]:
    from sage.libs.io import ChunkedFileSource, FileSource, QuerySource

    return {"file": FileSource, "chunked_file": ChunkedFileSource, "query": QuerySource}


@hookimpl
def sage_sinks() -> dict[str, Any]:
    from sage.libs.io import ConsoleSink, JSONLSink, ResponseSink

    return {"console": ConsoleSink, "jsonl": JSONLSink, "response": ResponseSink}
