"""The Socket.IO side of the chat: the server and its events (`connect`, `disconnect`, `ai-query`)."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from master.dispatcher import Dispatcher, QueueFull
from master.queries import QueryRejected, parse_query
from master.settings import MasterSettings

logger = logging.getLogger(__name__)


def create_socketio(settings: MasterSettings) -> socketio.AsyncServer:
    """The ASGI Socket.IO server, limited to the configured origins and message size."""
    return socketio.AsyncServer(
        async_mode="asgi",
        # python-socketio rejects its own https:// origin behind TLS unless origins are listed.
        cors_allowed_origins=list(settings.public_origins),
        max_http_buffer_size=settings.max_message_bytes,
        logger=False,
        engineio_logger=False,
    )


class ChatEvents:
    """Registers the chat's event handlers on `sio`; questions go to `dispatcher`."""

    def __init__(self, sio: socketio.AsyncServer, dispatcher: Dispatcher, settings: MasterSettings) -> None:
        self.sio = sio
        self.dispatcher = dispatcher
        self.settings = settings
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("ai-query", self.on_query)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        logger.info("session %s connected", sid)
        # The page checks a question's length before sending it (a question far over the
        # limit would otherwise exceed the message size and drop the connection).
        await self.sio.emit("limits", {"max_prompt_chars": self.settings.max_prompt_chars}, to=sid)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        dropped = self.dispatcher.cancel_session(sid)
        logger.info("session %s disconnected; %d unfinished tasks dropped", sid, dropped)

    async def on_query(self, sid: str, data: Any) -> dict[str, Any]:
        return self.handle_query(sid, data)

    def handle_query(self, sid: str, data: Any) -> dict[str, Any]:
        """Validate a query and queue it; the return value is the Socket.IO acknowledgement."""
        try:
            query = parse_query(data, self.settings.max_prompt_chars, self.settings.default_model)
            task = self.dispatcher.submit(sid, query.text, query.model)
        except QueryRejected as exc:
            return _error(exc.code, exc.message)
        except QueueFull:
            return _error("busy", "The service is at capacity. Try again in a minute.")
        logger.debug("queued, %d chars", len(query.text), extra={"task_id": task.task_id, "session": sid})
        if self.settings.log_content:
            logger.debug("content prompt=%r", query.text, extra={"task_id": task.task_id})
        return {"task_id": task.task_id}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
