"""Windowed results agree with Bytewax's on the same input, record for record.

The same out-of-order events (milliseconds; no record behind the watermark when it arrives,
where Bytewax and Flink define lateness differently, see docs/streaming.md) go through an
event-time tumbling count and a session collection in SAGE (parallelism 4) and in Bytewax
(``EventClock`` with a fixed system clock, so its watermark is ``max seen - wait``, as ours).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sage.kernel.api import LocalEnvironment, Session, Tumbling

bytewax = pytest.importorskip("bytewax", reason="bytewax is a dev dependency")
from bytewax import operators as op  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.operators import windowing  # noqa: E402
from bytewax.testing import TestingSink, TestingSource, run_main  # noqa: E402

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
WAIT_MS = 3000


def out_of_order_events(count: int = 400, seed: int = 7) -> list[tuple[str, int]]:
    """Every 500 ms an event up to 2.9 s late, so none falls behind a 3 s watermark wait."""
    rng = random.Random(seed)
    return [(f"user{rng.randrange(6)}", i * 500 - rng.randrange(0, 2900)) for i in range(count)]


def bytewax_windows(events, windower, aggregate):
    """(key, start ms, end ms, value) per window from Bytewax."""
    flow = Dataflow("compare")
    stream = op.input("in", flow, TestingSource(events, batch_size=1))
    clock = windowing.EventClock(lambda e: EPOCH + timedelta(milliseconds=e[1]),
                                 wait_for_system_duration=timedelta(milliseconds=WAIT_MS),
                                 now_getter=lambda: EPOCH)
    out = aggregate("window", stream, clock, windower)
    down, meta = [], []
    op.output("down", out.down, TestingSink(down))
    op.output("meta", out.meta, TestingSink(meta))
    run_main(flow)
    bounds = {(key, wid): (m.open_time, m.close_time) for key, (wid, m) in meta}

    def ms(moment):
        return int((moment - EPOCH) / timedelta(milliseconds=1))

    return sorted((key, ms(bounds[key, wid][0]), ms(bounds[key, wid][1]), value) for key, (wid, value) in down)


def sage_env(events):
    env = LocalEnvironment("compare", config={"batch_size": 1, "watermark_interval_ms": 0})
    stream = env.from_collection(events).assign_timestamps(lambda e: e[1], max_out_of_orderness=WAIT_MS)
    return env, stream.key_by(lambda e: e[0])


def test_an_event_time_tumbling_count_agrees_with_bytewax():
    events = out_of_order_events()
    env, keyed = sage_env(events)
    keyed.window(Tumbling(10_000)).count(parallelism=4).collect()
    ours = sorted((r.key, r.start, r.end, r.value) for r in env.execute().collected())
    theirs = bytewax_windows(
        events, windowing.TumblingWindower(length=timedelta(seconds=10), align_to=EPOCH),
        lambda step, up, clock, windower: windowing.count_window(step, up, clock, windower, key=lambda e: e[0]))
    assert ours == theirs
    assert len(ours) > 50


def test_event_time_session_windows_agree_with_bytewax():
    events = out_of_order_events()
    env, keyed = sage_env(events)
    (keyed.window(Session(1500))
        .process(lambda key, w, records: [(key, w.start, w.end, sorted(t for _, t in records))], parallelism=4)
        .collect())
    ours = sorted(env.execute().collected())
    theirs = bytewax_windows(
        events, windowing.SessionWindower(gap=timedelta(milliseconds=1500)),
        lambda step, up, clock, windower: windowing.collect_window(
            step, op.key_on("key", up, lambda e: e[0]), clock, windower))
    # Bytewax's session metadata closes at the last event; Flink's (and ours) a gap after it.
    theirs = [(key, start, end + 1500, sorted(t for _, t in values)) for key, start, end, values in theirs]
    assert ours == theirs
    assert len(ours) > 50
