"""How the records of requests reach the request source of a pipeline served in this process:
handed to the source's event loop as they are submitted, in order, without those whose client
already left; none is lost when the source starts late or a restarted source takes over."""

from __future__ import annotations

import asyncio

import pytest
from sage.kernel.serving.requests import RequestHub


def run(scenario) -> None:
    async def main() -> None:
        hub = RequestHub("handoff")
        try:
            await asyncio.wait_for(scenario(hub), timeout=10)
        finally:
            hub.close()

    asyncio.run(main())


def test_records_come_in_order_those_submitted_before_the_source_reads_first_and_a_gone_client_is_skipped():
    async def scenario(hub: RequestHub) -> None:
        hub.submit({"query": "a"})
        gone = hub.submit({"query": "b"})
        hub.submit({"query": "c"})
        hub.abandon(gone.request_id, "abandoned")
        records = hub.records()
        assert [(await anext(records))["query"] for _ in range(2)] == ["a", "c"]
        hub.submit({"query": "d"})
        assert (await anext(records))["query"] == "d"
        hub.stop("the test is over")
        with pytest.raises(StopAsyncIteration):
            await anext(records)

    run(scenario)


def test_records_a_closed_source_was_handed_but_did_not_take_go_to_the_next_one():
    async def scenario(hub: RequestHub) -> None:
        first = hub.records()
        hub.submit({"query": "taken"})
        assert (await anext(first))["query"] == "taken"
        hub.submit({"query": "left 1"})
        hub.submit({"query": "left 2"})
        await asyncio.sleep(0)  # both are handed to the first source's queue
        await first.aclose()  # the source stops (a job restart) before it took them
        hub.submit({"query": "later"})
        second = hub.records()
        assert [(await anext(second))["query"] for _ in range(3)] == ["left 1", "left 2", "later"]

    run(scenario)


def test_whether_a_request_streams_is_known_from_its_record_alone(monkeypatch):
    """A generator asks for every record whether its client waits for the answer piece by
    piece. On a cluster it runs in whichever worker the record reached, so the record itself
    must say: a call to the server per record would hold the worker's event loop."""
    import ray._private.auto_init_hook as ray_auto_init
    from sage.kernel.jobmanager.serving_relay import RelayChannel

    monkeypatch.setattr(ray_auto_init, "enable_auto_connect", False)  # a call to Ray fails, not starts one

    async def scenario(hub: RequestHub) -> None:
        hub.submit({"query": "streamed"}, streaming=True)
        hub.submit({"query": "whole"})
        records = hub.records()
        streamed, whole = await anext(records), await anext(records)
        worker = RelayChannel("sage-serve-never-called")
        assert worker.wants_partial_outputs(streamed) and not worker.wants_partial_outputs(whole)
        assert hub.wants_partial_outputs(streamed) and not hub.wants_partial_outputs(whole)

    run(scenario)
