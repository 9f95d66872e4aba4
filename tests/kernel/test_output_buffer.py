"""What a Ray worker's functions print is kept for ``job.log``: every line while the driver
collects, and an exact count of what was dropped when it does not.

``OutputBuffer`` is the worker's side of it (``runtime/ray/output_buffer.py``); these tests
drive it with real threads. ``tests/distributed/test_job_logs.py`` runs it on a cluster.
"""

from __future__ import annotations

import threading
import time

from sage.kernel.runtime.ray.output_buffer import OutputBuffer

LINE = "x" * 99  # 100 bytes a line, counting its end


def write(buffer: OutputBuffer, count: int, start: int = 0) -> threading.Thread:
    thread = threading.Thread(target=lambda: [buffer.add([f"{i:06d}{LINE[6:]}"]) for i in range(start, start + count)],
                              daemon=True)
    thread.start()
    return thread


def test_a_writer_faster_than_the_collector_loses_no_line():
    buffer = OutputBuffer(max_bytes=10_000, wait_s=60)  # room for 100 lines
    buffer.start(capturing=True)
    writer = write(buffer, 20_000)
    collected, dropped = [], 0
    deadline = time.monotonic() + 120  # a hang fails here, not a slow machine
    while writer.is_alive() and time.monotonic() < deadline:
        lines, lost = buffer.take()
        collected.extend(lines)
        dropped += lost
        time.sleep(0.001)
    lines, lost = buffer.take()
    collected.extend(lines)
    dropped += lost
    assert dropped == 0
    assert [int(line[:6]) for line in collected] == list(range(20_000))


def test_a_writer_waits_for_room_in_a_full_buffer():
    buffer = OutputBuffer(max_bytes=1_000, wait_s=60)
    buffer.start(capturing=True)
    writer = write(buffer, 15)
    writer.join(timeout=0.5)
    assert writer.is_alive()  # 10 lines fill the buffer; the 11th waits for a collection

    first, dropped = buffer.take()
    writer.join(timeout=30)
    assert not writer.is_alive()
    rest, _ = buffer.take()
    assert dropped == 0
    assert [int(line[:6]) for line in first + rest] == list(range(15))


def test_without_a_collector_lines_are_dropped_and_counted_exactly():
    buffer = OutputBuffer(max_bytes=1_000, wait_s=0.2)
    buffer.start(capturing=True)
    write(buffer, 25).join(timeout=30)  # 10 fit, the 11th waits 0.2 s in vain, 15 are dropped

    kept, dropped = buffer.take()
    assert [int(line[:6]) for line in kept] == list(range(10))
    assert dropped == 15

    write(buffer, 3, start=25).join(timeout=30)  # a collection came: lines are kept again
    assert buffer.take() == ([f"{i:06d}{LINE[6:]}" for i in range(25, 28)], 0)


def test_a_job_whose_driver_does_not_collect_keeps_nothing():
    buffer = OutputBuffer(max_bytes=1_000, wait_s=60)
    buffer.start(capturing=False)
    write(buffer, 50).join(timeout=30)
    assert buffer.take() == ([], 0)


def test_stopping_releases_a_waiting_writer():
    buffer = OutputBuffer(max_bytes=1_000, wait_s=60)
    buffer.start(capturing=True)
    writer = write(buffer, 20)
    writer.join(timeout=0.5)
    assert writer.is_alive()
    buffer.stop()
    writer.join(timeout=30)
    assert not writer.is_alive()
