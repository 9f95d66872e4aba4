"""OpenAIGeneratorOperator over real HTTP: concurrency, retries, deadlines and the error policy,
with the real openai client against the fault-injecting test server
(tests/rag/fault_injecting_server.py)."""

from __future__ import annotations

import copy

import cloudpickle
import pytest
from sage.kernel.api import JobFailedError, LocalEnvironment, PipelineDefinitionError
from sage.kernel.runtime.task_location import this_process
from sage.kernel.testing import run_pipeline
from sage.middleware.operators.rag import OpenAIGeneratorOperator
from sage.middleware.operators.rag.prompts import render_prompt

CONTEXTS = [{"id": "a#0", "text": "SAGE fuses operators of equal parallelism.", "score": 0.9,
             "metadata": {"source": "docs/a.md"}}]


def generator(faults, **kwargs) -> OpenAIGeneratorOperator:
    settings = {"model": "test-model", "base_url": faults.base_url, "timeout_s": 5.0}
    return OpenAIGeneratorOperator(**{**settings, **kwargs})


def queries(n: int, marker: str = "") -> list[dict]:
    return [{"query": f"question {i}{marker}", "contexts": CONTEXTS} for i in range(n)]


def test_answers_carry_answer_model_and_usage(faults):
    out = run_pipeline([{"query": "what is fused?", "contexts": CONTEXTS, "user": "ada"}, "plain question"],
                       lambda s: s.map(generator(faults)))
    assert out[0]["answer"] == "echo: what is fused?" and out[0]["user"] == "ada"
    assert out[0]["model"] == "test-model" and out[0]["usage"]["total_tokens"] > 0
    assert out[1]["query"] == "plain question" and out[1]["answer"] == "echo: plain question"


def test_the_request_carries_the_settings_and_extra_body_on_top(faults):
    op = generator(faults, system_prompt="Be brief.", max_tokens=7, temperature=0.5,
                   extra_body={"top_k": 5, "temperature": 0.2})
    (out,) = run_pipeline([{"query": "what is fused?"}], lambda s: s.map(op))
    assert out["answer"] == "echo: what is fused?"
    (body,) = faults.bodies
    assert body["model"] == "test-model" and body["max_tokens"] == 7 and body["top_k"] == 5
    assert body["temperature"] == 0.2  # extra_body wins, as the openai SDK merges it
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == "Be brief." and "what is fused?" in body["messages"][1]["content"]


def test_each_instance_keeps_max_concurrency_requests_in_flight(faults):
    faults.delay_s = 0.2
    env = LocalEnvironment(name="concurrency", config={"batch_size": 64})
    (env.from_collection(queries(48))
        .map(generator(faults, max_concurrency=4), parallelism=2, name="generate")
        .collect())
    result = env.execute()
    assert len(result.collected()) == 48
    assert faults.peak_in_flight == 8  # 2 instances x 4
    assert result.metrics["generate"]["requests"] == 48


def test_429_500_and_425_are_retried_and_each_retry_is_counted(faults):
    faults.script("[busy]", "429", "429")
    faults.script("[flaky]", "500")
    faults.script("[early]", "425")
    env = LocalEnvironment(name="retries")
    (env.from_collection([{"query": "a [busy]"}, {"query": "b [flaky]"}, {"query": "c [early]"}, {"query": "d"}])
        .map(generator(faults, max_retries=3), name="generate")
        .collect())
    result = env.execute()
    assert [r["answer"] for r in result.collected()] == ["echo: a [busy]", "echo: b [flaky]", "echo: c [early]",
                                                         "echo: d"]
    assert result.metrics["generate"]["retries"] == 4
    assert result.metrics["generate"]["requests"] == 8
    assert faults.statuses == {429: 2, 500: 1, 425: 1, 200: 4}


def test_retries_wait_longer_each_time_and_honour_retry_after(faults):
    faults.script("[down]", "500", "500", "500")
    run_pipeline([{"query": "q [down]"}], lambda s: s.map(generator(faults, max_retries=3)))
    first, *retries = faults.arrivals
    waits = [later - earlier for earlier, later in zip([first, *retries], retries, strict=False)]
    # 0.5 s doubling each retry, less up to a quarter of jitter
    assert len(waits) == 3 and all(wait >= 0.375 * 2 ** n for n, wait in enumerate(waits)), waits

    faults.reset()
    faults.script("[busy]", "429 retry-after=2")
    out = run_pipeline([{"query": "q [busy]"}], lambda s: s.map(generator(faults, max_retries=1)))
    assert out[0]["answer"] == "echo: q [busy]"
    assert faults.arrivals[1] - faults.arrivals[0] >= 2.0


def test_a_request_that_keeps_failing_fails_the_job_naming_status_operator_and_record(faults):
    faults.script("[broken]", *["500"] * 10)
    with pytest.raises(JobFailedError) as failure:
        run_pipeline(queries(3) + [{"query": "q [broken]"}], lambda s: s.map(generator(faults, max_retries=2)))
    message = str(failure.value)
    assert (f"operator 'OpenAIGeneratorOperator' (instance 0 of 1, {this_process().describe()}) failed on "
            "record {'query': 'q [broken]'}") in message
    assert "GenerationError: OpenAIGeneratorOperator(model=\"test-model\"): record (query 'q [broken]'): " in message
    assert "answered HTTP 500 after 3 attempts: injected fault 500" in message


def test_under_skip_only_the_failing_record_is_dropped_and_nothing_is_asked_twice(faults):
    faults.script("[broken]", *["500"] * 10)
    records = queries(5) + [{"query": "q [broken]"}] + queries(5, marker=" later")
    env = LocalEnvironment(name="skip", config={"error_policy": "skip"})
    env.from_collection(records).map(generator(faults, max_retries=1), name="generate").collect()
    result = env.execute()
    assert len(result.collected()) == 10
    assert result.metrics["generate"]["skipped"] == 1
    assert faults.statuses == {200: 10, 500: 2}


def test_client_errors_are_not_retried(faults):
    faults.script("[bad]", "400", "400")
    with pytest.raises(JobFailedError, match=r"answered HTTP 400 after 1 attempt: injected fault 400; check the model"):
        run_pipeline([{"query": "x [bad]"}], lambda s: s.map(generator(faults)))


@pytest.mark.parametrize("status", [501, 505])
def test_501_and_505_are_not_retried_and_the_error_names_the_record(faults, status):
    faults.script("[never]", str(status), str(status))
    with pytest.raises(JobFailedError) as failure:
        run_pipeline([{"id": "q-7", "query": "x [never]"}], lambda s: s.map(generator(faults, max_retries=3)))
    message = str(failure.value)
    assert 'record (id "q-7"): ' in message
    assert f"answered HTTP {status} after 1 attempt: injected fault {status}; check the model" in message
    assert faults.statuses == {status: 1}


def test_a_long_query_is_named_by_its_first_80_characters(faults):
    query = "why " * 40 + "[broken]"
    faults.script("[broken]", "400")
    with pytest.raises(JobFailedError) as failure:
        run_pipeline([{"query": query}], lambda s: s.map(generator(faults)))
    assert f"record (query {query[:80] + '...'!r}): " in str(failure.value)


def test_a_hanging_server_times_out_and_is_retried(faults):
    faults.script("[hang]", "hang", "hang")
    with pytest.raises(JobFailedError, match=r"no answer from .* within timeout_s=0.3 after 2 attempts"):
        run_pipeline([{"query": "x [hang]"}], lambda s: s.map(generator(faults, timeout_s=0.3, max_retries=1)))
    faults.script("[slow-once]", "hang")
    out = run_pipeline([{"query": "y [slow-once]"}], lambda s: s.map(generator(faults, timeout_s=0.3)))
    assert out[0]["answer"] == "echo: y [slow-once]"


@pytest.mark.timeout(30)
def test_timeout_s_bounds_the_whole_request_when_the_server_drips_its_answer(faults):
    """The server sends its answer one byte every 0.2 s: each read is quick, the whole takes a
    minute; timeout_s=1 ends each attempt after a second, and the SDK retries it."""
    faults.script("[drip]", "drip", "drip")
    with pytest.raises(JobFailedError) as failure:
        run_pipeline([{"id": "q-9", "query": "x [drip]"}],
                     lambda s: s.map(generator(faults, timeout_s=1, max_retries=1)))
    message = str(failure.value)
    assert (f"operator 'OpenAIGeneratorOperator' (instance 0 of 1, {this_process().describe()}) failed on "
            "record {'id': 'q-9'") in message
    assert f'record (id "q-9"): no answer from {faults.base_url} within timeout_s=1 after 2 attempts' in message
    assert faults.requests == 2
    assert faults.wait_until(lambda: faults.statuses == {0: 2}), "the client should hang up on both attempts"


# what the server sends with HTTP 200, and how the error describes it
UNUSABLE_200 = {
    "no-choices": "answered HTTP 200 with a chat completion that has no choices: {\"id\": \"chatcmpl-",
    "error-body": "answered HTTP 200 with an error instead of a completion: the model is overloaded",
    "html": ("answered HTTP 200 with text/html; charset=utf-8 instead of a JSON chat completion: "
             "<html><head><title>Welcome to nginx!</title>"),
}


@pytest.mark.parametrize("action", list(UNUSABLE_200))
def test_a_200_that_is_no_chat_completion_is_that_records_error(faults, tmp_path, action):
    faults.script("[odd]", action)
    env = LocalEnvironment(name="odd-200", config={"error_policy": "dead_letter", "job_dir": str(tmp_path)})
    (env.from_collection(queries(3) + [{"query": "q [odd]"}])
        .map(generator(faults, max_retries=3), name="generate")
        .collect())
    result = env.execute()

    assert sorted(r["answer"] for r in result.collected()) == [f"echo: question {i}" for i in range(3)]
    (letter,) = result.dead_letters()
    assert letter["record"] == {"query": "q [odd]"}
    message = letter["message"]
    assert message.startswith("operator 'generate' (instance 0 of 1) failed on record {'query': 'q [odd]'}: ")
    assert (f"GenerationError: OpenAIGeneratorOperator(model=\"test-model\"): record (query 'q [odd]'): "
            f"{faults.base_url} {UNUSABLE_200[action]}") in message
    assert faults.statuses == {200: 4}  # not retried: the same request would get the same answer


def test_an_unreachable_server_is_reported_as_such():
    op = OpenAIGeneratorOperator(model="m", base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(JobFailedError, match=r"cannot reach http://127.0.0.1:9/v1 after 2 attempts"):
        run_pipeline(["q"], lambda s: s.map(op))


def test_without_key_or_server_the_pipeline_fails_when_built(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(PipelineDefinitionError, match=r"no API key and no server address; set OPENAI_API_KEY"):
        OpenAIGeneratorOperator(model="gpt-4")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAIGeneratorOperator(model="gpt-4").model == "gpt-4"


def test_prompt_templates(faults):
    prompt = render_prompt(None, "what is fused?", CONTEXTS)
    assert "[1] (docs/a.md) SAGE fuses operators" in prompt and "Question: what is fused?" in prompt
    custom = generator(faults, prompt_template="Q={query} C={context}")
    assert run_pipeline(["hi"], lambda s: s.map(custom))[0]["answer"] == "echo: Q=hi C=(no passages were retrieved)"
    with pytest.raises(PipelineDefinitionError, match=r"prompt_template must contain \{query\}"):
        generator(faults, prompt_template="no placeholders")
    with pytest.raises(PipelineDefinitionError, match=r"cannot be filled"):
        generator(faults, prompt_template="{query} {other}")


def test_the_operator_copies_and_pickles_before_open(faults):
    op = generator(faults, max_concurrency=3)
    assert copy.deepcopy(op).max_concurrency == 3
    assert cloudpickle.loads(cloudpickle.dumps(op)).base_url == faults.base_url


