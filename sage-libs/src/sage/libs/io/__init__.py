"""SAGE IO: sources (files, chunked documents, collections, queries) and sinks (console,
JSON lines, RAG responses), registered as plugins under the names ``file``,
``chunked_file``, ``query``, ``console``, ``jsonl`` and ``response``."""

from sage.kernel.api.sources import CollectionSource
from sage.libs.io.chunked_file_source import ChunkedFileSource
from sage.libs.io.chunking import ChunkSpec, split_text
from sage.libs.io.console_sink import ConsoleSink
from sage.libs.io.errors import BadInputError, MissingExtraError
from sage.libs.io.file_source import FilePosition, FileSource
from sage.libs.io.jsonl_sink import JSONLSink
from sage.libs.io.query_source import QuerySource
from sage.libs.io.response_sink import ResponseSink, source_of

__all__ = [
    "BadInputError",
    "ChunkSpec",
    "ChunkedFileSource",
    "CollectionSource",
    "ConsoleSink",
    "FilePosition",
    "FileSource",
    "JSONLSink",
    "MissingExtraError",
    "QuerySource",
    "ResponseSink",
    "source_of",
    "split_text",
]
