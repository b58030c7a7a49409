"""The live admin page's data: workers, queue, answers per second and latency percentiles, pushed every 2 s
over Socket.IO to the connections of admins (room "admins")."""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
from typing import Any

import socketio

from master.dispatcher import Dispatcher, Outcome, Task

ADMIN_ROOM = "admins"
WINDOW_S = 300.0
MAX_SAMPLES = 50_000


class RecentAnswers:
    """Outcomes of the last 5 minutes (a Journal: told of every finished task)."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_SAMPLES)

    def accepted(self, task: Task) -> None: ...
    def assigned(self, task: Task) -> None: ...
    def requeued(self, task: Task) -> None: ...
    def dropped(self, task: Task) -> None: ...

    def finished(self, task: Task, outcome: Outcome) -> None:
        now = time.time()
        self._samples.append((now, now - task.created))

    def summary(self, now: float | None = None, rate_window_s: float = 10.0) -> dict[str, float | None]:
        """Answers per second over the last `rate_window_s`, and p50/p95/p99 (seconds) over the last 5 minutes."""
        now = time.time() if now is None else now
        while self._samples and self._samples[0][0] < now - WINDOW_S:
            self._samples.popleft()
        latencies = sorted(lat for _, lat in self._samples)
        recent = len(self._samples) - bisect.bisect_left([t for t, _ in self._samples], now - rate_window_s)

        def pct(p: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None

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
