"""Delivery of outcomes to the user who asked (their Socket.IO room), and the periodic summary of what was delivered."""

from __future__ import annotations

import asyncio
import logging
import time

import socketio

from master.dispatcher import Outcome, Task

logger = logging.getLogger(__name__)


class DeliveryStats:
    """Counts and latencies of delivered outcomes, summarised in one INFO line per interval."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.answers = 0
        self.errors = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def record(self, answered: bool, elapsed_ms: float) -> None:
        self.answers += answered
        self.errors += not answered
        self.total_ms += elapsed_ms
        self.max_ms = max(self.max_ms, elapsed_ms)

    def log_and_reset(self, interval_s: float, queued: int, workers: int) -> None:
        n = self.answers + self.errors
        if n:
            logger.info(
                "last %.0f s: %d answers, %d errors, mean %.1f ms, max %.1f ms; %d queued, %d workers",
                interval_s, self.answers, self.errors, self.total_ms / n, self.max_ms, queued, workers,
            )
        self.reset()


class Delivery:
    """Emits `ai-response` / `ai-error` to the owner's room (every tab of that user); called on the event loop."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio
        self.stats = DeliveryStats()
        self._emits: set[asyncio.Task[None]] = set()

    def deliver(self, task: Task, outcome: Outcome) -> None:
        elapsed_ms = (time.time() - task.created) * 1000
        self.stats.record(outcome.answer is not None, elapsed_ms)
        logger.debug(
            "delivered %s after %.1f ms", "answer" if outcome.answer is not None else f"error {outcome.error_code}",
            elapsed_ms, extra={"task_id": task.task_id, "worker_id": outcome.worker_id},
        )
        # finished_at (server time): what the page sends back in "ai-sync" after a reconnect.
        if outcome.answer is not None:
            event, payload = "ai-response", {"task_id": task.task_id, "answer": outcome.answer, "model": outcome.model,
                                             "finished_at": time.time()}
            if outcome.cached:
                payload["cached"] = True  # from the response cache, not written for this question
        else:
            event, payload = "ai-error", {"task_id": task.task_id, "code": outcome.error_code,
                                          "message": outcome.error_message, "finished_at": time.time()}
            if outcome.partial is not None:  # stopped while running: what was written is kept
                payload["partial"] = outcome.partial
        if task.conversation_id is not None:  # the page shows it only in that conversation's log
            payload["conversation_id"] = task.conversation_id
        emit = asyncio.get_running_loop().create_task(self.sio.emit(event, payload, to=task.owner))
        self._emits.add(emit)
        emit.add_done_callback(self._emits.discard)
