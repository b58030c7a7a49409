"""The models live workers serve, for the chat page's model picker: asked for (`ai-models`, acknowledged) and
pushed to every chat connection (`models`) when the set changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import socketio

from master.registry import WorkerRegistry

logger = logging.getLogger(__name__)


def served_models(registry: WorkerRegistry, default_model: str) -> dict[str, Any]:
    """`{"models": [...sorted], "default": ...}`: exactly the models a question may name now (the intake's check)."""
    return {"models": sorted(registry.live_models()), "default": default_model}


class ModelFeed:
    """Registers `ai-models` on `sio`; `run()` pushes `models` to every connection when the set changes."""

    def __init__(self, sio: socketio.AsyncServer, registry: WorkerRegistry, default_model: str,
                 logged_in: Callable[[str], bool], interval_s: float = 1.0) -> None:
        self.sio = sio
        self.registry = registry
        self.default_model = default_model
        self.logged_in = logged_in
        self.interval_s = interval_s
        self._last = self.current()
        sio.on("ai-models", self.on_models)

    def current(self) -> dict[str, Any]:
        return served_models(self.registry, self.default_model)

    async def on_models(self, sid: str, *args: Any) -> dict[str, Any]:
        """`ai-models` (no argument needed): the models served now."""
        if not self.logged_in(sid):
            return {"error": {"code": "not_logged_in", "message": "Log in again."}}
        return self.current()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.push_if_changed()

    async def push_if_changed(self) -> bool:
        now = self.current()
        if now == self._last:
            return False
        self._last = now
        logger.info("models served now: %s", ", ".join(now["models"]) or "none")
        await self.sio.emit("models", now)  # every chat connection (only logged-in ones can connect)
        return True
