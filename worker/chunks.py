"""Coalesce a model's answer pieces into chunks: at most one per `interval_s` (the first at once), or at 1 KB.

When the answer is complete, what is still buffered, and any chunk not yet being written, is dropped:
the result that follows carries the whole answer, and the master sends the browser the rest as the last
chunk. So an answer that comes at once (an echo at 0 ms, a cached one) costs no chunk at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Send = Callable[[int, str], Awaitable[object]]


class ChunkCoalescer:
    """`add(text)` per piece; chunks go to `send(seq, text)` in order (seq 1, 2, ...); `close()` at the end."""

    def __init__(self, send: Send, interval_s: float = 0.05, max_bytes: int = 1024) -> None:
        self._send = send
        self.interval_s = interval_s
        self.max_bytes = max_bytes
        self.seq = 0
        self._buffer: list[str] = []
        self._buffered = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None  # the last send; each waits for the one before
        self._closed = False

    def add(self, text: str) -> None:
        if not text or self._closed:
            return
        self._buffer.append(text)
        self._buffered += len(text.encode())
        now = time.monotonic()
        if self._buffered >= self.max_bytes or now - self._last >= self.interval_s:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._last + self.interval_s - now, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._last = time.monotonic()
        self.seq += 1
        self._sending = asyncio.get_running_loop().create_task(self._send_after(self._sending, self.seq, text))

    async def _send_after(self, previous: asyncio.Task[None] | None, seq: int, text: str) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        if not self._closed:
            await self._send(seq, text)

    async def close(self) -> None:
        """The answer is complete (or stopped, or failed): drop the rest and wait for a chunk being written,
        so that the result goes after it."""
        self.discard()
        if self._sending is not None:
            await asyncio.wait([self._sending])

    def discard(self) -> None:
        """Send nothing more: drop the buffer and the chunks not yet being written (one being written is left
        to finish: cancelling a write could break the stream that other tasks share)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buffer.clear()
