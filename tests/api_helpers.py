"""Calls to the REST API (/api/v1) for tests: a request with a bearer token, a new token, a finished task."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.login_helpers import csrf_of, session_header
from tests.stack_helpers import Stack

API = "/api/v1"


async def call(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
               json: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, json=json, headers=all_headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp


async def new_token(http: aiohttp.ClientSession, stack: Stack, cookie: str, label: str = "script") -> str:
    headers = {**session_header(cookie), "X-CSRF-Token": await csrf_of(http, stack.url, cookie)}
    status, body, _ = await call(http, "POST", stack.url + f"{API}/tokens", json={"label": label}, headers=headers)
    assert status == 201 and body["token"].startswith("aisys_"), body
    return str(body["token"])


async def answered(http: aiohttp.ClientSession, stack: Stack, token: str, task_id: str) -> dict[str, Any]:
    for _ in range(100):
        status, body, _ = await call(http, "GET", stack.url + f"{API}/tasks/{task_id}", token)
        assert status == 200, body
        if body["state"] in ("answered", "failed"):
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise TimeoutError(task_id)
