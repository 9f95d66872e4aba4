"""Logging: SAGE's structlog events go through the standard ``logging`` module.

They are emitted on loggers under ``sage`` (``sage.runtime``, ``sage.jobmanager`` ...), so an
application's logging configuration decides what is shown and where: after
``logging.basicConfig(level=logging.ERROR)`` SAGE's INFO lines are gone. When the application
has configured no logging at all, SAGE shows its events on standard error (never standard
output, which is the data's) at ``SAGE_LOG_LEVEL`` (default INFO), as text, or as one JSON
object per line with ``SAGE_LOG_FORMAT=json``. Importing SAGE configures nothing; this runs
when SAGE starts work (an environment, the CLI, the JobManager, a Ray worker).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

ROOT = "sage"
_TIMESTAMP = structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S")


def _renderer() -> Any:
    if os.environ.get("SAGE_LOG_FORMAT", "").lower() == "json":
        return structlog.processors.JSONRenderer(default=str)
    return structlog.dev.ConsoleRenderer(colors=False)


def configure_default_logging() -> None:
    """Route structlog through ``logging`` (unless the application configured structlog
    itself) and, when the application configured no logging, give the ``sage`` logger a
    standard-error handler at ``SAGE_LOG_LEVEL``."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.stdlib.add_log_level,
                _TIMESTAMP,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
    sage = logging.getLogger(ROOT)
    if sage.handlers or logging.getLogger().handlers:
        return  # the application decides where SAGE's lines go
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer()],
        foreign_pre_chain=[structlog.stdlib.add_log_level, _TIMESTAMP],
    ))
    sage.addHandler(handler)
    sage.setLevel(getattr(logging, os.environ.get("SAGE_LOG_LEVEL", "INFO").upper(), logging.INFO))
