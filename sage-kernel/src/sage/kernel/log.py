"""Logging defaults: structlog writes to standard error, so standard output stays the data's."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_default_logging() -> None:
    """Send structlog output to stderr at ``SAGE_LOG_LEVEL`` (default INFO), unless the
    application has configured structlog itself."""
    if structlog.is_configured():
        return
    level = getattr(logging, os.environ.get("SAGE_LOG_LEVEL", "INFO").upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
