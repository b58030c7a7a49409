"""Which workers exist, what they can do, and how many tasks each has from us."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.messages import StatusMessage


@dataclass
class WorkerInfo:
    worker_id: str
    state: str = "offline"
    capacity: int = 0
    models: tuple[str, ...] = ()
    version: str = ""
    last_seen: float = 0.0
    # Task ids the master has handed to this worker and not yet seen answered.
    assigned: set[str] = field(default_factory=set)
    # No new task before this (monotonic): its tasks timed out, it may be broken or lying.
    backoff_until: float = 0.0
    # Results of this worker the master accepted (for the admin page).
    done: int = 0

    @property
    def free_slots(self) -> int:
        """Counted by the master (what it assigned), not by the worker's possibly stale report."""
        # unknown: named by a task restored from the store, not heard from since the restart.
        if self.state in ("offline", "draining", "unknown") or time.monotonic() < self.backoff_until:
            return 0
        return max(0, self.capacity - len(self.assigned))

    def offers(self, model: str) -> bool:
        return not model or model in self.models


class WorkerRegistry:
    def __init__(self, worker_timeout_s: float, max_capacity: int = 64) -> None:
        self.worker_timeout_s = worker_timeout_s
        # A worker's claimed capacity is believed up to this: a stolen worker credential cannot
        # claim 1,024 slots and draw every task to itself.
        self.max_capacity = max_capacity
        self.workers: dict[str, WorkerInfo] = {}

    def update(self, worker_id: str, status: StatusMessage, now: float | None = None) -> WorkerInfo:
        info = self.workers.setdefault(worker_id, WorkerInfo(worker_id))
        info.state = status.state
        info.capacity = min(status.capacity, self.max_capacity)
        info.models = status.models
        info.version = status.version
        info.last_seen = time.monotonic() if now is None else now
        return info

    def expired(self, now: float | None = None) -> list[WorkerInfo]:
        """Workers not heard from within the timeout that are not yet marked offline; marks them."""
        now = time.monotonic() if now is None else now
        out = []
        for info in self.workers.values():
            if info.state != "offline" and now - info.last_seen > self.worker_timeout_s:
                info.state = "offline"
                out.append(info)
        return out

    def pick(self, model: str) -> WorkerInfo | None:
        """The worker with the most free slots that offers `model` (ties: the first registered)."""
        best: WorkerInfo | None = None
        for info in self.workers.values():
            if info.free_slots > 0 and info.offers(model) and (best is None or info.free_slots > best.free_slots):
                best = info
        return best

    def back_off(self, worker_id: str, seconds: float) -> None:
        """Give `worker_id` no new task for `seconds`."""
        info = self.workers.get(worker_id)
        if info is not None:
            info.backoff_until = time.monotonic() + seconds

    def live_models(self) -> set[str]:
        """Every model some live worker serves."""
        return {m for w in self.workers.values() if w.state != "offline" for m in w.models}

    def live_count(self) -> int:
        """Workers heard from live (not offline, and not only known from a retained status or a restored task)."""
        return sum(w.state not in ("offline", "unknown") for w in self.workers.values())

    def total_free_slots(self) -> int:
        return sum(w.free_slots for w in self.workers.values())

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {"worker_id": w.worker_id, "state": w.state, "capacity": w.capacity, "free_slots": w.free_slots,
             "models": list(w.models), "version": w.version, "backed_off": time.monotonic() < w.backoff_until}
            for w in sorted(self.workers.values(), key=lambda w: w.worker_id)
        ]
