"""Log in to a running master as a browser does, for the tests and the benchmark (needs aiohttp)."""

from __future__ import annotations

import ssl

import aiohttp

from master.sessions import COOKIE_NAME, CSRF_COOKIE_NAME


class LoginFailed(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"login refused with HTTP {status}: {body[:200]}")
        self.status = status
        self.body = body


async def login_cookie(url: str, ssl_context: ssl.SSLContext, name: str, password: str) -> str:
    """GET the form (for its CSRF cookie), POST it from our origin; the session cookie's value, or LoginFailed."""
    connector = aiohttp.TCPConnector(ssl=ssl_context)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(url + "/login") as resp:
            csrf = resp.cookies[CSRF_COOKIE_NAME].value
        form = {"name": name, "password": password, "csrf": csrf}
        headers = {"Cookie": f"{CSRF_COOKIE_NAME}={csrf}", "Origin": url}
        async with http.post(url + "/login", data=form, headers=headers, allow_redirects=False) as resp:
            if resp.status != 303 or COOKIE_NAME not in resp.cookies:
                raise LoginFailed(resp.status, await resp.text())
            return resp.cookies[COOKIE_NAME].value


def cookie_header(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={cookie}"}
