"""Answer chunks to the asker's room as `ai-response-chunk`, coalesced, with the text so far kept for a reload.

A chunk goes out at once when none went out for this task in the last `interval_s`; otherwise it waits
in a buffer that is sent `interval_s` after the previous emit, or at once when it reaches `max_bytes`.
So the first chunk is not delayed, and a fast model costs the browser at most one event per interval.
The relay is told the task's life as a dispatcher Journal: a task that goes back to the queue starts
over (the page is told with `reset`), a finished one is forgotten (its `ai-response` carries the whole
answer).
A worker drops its last buffered piece when the answer is complete (the result carries it), so when the
answer comes the relay sends the rest of it as the last chunk; an answer that came with no chunk at all
gets none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from master.dispatcher import Outcome, Task
from master.metrics import FIRST_CHUNK

logger = logging.getLogger(__name__)
CHUNK_EVENT = "ai-response-chunk"

Emit = Callable[[str, dict[str, Any], str], Awaitable[None]]


@dataclass
class _Stream:
    owner: str
    created: float
    seq: int = 0  # of the last chunk emitted
    sent: list[str] = field(default_factory=list)  # what the page has been sent
    buffer: list[str] = field(default_factory=list)
    buffered: int = 0  # bytes in buffer
    last_emit: float = 0.0  # monotonic
    timer: asyncio.TimerHandle | None = None
    reset: bool = False  # the next emit tells the page to drop what it has (the task started over)


class ChunkRelay:
    """Coalesces each running task's chunks and emits them to its owner's room; a dispatcher Journal."""

    def __init__(self, emit: Emit, interval_s: float = 0.05, max_bytes: int = 1024) -> None:
        self._emit = emit
        self.interval_s = interval_s
        self.max_bytes = max_bytes
        self._streams: dict[str, _Stream] = {}
        self._emits: set[asyncio.Task[None]] = set()

    # -- chunks in (the dispatcher's on_chunk, on the event loop) ----------------------------------
    def add(self, task: Task, text: str) -> None:
        stream = self._streams.get(task.task_id)
        if stream is None:
            stream = self._streams[task.task_id] = _Stream(task.owner, task.created)
        stream.buffer.append(text)
        stream.buffered += len(text.encode())
        now = time.monotonic()
        if stream.buffered >= self.max_bytes or now - stream.last_emit >= self.interval_s:
            self._flush(task.task_id)
        elif stream.timer is None:
            delay = stream.last_emit + self.interval_s - now
            stream.timer = asyncio.get_running_loop().call_later(delay, self._flush, task.task_id)

    def _flush(self, task_id: str) -> None:
        stream = self._streams.get(task_id)
        if stream is None:
            return
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        text = "".join(stream.buffer)
        stream.buffer.clear()
        stream.buffered = 0
        if not text:
            return
        stream.seq += 1
        stream.sent.append(text)
        stream.last_emit = time.monotonic()
        if stream.seq == 1:
            FIRST_CHUNK.observe(max(0.0, time.time() - stream.created))
        payload: dict[str, Any] = {"task_id": task_id, "seq": stream.seq, "text": text}
        if stream.reset:
            payload["reset"] = True
            stream.reset = False
        emit = asyncio.get_running_loop().create_task(self._emit(CHUNK_EVENT, payload, stream.owner))
        self._emits.add(emit)
        emit.add_done_callback(self._emits.discard)

    # -- for a page that (re)connects --------------------------------------------------------------
    def sent(self, task_id: str) -> tuple[int, str]:
        """(seq, text) of what was sent of a running answer so far; later chunks have a higher seq."""
        stream = self._streams.get(task_id)
        return (stream.seq, "".join(stream.sent)) if stream is not None else (0, "")

    # -- the task's life (Journal) -----------------------------------------------------------------
    def accepted(self, task: Task) -> None: ...

    def assigned(self, task: Task) -> None: ...

    def requeued(self, task: Task) -> None:
        """Another worker starts the answer again: the page drops what it has at the next chunk."""
        stream = self._streams.get(task.task_id)
        if stream is not None:
            if stream.timer is not None:
                stream.timer.cancel()
                stream.timer = None
            stream.sent.clear()
            stream.buffer.clear()
            stream.buffered = 0
            stream.reset = True

    def finished(self, task: Task, outcome: Outcome) -> None:
        """Answered: what is still buffered goes out now (before the `ai-response`), so the chunks make the
        whole answer; then the task is forgotten."""
        stream = self._streams.get(task.task_id)
        if stream is not None and outcome.answer is not None:
            received = "".join(stream.sent) + "".join(stream.buffer)
            if outcome.answer.startswith(received):
                stream.buffer.append(outcome.answer[len(received):])
            else:  # the chunks do not lead to this answer (cannot happen with one worker): start over
                stream.sent.clear()
                stream.buffer[:] = [outcome.answer]
                stream.reset = True
            self._flush(task.task_id)
        self._forget(task.task_id)

    def dropped(self, task: Task) -> None:
        self._forget(task.task_id)

    def _forget(self, task_id: str) -> None:
        stream = self._streams.pop(task_id, None)
        if stream is not None and stream.timer is not None:
            stream.timer.cancel()
