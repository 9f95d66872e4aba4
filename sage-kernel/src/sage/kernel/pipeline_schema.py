"""The schema of a declarative pipeline file (pydantic models), and its errors as one paragraph.

Checking the whole file against a schema before anything is built means a wrong key, a
missing ``source`` or a ``parallelism: two`` is reported with where it is in the file and
what is allowed there, every problem at once, never as a traceback from deep inside.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

OPERATOR_VERBS = ("map", "filter", "flat_map", "sink")
ROUTING_VERBS = ("key_by", "rebalance", "broadcast", "partition_custom")
VERBS = OPERATOR_VERBS + ROUTING_VERBS
STEP_OPTIONS = ("with", "parallelism", "name", "resources")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceSpec(_Strict):
    """``source:``, a registered name or module:attribute and its arguments."""

    use: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    parallelism: PositiveInt | None = None
    name: str | None = None


class StepSpec(_Strict):
    """One step: exactly one verb, and the options that verb takes."""

    map: str | None = None
    filter: str | None = None
    flat_map: str | None = None
    sink: str | None = None
    key_by: str | None = None
    rebalance: Any = None
    broadcast: Any = None
    partition_custom: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    parallelism: PositiveInt | None = None
    name: str | None = None
    resources: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_verb(self) -> StepSpec:
        verbs = [verb for verb in VERBS if verb in self.model_fields_set]
        if len(verbs) != 1:
            raise ValueError(f"name exactly one of {', '.join(VERBS)}; got {verbs}")
        verb = verbs[0]
        if verb in OPERATOR_VERBS and getattr(self, verb) is None:
            raise ValueError(f"{verb} needs a registered name or module:attribute")
        options = sorted(_field_key(f) for f in self.model_fields_set - {verb})
        allowed = ["with", "parallelism"] if verb == "partition_custom" else []
        if verb in ROUTING_VERBS and set(options) - set(allowed):
            raise ValueError(f"{verb} takes no options besides its value (partition_custom also takes with "
                             f"and parallelism); got {options}")
        return self

    @property
    def verb(self) -> str:
        return next(verb for verb in VERBS if verb in self.model_fields_set)


class PipelineSpec(_Strict):
    """A whole pipeline file."""

    name: str | None = None
    config: dict[str, Any] | None = None
    source: SourceSpec
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _source_by_name(cls, data: Any) -> Any:
        """``source: NAME`` is short for ``source: {use: NAME}``."""
        if isinstance(data, dict) and isinstance(data.get("source"), str):
            return {**data, "source": {"use": data["source"]}}
        return data


KNOWN_KEYS = {
    (): ["name", "config", "source", "steps"],
    ("source",): ["use", "with", "parallelism", "name"],
    ("steps",): [*VERBS, *STEP_OPTIONS],
}


def _field_key(name: str) -> str:
    return "with" if name == "with_" else name


def _where(loc: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """A place in the file in words (``step 2, 'parallelism'``) and the section it is in."""
    words, section = [], []
    for index, part in enumerate(loc):
        if isinstance(part, int) and index > 0 and loc[index - 1] == "steps":
            words[-1] = f"step {part + 1}"
        else:
            words.append(repr(_field_key(str(part))))
            section.append(_field_key(str(part)))
    return ", ".join(words), tuple(section)


def describe(error: ValidationError) -> str:
    """Every problem the schema found, in one line each joined into one paragraph."""
    problems = []
    for item in error.errors(include_url=False):
        where, section = _where(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            known = KNOWN_KEYS.get(section[:-1], [])
            message = f"unknown key; known keys are {', '.join(known)}"
        elif item["type"] == "missing":
            message = "missing"
        elif "input" in item and item["type"] not in ("value_error",):
            message = f"{message}, got {item['input']!r}"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
