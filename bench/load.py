"""Drive the chat over HTTPS with many Socket.IO clients; measure throughput and end-to-end latency."""

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

from common.tls import TlsFiles, client_context
from devstack.login_client import cookie_header, login_cookie

PROMPT_PREFIX = "bench-"


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    done: int = 0
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class LoadClients:
    """M Socket.IO clients sharing one aiohttp session; answers matched to questions by a unique prompt id."""

    def __init__(self, url: str, ca: Path, count: int, cookies: list[str]) -> None:
        self.url = url
        self.ca = ca
        self.count = count
        # Login sessions: client i is logged in as user i % len(cookies) (one user per client when equal).
        self.cookies = cookies
        self.clients: list[socketio.AsyncClient] = []
        self._pending: dict[str, tuple[float, asyncio.Future[bool]]] = {}
        self._ids = itertools.count()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClients:
        connector = aiohttp.TCPConnector(ssl=client_context(TlsFiles(ca=self.ca)), limit=0)
        self._session = aiohttp.ClientSession(connector=connector)
        sem = asyncio.Semaphore(50)  # connect in waves: TLS handshakes are CPU work on both sides

        async def connect_one(i: int) -> socketio.AsyncClient:
            # Offer permessage-deflate as every browser does (aiohttp does not by default), so the
            # connection-scale figure holds for browsers; the master refuses it (master/server.py).
            client = socketio.AsyncClient(http_session=self._session, reconnection=False,
                                          websocket_extra_options={"compress": 15})
            client.on("ai-response", self._on_answer)
            client.on("ai-error", self._on_error)
            async with sem:
                await client.connect(self.url, transports=["websocket"], wait_timeout=30,
                                     headers=cookie_header(self.cookies[i % len(self.cookies)]))
            return client

        self.clients = list(await asyncio.gather(*(connect_one(i) for i in range(self.count))))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _settle(self, prompt_id: str | None, ok: bool) -> None:
        entry = self._pending.pop(prompt_id, None) if prompt_id else None
        if entry and not entry[1].done():
            entry[1].set_result(ok)

    async def _on_answer(self, data: dict[str, Any]) -> None:
        answer = data.get("answer", "")
        start = answer.rfind(PROMPT_PREFIX)
        self._settle(answer[start:] if start >= 0 else None, True)

    async def _on_error(self, data: dict[str, Any]) -> None:
        # Errors carry no prompt: settle the oldest pending question of the stream (rare in benchmarks).
        if self._pending:
            self._settle(next(iter(self._pending)), False)

    async def ask(self, client: socketio.AsyncClient) -> tuple[bool, float]:
        """Send one question; returns (answered, milliseconds from send to answer)."""
        prompt_id = f"{PROMPT_PREFIX}{next(self._ids)}"
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        self._pending[prompt_id] = (start, fut)
        await client.emit("ai-query", {"text": prompt_id})
        ok = await asyncio.wait_for(fut, timeout=60)
        return ok, (time.perf_counter() - start) * 1000

    async def closed_loop(self, in_flight_per_client: int, duration_s: float, warmup_s: float = 1.0) -> Results:
        """Every client keeps `in_flight_per_client` questions open; counts answers after the warm-up."""
        results = Results()
        stop_at = time.perf_counter() + warmup_s + duration_s
        measure_from = time.perf_counter() + warmup_s

        async def lane(client: socketio.AsyncClient) -> None:
            while time.perf_counter() < stop_at:
                ok, ms = await self.ask(client)
                if time.perf_counter() >= measure_from:
                    results.done += ok
                    results.errors += not ok
                    results.latencies_ms.append(ms)

        lanes = [lane(c) for c in self.clients for _ in range(in_flight_per_client)]
        await asyncio.gather(*lanes)
        results.elapsed_s = time.perf_counter() - measure_from
        return results

    async def open_loop(self, rate_per_s: float, duration_s: float) -> Results:
        """Questions at `rate_per_s` (Poisson arrivals) spread over the clients, regardless of answers."""
        results = Results()
        tasks: list[asyncio.Task[None]] = []

        async def one(client: socketio.AsyncClient) -> None:
            ok, ms = await self.ask(client)
            results.done += ok
            results.errors += not ok
            results.latencies_ms.append(ms)

        start = time.perf_counter()
        next_at = start
        clients = itertools.cycle(self.clients)
        while next_at - start < duration_s:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(next(clients))))
            results.sent += 1
            next_at += random.expovariate(rate_per_s)
        await asyncio.gather(*tasks)
        results.elapsed_s = time.perf_counter() - start
        return results


async def log_in(url: str, ca: Path, accounts: dict[str, str]) -> list[str]:
    """A session cookie per account, logged in as a browser does."""
    context = client_context(TlsFiles(ca=ca))
    return list(await asyncio.gather(*(login_cookie(url, context, n, p) for n, p in accounts.items())))
