"""ASGI gate in front of Socket.IO: a new Engine.IO connection needs a logged-in session cookie.

Without it, the handshake is refused before Engine.IO allocates anything: 401 for HTTP
long-polling, and the WebSocket is closed before it is accepted (servers answer that with 403).
The chat's `connect` handler checks the session again and ties the connection to its user.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from werkzeug.http import parse_cookie

from master.sessions import COOKIE_NAME, ActiveSession

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]
SOCKETIO_PATH = "/socket.io/"
REFUSAL = {"error": {"code": "not_logged_in", "message": "Log in first."}}


def _cookie(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin-1")).get(COOKIE_NAME)
    return None


class SocketIOGate:
    def __init__(self, app: ASGIApp, session_for: Callable[[str | None], Awaitable[ActiveSession | None]]) -> None:
        self.app = app
        self.session_for = session_for

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("path", "").startswith(SOCKETIO_PATH):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            # Requests of an established Engine.IO session carry its sid; only the handshake is gated.
            if "sid" not in query and await self.session_for(_cookie(scope)) is None:
                await self._refuse(scope, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(REFUSAL).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
