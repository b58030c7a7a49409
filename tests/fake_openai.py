"""A local fake of an OpenAI-compatible chat completions server (POST /v1/chat/completions).

It records every request (path, Authorization header, model, prompt, stream flag, time) and answers
from a script of `Reply` entries; when the script is empty it answers "OpenAI says: <prompt>", as one
JSON body or, for `stream: true`, as server-sent events in several pieces ending with `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_http import in_thread, serve_app


def fake_openai_key() -> str:
    """A key of OpenAI's shape (sk-proj- + 48 characters), random per test."""
    alphabet = string.ascii_letters + string.digits
    return "sk-proj-" + "".join(secrets.choice(alphabet) for _ in range(48))


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass
class Reply:
    """One scripted answer: an HTTP status, a JSON body for errors, extra headers, or the answer's pieces."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pieces: list[str] | None = None
    delay_s: float = 0.0  # between streamed pieces


@dataclass
class Recorded:
    path: str
    authorization: str | None
    model: str
    prompt: str
    stream: bool
    at: float


def completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + secrets.token_hex(8), "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }


def chunk(text: str | None, model: str, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": text} if text is not None else {}
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def split_words(text: str) -> list[str]:
    """`text` in pieces of a word (with its following space) each."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


@dataclass
class FakeOpenAI:
    url: str = ""  # the base URL, ending in /v1 (what OPENAI_BASE_URL takes)
    script: list[Reply] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    # Streams the client closed before the end (a write to them failed).
    closed_early: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        model, stream = str(body.get("model", "")), bool(body.get("stream"))
        self.requests.append(Recorded(request.path, request.headers.get("Authorization"), model, prompt, stream,
                                      time.monotonic()))
        reply = self.script.pop(0) if self.script else Reply()
        if reply.status != 200:
            return web.Response(status=reply.status, text=json.dumps(reply.body or error_body("failed")),
                                content_type="application/json", headers=reply.headers)
        pieces = reply.pieces if reply.pieces is not None else split_words(f"OpenAI says: {prompt}")
        if not stream:
            return web.json_response(completion("".join(pieces), model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        first = chunk(None, model)
        first["choices"][0]["delta"] = {"role": "assistant"}  # as OpenAI starts: the role, no text
        await response.write(f"data: {json.dumps(first)}\n\n".encode())
        try:
            for piece in pieces:
                await response.write(f"data: {json.dumps(chunk(piece, model))}\n\n".encode())
                await asyncio.sleep(reply.delay_s)
        except ConnectionError:
            self.closed_early += 1
            return response
        await response.write(f"data: {json.dumps(chunk(None, model, 'stop'))}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def run_fake_openai() -> AsyncIterator[FakeOpenAI]:
    """Serve the fake on 127.0.0.1 and a free port; yields it with its base URL."""
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    async with serve_app(app) as port:
        fake.url = f"http://127.0.0.1:{port}/v1"
        yield fake


@contextlib.contextmanager
def fake_openai_in_thread() -> Iterator[FakeOpenAI]:
    """The same fake on its own event loop in a thread, for tests that block (process-level stacks)."""
    with in_thread(run_fake_openai, "fake-openai") as fake:
        yield fake
