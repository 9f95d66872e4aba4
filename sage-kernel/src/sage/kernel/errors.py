"""Errors the kernel raises; each message names what failed and how to fix it."""

from __future__ import annotations

from typing import Any

RECORD_REPR_LIMIT = 200


def short_repr(record: Any, limit: int = RECORD_REPR_LIMIT) -> str:
    """A record's repr, cut to ``limit`` characters so an error message stays readable."""
    try:
        text = repr(record)
    except Exception as exc:  # a broken __repr__ must not hide the real error
        text = f"<{type(record).__name__} (repr failed: {exc})>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SageError(Exception):
    """Base class of every error SAGE raises on purpose."""


class PipelineDefinitionError(SageError, ValueError):
    """A pipeline is wrong as built (raised before anything runs)."""


class OperatorError(SageError):
    """A user function failed on a record."""

    def __init__(
        self, operator: str, instance: int, parallelism: int, record: Any, cause: BaseException
    ) -> None:
        self.operator = operator
        self.instance = instance
        self.parallelism = parallelism
        self.record_repr = short_repr(record)
        self.cause = cause
        super().__init__(
            f"operator {operator!r} (instance {instance} of {parallelism}) failed on record "
            f"{self.record_repr}: {type(cause).__name__}: {cause}"
        )

    def __reduce__(self):  # keep the structured fields when the error crosses processes
        return (_rebuild_operator_error, (self.operator, self.instance, self.parallelism,
                                          self.record_repr, repr(self.cause), str(self)))


def _rebuild_operator_error(operator, instance, parallelism, record_repr, cause_repr, message):
    error = OperatorError.__new__(OperatorError)
    SageError.__init__(error, message)
    error.operator, error.instance, error.parallelism = operator, instance, parallelism
    error.record_repr, error.cause = record_repr, RuntimeError(cause_repr)
    return error


class JobFailedError(SageError):
    """Raised by ``execute()`` when a job fails; ``result`` holds its JobResult."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class PluginNotFoundError(SageError, LookupError):
    """A name was asked of the plugin registry that no loaded plugin provides."""


class RuntimeUnavailableError(SageError):
    """A runtime was asked for whose packages are not installed (Ray for ``runtime: ray``)."""


class StepError(SageError):
    """A function failed outside a single record: in open(), close() or a source's read()."""

    def __init__(self, operator: str, instance: int, parallelism: int, phase: str, cause: BaseException) -> None:
        self.operator = operator
        self.instance = instance
        self.parallelism = parallelism
        self.phase = phase
        super().__init__(
            f"operator {operator!r} (instance {instance} of {parallelism}) failed in {phase}: "
            f"{type(cause).__name__}: {cause}"
        )

    def __reduce__(self):
        return (_rebuild_step_error, (self.operator, self.instance, self.parallelism, self.phase, str(self)))


def _rebuild_step_error(operator, instance, parallelism, phase, message):
    error = StepError.__new__(StepError)
    SageError.__init__(error, message)
    error.operator, error.instance, error.parallelism, error.phase = operator, instance, parallelism, phase
    return error
