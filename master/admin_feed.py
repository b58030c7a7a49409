"""The live admin page's data: workers, queue, answers per second and latency percentiles, pushed every 2 s
over Socket.IO to the connections of admins (room "admins")."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from typing import Any

import socketio

from master.dispatcher import Dispatcher, Outcome, Task

ADMIN_ROOM = "admins"
WINDOW_S = 300
BUCKETS_PER_DOUBLING = 16  # bucket edges 2**(1/16) = 4.4 % apart: a percentile is within 2.2 % of the true value
SMALLEST_LATENCY_S = 1e-6


def latency_bucket(latency_s: float) -> int:
    return math.floor(math.log2(max(latency_s, SMALLEST_LATENCY_S)) * BUCKETS_PER_DOUBLING)


def bucket_value(bucket: int) -> float:
    """The geometric middle of `bucket`, in seconds."""
    return 2.0 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING)


class RecentAnswers:
    """Outcomes of the last 5 minutes (a Journal: told of every finished task), in memory that does not grow with
    the answer rate: per second, a count per latency bucket, at most `WINDOW_S` + 1 seconds kept."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seconds: collections.deque[tuple[int, collections.Counter[int]]] = collections.deque()

    def accepted(self, task: Task) -> None: ...
    def assigned(self, task: Task) -> None: ...
    def requeued(self, task: Task) -> None: ...
    def dropped(self, task: Task) -> None: ...

    def finished(self, task: Task, outcome: Outcome) -> None:
        now = self._clock()
        second = int(now)
        if not self._seconds or self._seconds[-1][0] != second:
            self._forget_before(now)
            self._seconds.append((second, collections.Counter()))
        self._seconds[-1][1][latency_bucket(now - task.created)] += 1

    def _forget_before(self, now: float) -> None:
        while self._seconds and (self._seconds[0][0] < now - WINDOW_S - 1 or len(self._seconds) > WINDOW_S):
            self._seconds.popleft()

    def summary(self, now: float | None = None, rate_window_s: float = 10.0) -> dict[str, float | None]:
        """Answers per second over the last `rate_window_s` (to the second), and p50/p95/p99 (seconds, within
        2.2 %) over the last 5 minutes."""
        now = self._clock() if now is None else now
        self._forget_before(now)
        counts: collections.Counter[int] = collections.Counter()
        recent = 0
        for second, buckets in self._seconds:
            if second >= now - WINDOW_S:
                counts.update(buckets)
            if second >= now - rate_window_s:
                recent += buckets.total()
        ordered = sorted(counts.items())
        total = sum(counts.values())

        def pct(p: float) -> float | None:
            if not total:
                return None
            rank, seen = min(total - 1, int(p / 100 * total)), 0
            for bucket, count in ordered:
                seen += count
                if seen > rank:
                    return bucket_value(bucket)
            return None  # not reached: `rank` < `total`

        return {"answers_per_s": recent / rate_window_s, "p50_s": pct(50), "p95_s": pct(95), "p99_s": pct(99)}


class AdminFeed:
    def __init__(self, sio: socketio.AsyncServer, dispatcher: Dispatcher, recent: RecentAnswers,
                 admins_connected: Any, interval_s: float = 2.0) -> None:
        self.sio = sio
        self.dispatcher = dispatcher
        self.recent = recent
        self.admins_connected = admins_connected
        self.interval_s = interval_s

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        workers = []
        for w in self.dispatcher.registry.snapshot():
            info = self.dispatcher.registry.workers[str(w["worker_id"])]
            workers.append({**w, "last_seen_s_ago": round(now - info.last_seen, 1) if info.last_seen else None,
                            "done": info.done})
        return {"at": time.time(), "queued": self.dispatcher.queued, "open_tasks": len(self.dispatcher.tasks),
                "workers": workers, **self.recent.summary()}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.admins_connected():
                await self.sio.emit("admin-stats", self.snapshot(), room=ADMIN_ROOM)
