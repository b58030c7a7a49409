"""Chunk coalescing on both sides (worker/chunks.py, master/streaming.py): first at once, then per interval or size."""

from __future__ import annotations

import asyncio
from typing import Any

from master.dispatcher import Outcome, Task
from master.streaming import CHUNK_EVENT, ChunkRelay
from worker.chunks import ChunkCoalescer

HOUR = 3600.0  # an interval no test waits for: only size, close and finish send what is buffered


def task(task_id: str = "t1", owner: str = "user-1") -> Task:
    return Task(task_id, owner, "q", "", 0, 0.0)


async def settle() -> None:
    """Let the emit tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_relay_sends_the_first_chunk_at_once_then_buffers() -> None:
    """The first chunk goes out at once; the next ones wait for the interval or for max_bytes."""
    sent: list[tuple[str, dict[str, Any], str]] = []

    async def emit(event: str, data: dict[str, Any], owner: str) -> None:
        sent.append((event, data, owner))

    relay = ChunkRelay(emit, interval_s=HOUR, max_bytes=10)
    t = task()
    relay.add(t, "a")
    relay.add(t, "b")
    relay.add(t, "c")
    await settle()
    assert sent == [(CHUNK_EVENT, {"task_id": "t1", "seq": 1, "text": "a"}, "user-1")]
    relay.add(t, "x" * 10)  # reaches max_bytes
    await settle()
    assert sent[-1][1] == {"task_id": "t1", "seq": 2, "text": "bc" + "x" * 10}
    assert relay.sent("t1") == (2, "abc" + "x" * 10)


async def test_relay_completes_the_answer_and_forgets_on_stop() -> None:
    """An answer sends the rest of it (buffer and tail) as the last chunk; a stopped task's buffer is dropped."""
    sent: list[dict[str, Any]] = []

    async def emit(event: str, data: dict[str, Any], owner: str) -> None:
        sent.append(data)

    relay = ChunkRelay(emit, interval_s=HOUR)
    answered, stopped = task("a1"), task("s1")
    for t in (answered, stopped):
        relay.add(t, "first ")
        relay.add(t, "rest")
    relay.finished(answered, Outcome("a1", answer="first rest, and the tail the worker left to its result"))
    relay.finished(stopped, Outcome("s1", error_code="stopped", partial="first rest"))
    await settle()
    assert [(d["task_id"], d["text"]) for d in sent] == [
        ("a1", "first "), ("s1", "first "), ("a1", "rest, and the tail the worker left to its result")]
    assert relay.sent("a1") == relay.sent("s1") == (0, "")


async def test_relay_tells_the_page_to_start_over_after_a_requeue() -> None:
    """A requeued task starts again: its next chunk carries `reset`; an answer without chunks sends none."""
    sent: list[dict[str, Any]] = []

    async def emit(event: str, data: dict[str, Any], owner: str) -> None:
        sent.append(data)

    relay = ChunkRelay(emit, interval_s=0)
    t = task()
    relay.finished(task("quick"), Outcome("quick", answer="no chunk came for this one"))
    relay.add(t, "old")
    relay.requeued(t)
    relay.add(t, "new")
    await settle()
    assert sent == [{"task_id": "t1", "seq": 1, "text": "old"}, {"task_id": "t1", "seq": 2, "text": "new", "reset": True}]
    assert relay.sent("t1") == (2, "new")


async def test_worker_coalescer_sends_in_order_and_drops_the_tail_on_close() -> None:
    """Worker side: first piece at once, then at max_bytes, numbered; the tail is left to the result."""
    sent: list[tuple[int, str]] = []

    async def send(seq: int, text: str) -> None:
        await asyncio.sleep(0)
        sent.append((seq, text))

    chunks = ChunkCoalescer(send, interval_s=HOUR, max_bytes=4)
    chunks.add("a")
    await settle()
    for piece in ("b", "c", "dd"):
        chunks.add(piece)
    await settle()
    chunks.add("e")
    await chunks.close()
    assert sent == [(1, "a"), (2, "bcdd")]


async def test_worker_coalescer_sends_nothing_for_an_answer_that_came_at_once() -> None:
    """An answer complete before any chunk was written costs no chunk (the result carries it)."""
    sent: list[tuple[int, str]] = []

    async def send(seq: int, text: str) -> None:
        sent.append((seq, text))

    chunks = ChunkCoalescer(send, interval_s=HOUR)
    for piece in ("all ", "at ", "once"):
        chunks.add(piece)
    await chunks.close()
    assert sent == []


async def test_worker_coalescer_discard_drops_the_buffer() -> None:
    """Stopped: what is buffered is never sent."""
    sent: list[tuple[int, str]] = []

    async def send(seq: int, text: str) -> None:
        sent.append((seq, text))

    chunks = ChunkCoalescer(send, interval_s=HOUR)
    chunks.add("a")
    await settle()
    chunks.add("b")
    chunks.discard()
    await settle()
    assert sent == [(1, "a")]
