"""Serving a pipeline over HTTP with OpenAI-compatible endpoints (docs/serving.md).

A served pipeline starts with ``RequestSource()`` and ends in ``AnswerSink()``; ``env.serve()``
or ``sage serve PIPELINE.py`` runs it behind Starlette and uvicorn (``sage-kernel[serve]``),
which are imported only when a pipeline is served.
"""

from sage.kernel.serving.request_source import AnswerSink, RequestSource
from sage.kernel.serving.requests import REQUEST_KEY, still_wanted
from sage.kernel.serving.server import RunningServer, serve, start
from sage.kernel.serving.settings import ServeSettings

__all__ = ["REQUEST_KEY", "AnswerSink", "RequestSource", "RunningServer", "ServeSettings", "serve", "start",
           "still_wanted"]
