"""Login, logout and "who am I": the routes that create and end sessions, with CSRF and Origin checks."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, Response, jsonify, redirect, render_template, request

from master.auth import Auth, LoginRefused
from master.sessions import COOKIE_FLAGS, COOKIE_NAME, CSRF_COOKIE_NAME, ActiveSession, same_secret

logger = logging.getLogger(__name__)
MAX_FORM_BYTES = 4096
NOT_LOGGED_IN = ({"error": {"code": "not_logged_in", "message": "You are not logged in."}}, 401)


async def current_session(auth: Auth) -> ActiveSession | None:
    """The logged-in session of this request, or None."""
    return await auth.session_for(request.cookies.get(COOKIE_NAME))


def register_login_routes(app: Quart, auth: Auth, origins: tuple[str, ...], session_max_s: float,
                          on_logout: Callable[[ActiveSession], Awaitable[None]]) -> None:
    """`/login` (GET form, POST), `/logout` (POST) and `/session` (GET, JSON) on `app`."""

    def origin_allowed() -> bool:
        origin = request.headers.get("Origin")
        return origin is None or origin.rstrip("/") in origins

    async def login_page(status: int = 200, error: str = "", name: str = "") -> Response:
        csrf = secrets.token_urlsafe(32)
        body = await render_template("login.html", csrf=csrf, error=error, name=name)
        response = Response(body, status=status, content_type="text/html; charset=utf-8")
        response.set_cookie(CSRF_COOKIE_NAME, csrf, **COOKIE_FLAGS)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/login")
    async def login_form() -> Any:
        if await current_session(auth) is not None:
            return redirect("/", 303)
        return await login_page()

    @app.post("/login")
    async def login() -> Any:
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return await login_page(413, "The form is too large.")
        form = await request.form
        if not origin_allowed() or not same_secret(form.get("csrf"), request.cookies.get(CSRF_COOKIE_NAME)):
            return Response("Forbidden: the form's CSRF token is missing or wrong. Reload the login page.\n",
                            status=403, content_type="text/plain; charset=utf-8")
        name, password = form.get("name", ""), form.get("password", "")
        if not name or not password:
            return await login_page(400, "Enter a user name and a password.", name[:64])
        try:
            logged_in = await auth.login(name, password, request.remote_addr or "unknown")
        except LoginRefused as refused:
            response = await login_page(refused.status, refused.message, name[:64])
            if refused.retry_after_s:
                response.headers["Retry-After"] = str(int(refused.retry_after_s) + 1)
            return response
        response = redirect("/", 303)
        response.set_cookie(COOKIE_NAME, logged_in.cookie_value, max_age=int(session_max_s),
                            **COOKIE_FLAGS)  # type: ignore[arg-type]
        response.delete_cookie(CSRF_COOKIE_NAME, **COOKIE_FLAGS)  # type: ignore[arg-type]
        return response

    @app.post("/logout")
    async def logout() -> Any:
        session = await current_session(auth)
        if session is None:
            return NOT_LOGGED_IN
        if not origin_allowed() or not same_secret(request.headers.get("X-CSRF-Token"), auth.signer.csrf_for(session.token_hash)):
            return jsonify({"error": {"code": "csrf", "message": "The CSRF token is missing or wrong. Reload the page."}}), 403
        await auth.logout(session)
        await on_logout(session)
        response = Response(status=204)
        response.delete_cookie(COOKIE_NAME, **COOKIE_FLAGS)  # type: ignore[arg-type]
        return response

    @app.get("/session")
    async def whoami() -> Any:
        session = await current_session(auth)
        if session is None:
            return NOT_LOGGED_IN
        response = jsonify({"user": session.user.name, "role": session.user.role,
                            "csrf": auth.signer.csrf_for(session.token_hash)})
        response.headers["Cache-Control"] = "no-store"
        return response
