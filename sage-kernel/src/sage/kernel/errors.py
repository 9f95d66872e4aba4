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


def task_name(operator: str, instance: int, parallelism: int, where: str | None = None,
              kind: str = "operator") -> str:
    """How an error names a task: ``operator 'parse' (instance 1 of 4, on node 3f2a... at
    10.0.0.5, pid 4242)``; ``where`` is left out while the runtime has not said it."""
    place = f", {where}" if where else ""
    return f"{kind} {operator!r} (instance {instance} of {parallelism}{place})"


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
        self.cause_text = f"{type(cause).__name__}: {cause}"
        self.where: str | None = None
        super().__init__(self._message())

    def _message(self) -> str:
        return (f"{task_name(self.operator, self.instance, self.parallelism, self.where)} failed on "
                f"record {self.record_repr}: {self.cause_text}")

    def locate(self, where: str) -> None:
        """Name where the task ran (the runtime knows it, the task's function does not)."""
        self.where = where
        self.args = (self._message(),)

    def __reduce__(self):  # keep the structured fields when the error crosses processes
        return (_rebuild_operator_error, (self.operator, self.instance, self.parallelism,
                                          self.record_repr, repr(self.cause), self.cause_text,
                                          self.where))


def _rebuild_operator_error(operator, instance, parallelism, record_repr, cause_repr, cause_text, where):
    error = OperatorError.__new__(OperatorError)
    error.operator, error.instance, error.parallelism = operator, instance, parallelism
    error.record_repr, error.cause, error.cause_text = record_repr, RuntimeError(cause_repr), cause_text
    error.where = where
    SageError.__init__(error, error._message())
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
        self.cause_text = f"{type(cause).__name__}: {cause}"
        self.where: str | None = None
        super().__init__(self._message())

    def _message(self) -> str:
        return (f"{task_name(self.operator, self.instance, self.parallelism, self.where)} failed in "
                f"{self.phase}: {self.cause_text}")

    def locate(self, where: str) -> None:
        """Name where the task ran (the runtime knows it, the task's function does not)."""
        self.where = where
        self.args = (self._message(),)

    def __reduce__(self):
        return (_rebuild_step_error, (self.operator, self.instance, self.parallelism, self.phase,
                                      self.cause_text, self.where))


def _rebuild_step_error(operator, instance, parallelism, phase, cause_text, where):
    error = StepError.__new__(StepError)
    error.operator, error.instance, error.parallelism, error.phase = operator, instance, parallelism, phase
    error.cause_text, error.where = cause_text, where
    SageError.__init__(error, error._message())
    return error


class TaskFailedError(SageError):
    """A task failed outside its functions (its actor was lost, a send to a lost actor failed);
    names the task, where it ran and the cause."""

    def __init__(self, chain: str, instance: int, parallelism: int, where: str | None, what: str) -> None:
        self.chain, self.instance, self.parallelism, self.where = chain, instance, parallelism, where
        self.what = what
        super().__init__(f"{task_name(chain, instance, parallelism, where, kind='operator chain')} {what}")

    def __reduce__(self):
        return (TaskFailedError, (self.chain, self.instance, self.parallelism, self.where, self.what))
