"""Batches: full under load, prompt at low load, merged per target, bounded by batch_timeout_ms."""

from __future__ import annotations

import time

import pytest
from sage.kernel.api import LocalEnvironment, SourceFunction
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.runtime.output_buffer import OutputBuffer
from sage.kernel.runtime.source_reader import SourceReader

from tests.semantics_cases import RecordsBatchSizes
from tests.streaming_cases import PacedSource


def test_under_load_a_micro_batching_operator_gets_full_batches():
    env = LocalEnvironment("load", config={"batch_size": 256})
    env.from_collection(range(256 * 20)).map(RecordsBatchSizes(), name="sizes").collect()
    batch = env.execute().metrics["sizes"]["batch"]
    assert batch["count"] == 20 and batch["min"] == 256


def test_under_load_a_generator_source_fills_batches_too():
    class Numbers(SourceFunction):
        def read(self):
            yield from range(10_000)

    env = LocalEnvironment("load-gen", config={"batch_size": 500})
    env.from_source(Numbers()).map(RecordsBatchSizes(), name="sizes").collect()
    result = env.execute()
    assert result.collected() == list(range(10_000))
    assert result.metrics["sizes"]["batch"]["max"] == 500


def test_at_low_load_each_record_is_its_own_batch():
    env = LocalEnvironment("trickle")
    env.from_source(PacedSource(5, 0.05)).map(RecordsBatchSizes(), name="sizes").collect()
    batch = env.execute().metrics["sizes"]["batch"]
    assert batch["count"] == 5 and batch["max"] == 1


def test_output_parts_for_one_target_are_merged_up_to_batch_size():
    sent = []
    buffer = OutputBuffer(lambda position, target, part: sent.append((position, target, part)), 4, 60.0)
    buffer.add(0, 1, [1, 2])
    buffer.add(0, 0, [9])
    buffer.add(0, 1, [3])
    assert sent == []
    buffer.add(0, 1, [4, 5])
    assert sent == [(0, 1, [1, 2, 3, 4])]
    assert buffer.next_due() is not None and buffer.next_due() > 0
    buffer.flush()
    assert sorted(sent[1:]) == [(0, 0, [9]), (0, 1, [5])] and buffer.next_due() is None


def test_output_parts_leave_when_their_oldest_record_is_due():
    sent = []
    buffer = OutputBuffer(lambda position, target, part: sent.append(part), 1000, 0.02)
    buffer.add(0, 0, ["a"])
    buffer.flush_due()
    assert sent == []
    time.sleep(0.03)
    assert buffer.next_due() == 0
    buffer.flush_due()
    assert sent == [["a"]]


def test_a_source_reader_hands_over_what_was_read_while_the_source_blocks():
    class OneThenBlock(SourceFunction):
        def __init__(self):
            import threading

            self.release = threading.Event()

        def read(self):
            yield "first"
            self.release.wait()
            yield "second"

    source = OneThenBlock()
    reader = SourceReader(source, "test", batch_size=100, batch_timeout_s=0.001, capacity_batches=2)
    reader.start()
    deadline = time.monotonic() + 10
    batch = []
    while not batch and time.monotonic() < deadline:
        batch = reader.next_batch(0.1)
    assert batch == ["first"]
    source.release.set()
    rest = []
    while (more := reader.next_batch(0.1)) is not None:
        rest += more
    assert rest == ["second"]


def test_interrupt_ends_the_tasks_wait_for_a_batch_at_once():
    """How an async operator's result goes on as soon as its call completes, not at the next
    poll: the completion interrupts the source task's wait."""
    import threading

    class Silent(SourceFunction):
        def __init__(self):
            self.release = threading.Event()

        def read(self):
            self.release.wait()
            return
            yield

    source = Silent()
    reader = SourceReader(source, "test", batch_size=100, batch_timeout_s=0.001, capacity_batches=2)
    reader.start()
    got: list = []
    waiting = threading.Thread(target=lambda: got.append(reader.next_batch(60.0)))
    waiting.start()
    time.sleep(0.1)
    reader.interrupt()
    waiting.join(30)
    assert not waiting.is_alive() and got == [[]]  # back well before its 60 s wait was over
    source.release.set()
    while reader.next_batch(0.1) is not None:
        pass


def test_a_micro_batching_function_max_wait_ms_lowers_the_batch_timeout():
    from sage.kernel.runtime.task import chain_batch_timeout_ms

    env = LocalEnvironment("bounds", config={"batch_timeout_ms": 40})
    env.from_collection(range(3)).rebalance().map(RecordsBatchSizes(max_wait_ms=5), parallelism=2).collect()
    plan = env.physical_plan()
    source_chain = plan.chains[0]
    assert chain_batch_timeout_ms(plan, source_chain, 40) == 5
    env = LocalEnvironment("bounds2")
    env.from_collection(range(3)).map(lambda x: x, batch_timeout_ms=0.5).collect()
    plan = env.physical_plan()
    assert chain_batch_timeout_ms(plan, plan.chains[0], 1.0) == 0.5


@pytest.mark.parametrize("config", [{"batch_timeout_ms": -1}, {"batch_timeout_ms": "5"},
                                    {"stop_grace_s": 0}])
def test_bad_latency_settings_are_refused(config):
    with pytest.raises(PipelineDefinitionError, match=next(iter(config))):
        LocalEnvironment("bad", config=config)


def test_a_bad_operator_batch_timeout_is_refused():
    env = LocalEnvironment("bad-op")
    with pytest.raises(PipelineDefinitionError, match="batch_timeout_ms must be a number >= 0"):
        env.from_collection([1]).map(lambda x: x, batch_timeout_ms=-3)


def test_a_fan_out_is_cut_back_to_batches_of_batch_size():
    sent = []
    buffer = OutputBuffer(lambda position, target, part: sent.append(list(part)), 4, 60.0)
    buffer.add(0, 0, list(range(10)))
    assert sent == [[0, 1, 2, 3], [4, 5, 6, 7]]
    buffer.flush()
    assert sent[-1] == [8, 9]


def test_batches_after_a_flat_map_fan_out_hold_at_most_batch_size_records():
    env = LocalEnvironment("fan-out", config={"batch_size": 50})
    (env.from_collection(range(20)).flat_map(lambda x: [x] * 100)
        .rebalance().map(RecordsBatchSizes(), parallelism=2, name="sizes").collect())
    result = env.execute()
    assert len(result.collected()) == 2000
    assert result.metrics["sizes"]["batch"]["max"] <= 50
