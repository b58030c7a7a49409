"""HTTP helpers for the login tests: a cookie-less HTTPS session and the login form's CSRF token."""

from __future__ import annotations

import aiohttp

from common.tls import client_context
from master.sessions import COOKIE_NAME, CSRF_COOKIE_NAME
from tests.conftest import Pki


def raw_session(pki: Pki) -> aiohttp.ClientSession:
    """HTTPS trusting our CA, keeping no cookies: every request says exactly which cookies it sends."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(pki.tls())),
                                 cookie_jar=aiohttp.DummyCookieJar())


async def login_form_token(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/login") as resp:
        assert resp.status == 200
        return resp.cookies[CSRF_COOKIE_NAME].value


async def post_login(http: aiohttp.ClientSession, url: str, name: str, password: str,
                     *, csrf: str | None = "fresh", cookie_csrf: str | None = "same",
                     origin: str | None = "own") -> aiohttp.ClientResponse:
    """POST /login as the form does; each of csrf / cookie / origin can be left out or set wrong."""
    token = await login_form_token(http, url) if csrf == "fresh" else csrf
    form = {"name": name, "password": password}
    if token is not None:
        form["csrf"] = token
    headers = {}
    cookie_value = token if cookie_csrf == "same" else cookie_csrf
    if cookie_value is not None:
        headers["Cookie"] = f"{CSRF_COOKIE_NAME}={cookie_value}"
    if origin is not None:
        headers["Origin"] = url if origin == "own" else origin
    resp = await http.post(url + "/login", data=form, headers=headers, allow_redirects=False)
    await resp.read()
    return resp


def session_header(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={cookie}"}


async def csrf_of(http: aiohttp.ClientSession, url: str, cookie: str) -> str:
    async with http.get(url + "/session", headers=session_header(cookie)) as resp:
        assert resp.status == 200
        return str((await resp.json())["csrf"])


async def logout(http: aiohttp.ClientSession, url: str, cookie: str, csrf: str | None) -> int:
    headers = {**session_header(cookie), "Origin": url}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    async with http.post(url + "/logout", headers=headers) as resp:
        return resp.status
