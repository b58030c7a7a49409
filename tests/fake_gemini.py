"""A local fake of the Gemini REST API (generateContent and streamGenerateContent), for the real google-genai SDK.

It records every request's path and API key header, and answers from a script: each entry is
(HTTP status, JSON body); when the script is empty it answers with a success that names the prompt.
`:streamGenerateContent?alt=sse` answers a success as server-sent events: `stream_pieces` (default: the
words of the success text) one per `piece_delay_s`; each stream is recorded with when the client closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import string
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_http import in_thread, serve_app


def fake_key() -> str:
    """A key of Gemini's shape (AIza + 35 characters), random per test."""
    alphabet = string.ascii_letters + string.digits + "_-"
    return "AIza" + "".join(secrets.choice(alphabet) for _ in range(35))


def success_body(text: str, model: str = "gemini-2.5-flash") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8},
        "modelVersion": model,
    }


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


def invalid_key_body(echo_key: str = "") -> dict[str, Any]:
    """Gemini's answer to a bad key; with `echo_key` the message repeats it (the worst case for leaks)."""
    message = "API key not valid. Please pass a valid API key." + (f" Key: {echo_key}" if echo_key else "")
    return error_body(
        400, "INVALID_ARGUMENT", message,
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
          "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}],
    )


def rate_limited_body(retry_delay: str = "0.2s") -> dict[str, Any]:
    return error_body(
        429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}],
    )


@dataclass
class Recorded:
    path: str
    api_key: str | None
    prompt: str


@dataclass
class StreamRecord:
    """One streamed answer: when it opened, how many pieces went out, when it ended and how."""

    opened: float = field(default_factory=time.monotonic)
    pieces_sent: int = 0
    ended: float | None = None
    closed_by_client: bool = False


@dataclass
class FakeGemini:
    url: str = ""
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    stream_pieces: list[str] | None = None
    piece_delay_s: float = 0.0
    streams: list[StreamRecord] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
        self.requests.append(Recorded(request.path, request.headers.get("x-goog-api-key"), prompt))
        if self.script:
            status, payload = self.script.pop(0)
        else:
            status, payload = 200, success_body(f"Gemini says: {prompt}")
        if status == 200 and request.path.endswith(":streamGenerateContent"):
            return await self._stream(request, prompt)
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json")

    async def _stream(self, request: web.Request, prompt: str) -> web.StreamResponse:
        pieces = self.stream_pieces if self.stream_pieces is not None else re.findall(r"\S+\s*", f"Gemini says: {prompt}")
        record = StreamRecord()
        self.streams.append(record)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for piece in pieces:
                if not await self._wait_open(request, self.piece_delay_s):
                    record.closed_by_client = True
                    return response
                await response.write(f"data: {json.dumps(success_body(piece))}\r\n\r\n".encode())
                record.pieces_sent += 1
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            record.closed_by_client = True
            raise
        finally:
            record.ended = time.monotonic()
        return response

    @staticmethod
    async def _wait_open(request: web.Request, seconds: float) -> bool:
        """Sleep `seconds` in small steps; False as soon as the client has closed the connection."""
        deadline = time.monotonic() + seconds
        while True:
            if request.transport is None or request.transport.is_closing():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(0.01, left))


@contextlib.asynccontextmanager
async def run_fake_gemini() -> AsyncIterator[FakeGemini]:
    """Serve the fake on 127.0.0.1 and a free port; yields it with its base URL."""
    fake = FakeGemini()
    app = web.Application()
    app.router.add_post("/{version}/models/{model_and_method}", fake.handle)
    async with serve_app(app) as port:
        fake.url = f"http://127.0.0.1:{port}"
        yield fake


@contextlib.contextmanager
def fake_gemini_in_thread() -> Iterator[FakeGemini]:
    """The same fake on its own event loop in a thread, for tests that block (process-level stacks)."""
    with in_thread(run_fake_gemini, "fake-gemini") as fake:
        yield fake
