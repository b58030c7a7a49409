"""The Socket.IO side of the chat: the server and its events (`connect`, `disconnect`, `ai-query`).

A connection needs a logged-in session; it joins its user's room, so every tab of that user gets
every answer of that user, and no one else does.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio
from werkzeug.http import parse_cookie

from master.admin_feed import ADMIN_ROOM
from master.auth import Auth
from master.bad_input_log import BadInputLog
from master.dispatcher import owner_of
from master.intake import Intake, Refused
from master.sessions import COOKIE_NAME, ActiveSession
from master.settings import MasterSettings
from master.store import Database
from master.task_journal import finished_since

if TYPE_CHECKING:
    from master.conversation_events import ConversationEvents

logger = logging.getLogger(__name__)
SYNC_LIMIT = 200


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


@dataclass(frozen=True)
class Connection:
    session: ActiveSession

    @property
    def owner(self) -> str:
        return owner_of(self.session.user.id)


class ChatEvents:
    """Registers the chat's event handlers on `sio`; questions go through `intake`."""

    def __init__(self, sio: socketio.AsyncServer, intake: Intake, settings: MasterSettings, auth: Auth,
                 db: Database) -> None:
        self.sio = sio
        self.intake = intake
        self.settings = settings
        self.auth = auth
        self.db = db
        self.connections: dict[str, Connection] = {}
        # Session hash -> last use, written to the store by the session watch.
        self.touched: dict[str, float] = {}
        self.bad_input = BadInputLog()
        # Set by ConversationEvents (master/conversation_events.py): ai-query's optional conversation_id.
        self.conversations: ConversationEvents | None = None
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("ai-query", self.on_query)
        sio.on("ai-sync", self.on_sync)
        sio.on("*", self.on_unknown_event)

    async def on_connect(self, sid: str, environ: Any = None, auth: Any = None, *extra: Any) -> None:
        if sid in self.connections:  # a client emitted an event named "connect": reserved, ignored
            self.bad_input.report(sid, "an event named 'connect' (reserved) was ignored")
            return
        if not isinstance(environ, dict):
            raise socketio.exceptions.ConnectionRefusedError("login required")
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(COOKIE_NAME)
        session = await self.auth.session_for(cookie)
        if session is None:
            raise socketio.exceptions.ConnectionRefusedError("login required")
        connection = Connection(session)
        self.connections[sid] = connection
        await self.sio.enter_room(sid, connection.owner)
        if session.user.is_admin:
            await self.sio.enter_room(sid, ADMIN_ROOM)  # the admin page's live feed
        logger.info("session %s connected (user %s)", sid, session.user.id)
        # The page checks a question's length before sending it (a question far over the
        # limit would otherwise exceed the message size and drop the connection).
        await self.sio.emit("limits", {"max_prompt_chars": self.settings.max_prompt_chars}, to=sid)

    async def on_disconnect(self, sid: str, *args: Any) -> None:
        if self.sio.manager.is_connected(sid, "/"):
            # A real disconnect is announced after the connection is marked as leaving; a client that
            # emits an event named "disconnect" is still connected: reserved, ignored.
            self.bad_input.report(sid, "an event named 'disconnect' (reserved) was ignored")
            return
        self.bad_input.forget(sid)
        if self.connections.pop(sid, None) is not None:
            # The user's tasks go on: their answers are stored, and the page fetches them ("ai-sync")
            # when it connects again.
            logger.info("session %s disconnected", sid)

    async def on_unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        self.bad_input.report(sid, f"unknown event {str(event)[:40]!r}")
        return _error("unknown_event", "This server knows the events ai-query, ai-sync, ai-stop, ai-partial, ai-models, "
                                       "ai-conversations, ai-conversation, ai-conversation-delete and ai-delete-my-data only.")

    async def on_sync(self, sid: str, *args: Any) -> dict[str, Any]:
        """`ai-sync {since}`: the user's answers and errors finished after `since` (Unix time), oldest first,
        at most SYNC_LIMIT; the page asks after every (re)connect with the time of the last one it has."""
        connection = self.connections.get(sid)
        if connection is None:
            return _error("not_logged_in", "Log in again.")
        since = args[0].get("since") if len(args) == 1 and isinstance(args[0], dict) else None
        if isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since):
            self.bad_input.report(sid, "ai-sync without a numeric since")
            return _error("bad_request", "Send {\"since\": <Unix time of the last answer you have>}.")
        events = await self.db.run(finished_since, connection.session.user.id, float(since), SYNC_LIMIT)
        return {"events": events}

    async def on_query(self, sid: str, *args: Any) -> dict[str, Any]:
        connection = self.connections.get(sid)
        if connection is None:
            return _error("not_logged_in", "Log in again.")
        if len(args) != 1:
            self.bad_input.report(sid, f"ai-query with {len(args)} arguments")
            return _error("bad_request", "Send one argument: the question as text or {\"text\": ..., \"model\": ...}.")
        self.touched[connection.session.token_hash] = time.time()
        try:
            chosen = None if self.conversations is None else await self.conversations.choose(
                connection.session.user.id, args[0])
            task = await self.intake.take(connection.session.user, args[0],
                                          None if chosen is None else chosen.conversation_id)
        except Refused as refused:
            if refused.code in ("bad_request", "prompt_too_long", "unknown_model", "not_found"):
                self.bad_input.report(sid, f"question refused: {refused.code}")
            return refused.as_error()
        if chosen is None or self.conversations is None:
            await self.intake.stored()
            return {"task_id": task.task_id}
        self.conversations.accepted(chosen, task)  # no await since take: written in the same flush as the task
        await self.intake.stored()
        return {"task_id": task.task_id, "conversation_id": chosen.conversation_id}

    def admins_connected(self) -> bool:
        return any(c.session.user.is_admin for c in self.connections.values())

    async def drop_sessions(self, ended: set[str]) -> None:
        """Disconnect every connection whose session ended (logout, password change, disable, expiry)."""
        for sid, connection in list(self.connections.items()):
            if connection.session.token_hash in ended:
                logger.info("session %s: its login session ended; disconnecting", sid)
                await self.sio.disconnect(sid)
        for token_hash in ended:
            self.touched.pop(token_hash, None)

    async def on_logout(self, session: ActiveSession) -> None:
        await self.drop_sessions({session.token_hash})


def _error(code: str, message: str, retry_after_s: float | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if retry_after_s is not None:
        error["retry_after_s"] = round(retry_after_s, 1)
    return {"error": error}
