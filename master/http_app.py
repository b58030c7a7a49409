"""The HTTP routes of the chat: the page, its static files and `/healthz` (Quart)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Quart, jsonify

from master.static_files import StaticFiles


def create_http_app(static: StaticFiles, health: Callable[[], tuple[dict[str, Any], int]], secret_key: str) -> Quart:
    """The Quart app; `secret_key` signs its session cookies."""
    app = Quart(__name__, static_folder=None)
    app.secret_key = secret_key

    @app.get("/")
    async def index() -> Any:
        return static.response("index.html")

    @app.get("/static/<path:name>")
    async def static_file(name: str) -> Any:
        return static.response(name)

    @app.get("/healthz")
    async def healthz() -> Any:
        body, status = health()
        return jsonify(body), status

    return app
