"""ConsoleSink: one readable line per record, whole lines even from parallel instances."""

from __future__ import annotations

import json

import pytest
from sage.kernel.api import LocalEnvironment
from sage.libs.io import ConsoleSink


def print_records(records, sink, parallelism=1):
    env = LocalEnvironment(name="console")
    env.from_collection(records).sink(sink, parallelism=parallelism)
    env.execute()


def test_auto_format_prints_strings_plainly_and_dicts_as_json(capsys):
    print_records(["plain text", {"a": 1, "é": [1, 2]}, 3.5, None, "two\nlines", (1, 2), {1, 2}],
                  ConsoleSink())

    assert capsys.readouterr().out.splitlines() == [
        "plain text", '{"a": 1, "é": [1, 2]}', "3.5", "null", '"two\\nlines"', "[1, 2]", "{1, 2}"]


def test_json_and_repr_formats(capsys):
    print_records(["s", {"k": object.__name__}], ConsoleSink(format="json"))
    print_records(["s"], ConsoleSink(format="repr", prefix="> "))

    assert capsys.readouterr().out.splitlines() == ['"s"', '{"k": "object"}', "> 's'"]


def test_unknown_format_fails_when_built():
    with pytest.raises(ValueError, match="format must be one of auto, json, repr"):
        ConsoleSink(format="yaml")


def test_parallel_instances_never_interleave_lines(capfd):
    records = [{"n": n, "payload": "x" * (n % 500)} for n in range(4000)]

    print_records(records, ConsoleSink(format="json"), parallelism=4)

    lines = capfd.readouterr().out.splitlines()
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(4000))
