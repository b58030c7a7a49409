"""Time to first chunk through the browser-facing interface (Socket.IO over HTTPS), under open-loop load.

Each question is sent with `ai-query`; the time to its first `ai-response-chunk` is measured at the client.
The echo model writes its first word `first_token_s` after the worker starts the call, so
`time to first chunk - first_token_s` is what the system adds to the model's own first token (both
ways of the path: question in, chunk out).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.load import percentile
from common.tls import TlsFiles, client_context
from devstack.login_client import cookie_header


@dataclass
class FirstChunkResults:
    first_chunk_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    chunks: int = 0
    errors: int = 0
    elapsed_s: float = 0.0

    def summary(self, first_token_s: float) -> dict[str, Any]:
        over = [ms - first_token_s * 1000 for ms in self.first_chunk_ms]
        return {
            "answers": len(self.answer_ms), "errors": self.errors, "chunks": self.chunks,
            "done_per_s": len(self.answer_ms) / self.elapsed_s if self.elapsed_s else 0.0,
            **{f"first_chunk_p{p}_ms": percentile(self.first_chunk_ms, p) for p in (50, 95, 99)},
            **{f"over_first_token_p{p}_ms": percentile(over, p) for p in (50, 95, 99)},
            **{f"answer_p{p}_ms": percentile(self.answer_ms, p) for p in (50, 99)},
        }


class _Client:
    """One Socket.IO client; records, per task, when it was asked, its first chunk and its answer."""

    def __init__(self, sio: socketio.AsyncClient, results: FirstChunkResults) -> None:
        self.sio = sio
        self.results = results
        self.asked: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self.done: dict[str, asyncio.Future[bool]] = {}
        sio.on("ai-response-chunk", self._on_chunk)
        sio.on("ai-response", lambda d: self._settle(d, True))
        sio.on("ai-error", lambda d: self._settle(d, False))

    def _on_chunk(self, data: dict[str, Any]) -> None:
        self.results.chunks += 1
        self.first.setdefault(data.get("task_id", ""), time.perf_counter())

    def _settle(self, data: dict[str, Any], ok: bool) -> None:
        task_id = data.get("task_id", "")
        fut = self.done.setdefault(task_id, asyncio.get_running_loop().create_future())
        if not fut.done():
            fut.set_result(ok)

    async def ask(self, text: str) -> None:
        start = time.perf_counter()
        ack = await self.sio.call("ai-query", {"text": text}, timeout=30)
        task_id = ack.get("task_id") if isinstance(ack, dict) else None
        if not task_id:
            self.results.errors += 1
            return
        fut = self.done.setdefault(task_id, asyncio.get_running_loop().create_future())
        ok = await asyncio.wait_for(fut, 60)
        end = time.perf_counter()
        first = self.first.pop(task_id, None)
        self.done.pop(task_id, None)
        if not ok or first is None:
            self.results.errors += 1
            return
        self.results.first_chunk_ms.append((first - start) * 1000)
        self.results.answer_ms.append((end - start) * 1000)


async def first_chunk_load(url: str, ca: Path, cookies: list[str], rate_per_s: float, duration_s: float,
                           clients: int) -> FirstChunkResults:
    """Questions at `rate_per_s` (Poisson arrivals) over `clients` connections for `duration_s`."""
    results = FirstChunkResults()
    connector = aiohttp.TCPConnector(ssl=client_context(TlsFiles(ca=ca)), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        conns: list[_Client] = []
        for i in range(clients):
            sio = socketio.AsyncClient(http_session=session, reconnection=False)
            conns.append(_Client(sio, results))
            await sio.connect(url, transports=["websocket"], wait_timeout=30, headers=cookie_header(cookies[i % len(cookies)]))
        try:
            await asyncio.gather(*(c.ask("warm-up") for c in conns[:2]))  # every path once, not measured
            results.first_chunk_ms.clear()
            results.answer_ms.clear()
            results.chunks = 0
            tasks: list[asyncio.Task[None]] = []
            ids = itertools.count()
            cycle = itertools.cycle(conns)
            start = time.perf_counter()
            next_at = start
            while next_at - start < duration_s:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(next(cycle).ask(f"first-chunk-{next(ids)}")))
                next_at += random.expovariate(rate_per_s)
            await asyncio.gather(*tasks)
            results.elapsed_s = time.perf_counter() - start
        finally:
            await asyncio.gather(*(c.sio.disconnect() for c in conns), return_exceptions=True)
    return results
