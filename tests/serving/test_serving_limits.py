"""A served pipeline under load stays honest: 429 at the bound on requests in flight, 504 past
the deadline, a 5xx naming the operator's error, and a disconnected client's record dropped."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import openai
import pytest
from sage.kernel.api import LocalEnvironment
from sage.kernel.serving import AnswerSink, RequestSource, start, still_wanted

pytestmark = pytest.mark.timeout(120)


class Gate:
    """Holds every record in an operator until ``open()``; says when a record has arrived."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.arrived = threading.Event()

    def step(self, record: dict[str, Any]) -> dict[str, Any]:
        self.arrived.set()
        assert self.opened.wait(60), "the test never opened the gate"
        return record

    def open(self) -> None:
        self.opened.set()


def answer(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "answer": record["query"].upper()}


def gated(gate: Gate, name: str, **config: Any) -> LocalEnvironment:
    env = LocalEnvironment(name=name, config=config or None)
    env.from_source(RequestSource()).map(through(gate), name="gate").map(answer, name="answer").sink(AnswerSink())
    return env


def through(gate: Gate):
    """The gate as a plain function: every parallel instance shares the one gate."""
    return lambda record: gate.step(record)


def in_background(call) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_a_request_past_the_bound_in_flight_gets_429_with_retry_after():
    gate = Gate()
    with start(gated(gate, "bounded"), max_in_flight=1, retry_after_s=3) as server:
        first: list[httpx.Response] = []
        waiting = in_background(lambda: first.append(httpx.post(server.url + "/query", json={"query": "a"}, timeout=60)))
        assert gate.arrived.wait(30)

        refused = httpx.post(server.url + "/query", json={"query": "b"})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "3"
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0).completions.create(
                model="bounded", prompt="c")

        gate.open()
        waiting.join(30)
        assert first[0].json()["answer"] == "A"
        assert httpx.post(server.url + "/query", json={"query": "d"}).json()["answer"] == "D"
        assert httpx.get(server.url + "/metrics").json()["serving"]["rejected"] == 2


def test_a_request_not_answered_within_its_deadline_gets_504():
    gate = Gate()
    with start(gated(gate, "slow"), request_timeout_s=0.5) as server:
        response = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                              json={"model": "slow", "messages": [{"role": "user", "content": "late"}]})
        assert response.status_code == 504
        assert "request_timeout_s=0.5" in response.json()["error"]["message"]

        gate.open()
        assert httpx.post(server.url + "/query", json={"query": "on time"}).json()["answer"] == "ON TIME"
        serving = httpx.get(server.url + "/metrics").json()["serving"]
        assert serving["timed_out"] == 1
        assert serving["unmatched"] == 1  # the late record reached the sink; nobody waited for it


def failing(policy: str) -> LocalEnvironment:
    def check(record: dict[str, Any]) -> dict[str, Any]:
        if "boom" in record["query"]:
            raise ValueError(f"cannot answer {record['query']!r}")
        return record

    env = LocalEnvironment(name="failing", config={"error_policy": policy})
    env.from_source(RequestSource()).map(check, name="check").map(answer, name="answer").sink(AnswerSink())
    return env


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
def test_an_operator_error_gives_500_naming_the_operator_and_the_server_goes_on(policy):
    with start(failing(policy)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model="failing", messages=[{"role": "user", "content": "boom now"}])
        message = raised.value.body["message"]
        assert "operator 'check'" in message and "ValueError: cannot answer 'boom now'" in message

        plain = httpx.post(server.url + "/query", json={"query": "boom again"})
        assert plain.status_code == 500 and plain.json()["error"]["operator"] == "check"
        assert client.completions.create(model="failing", prompt="fine").choices[0].text == "FINE"


def test_under_the_fail_policy_the_failing_request_gets_its_error_and_the_server_stops():
    with start(failing("fail")) as server:
        response = httpx.post(server.url + "/query", json={"query": "boom"}, timeout=30)
        assert response.status_code == 500
        assert "ValueError: cannot answer 'boom'" in response.json()["error"]["message"]
        deadline = time.monotonic() + 30
        while server._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server._thread.is_alive()
        assert server.served.hub.stopped is not None and "cannot answer 'boom'" in server.served.hub.stopped


def test_a_client_that_disconnects_has_its_record_dropped_before_further_work():
    gate = Gate()
    worked: list[str] = []

    def expensive(record: dict[str, Any]) -> dict[str, Any]:
        worked.append(record["query"])
        return {**record, "answer": "done"}

    env = LocalEnvironment(name="dropping")
    (env.from_source(RequestSource()).map(through(gate), name="gate").filter(still_wanted)
        .map(expensive, name="expensive").sink(AnswerSink()))
    with start(env) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/query", json={"query": "gone"}, timeout=httpx.Timeout(30, read=0.5))
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/metrics").json()["serving"]["abandoned"] < 1:
            assert time.monotonic() < deadline, "the server never noticed the disconnect"
            time.sleep(0.05)

        gate.open()
        assert httpx.post(server.url + "/query", json={"query": "kept"}).json()["answer"] == "done"
    assert worked == ["kept"]


def test_a_request_waits_for_no_batch_to_fill():
    from sage.kernel.runtime.task import chain_batch_timeout_ms

    env = LocalEnvironment(name="prompt", config={"batch_timeout_ms": 50})
    env.from_source(RequestSource()).map(answer).sink(AnswerSink())
    plan = env.physical_plan()
    assert chain_batch_timeout_ms(plan, plan.chains[0], 50) == 0  # RequestSource.max_wait_ms
