"""The Socket.IO events of answers in progress: `ai-stop` (Stop button) and `ai-partial` (after a reload)."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from master.chat_events import ChatEvents
from master.dispatcher import Dispatcher
from master.streaming import ChunkRelay

logger = logging.getLogger(__name__)


class StreamEvents:
    """`ai-stop {task_id}` stops one of the user's tasks; `ai-partial` lists the user's open tasks with the
    answer sent so far, so a reloaded page shows it and continues with the next chunk."""

    def __init__(self, sio: socketio.AsyncServer, chat: ChatEvents, dispatcher: Dispatcher, relay: ChunkRelay) -> None:
        self.chat = chat
        self.dispatcher = dispatcher
        self.relay = relay
        sio.on("ai-stop", self.on_stop)
        sio.on("ai-partial", self.on_partial)

    async def on_stop(self, sid: str, *args: Any) -> dict[str, Any]:
        connection = self.chat.connections.get(sid)
        if connection is None:
            return _error("not_logged_in", "Log in again.")
        task_id = args[0].get("task_id") if len(args) == 1 and isinstance(args[0], dict) else None
        if not isinstance(task_id, str) or not task_id:
            self.chat.bad_input.report(sid, "ai-stop without a task_id")
            return _error("bad_request", "Send {\"task_id\": <the id from the ai-query acknowledgement>}.")
        task = self.dispatcher.tasks.get(task_id[:64])
        # Another user's task is answered exactly like a missing one.
        if task is None or task.owner != connection.owner:
            return _error("not_found", "No such open task: it may have finished already.")
        running = task.worker_id is not None
        if not self.dispatcher.cancel_task(task.task_id):
            return _error("not_found", "No such open task: it may have finished already.")
        logger.info("task stopped by its owner (%s)", "running" if running else "queued", extra={"task_id": task.task_id})
        return {"task_id": task.task_id, "state": "stopped" if running else "cancelled"}

    async def on_partial(self, sid: str, *args: Any) -> dict[str, Any]:
        connection = self.chat.connections.get(sid)
        if connection is None:
            return _error("not_logged_in", "Log in again.")
        tasks = []
        for task in self.dispatcher.tasks.values():
            if task.owner == connection.owner and not task.abandoned:
                seq, text = self.relay.sent(task.task_id)
                tasks.append({"task_id": task.task_id, "prompt": task.prompt, "seq": seq, "text": text,
                              "created": task.created, "conversation_id": task.conversation_id})
        tasks.sort(key=lambda t: t["created"])
        return {"tasks": tasks}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
