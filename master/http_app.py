"""The HTTP routes of the chat: the page (for logged-in users), its static files, login and `/healthz` (Quart)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, Response, jsonify, redirect

from master.auth import Auth
from master.health import HealthCheck
from master.login_routes import MAX_FORM_BYTES, current_session, register_login_routes
from master.sessions import ActiveSession
from master.static_files import StaticFiles


def create_http_app(static: StaticFiles, health: HealthCheck, auth: Auth,
                    origins: tuple[str, ...], session_max_s: float,
                    on_logout: Callable[[ActiveSession], Awaitable[None]]) -> Quart:
    """The page, static files, health and login routes; the REST API is added by master/api.py."""
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES  # no route takes a larger body

    @app.get("/")
    async def index() -> Any:
        if await current_session(auth) is None:
            return redirect("/login", 303)
        response = static.response("index.html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/admin")
    async def admin() -> Any:
        session = await current_session(auth)
        if session is None:
            return redirect("/login", 303)
        if not session.user.is_admin:
            return Response("Forbidden: the admin page needs the admin role.\n", status=403,
                            content_type="text/plain; charset=utf-8")
        response = static.response("admin.html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/tokens")
    async def tokens() -> Any:
        """The user's personal API tokens: list, make, revoke (the page calls /api/v1/tokens)."""
        if await current_session(auth) is None:
            return redirect("/login", 303)
        response = static.response("tokens.html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/docs")
    async def api_docs() -> Any:
        return static.response("api-docs.html")

    @app.get("/static/<path:name>")
    async def static_file(name: str) -> Any:
        return static.response(name)

    @app.get("/healthz")
    async def healthz() -> Any:
        body, status = health.report()
        return jsonify(body), status

    @app.get("/readyz")
    async def readyz() -> Any:
        body, status = await health.readiness()
        return jsonify(body), status

    register_login_routes(app, auth, origins, session_max_s, on_logout)
    return app
